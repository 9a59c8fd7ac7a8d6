"""Throwaway database servers for the test session.

Each server runs from the Debian packages installed by ``scripts/test.sh``, in a temporary
folder, on a free port of 127.0.0.1, and is stopped and deleted at the end of the session.
The servers are started as root here (CI and the development machines run as root): programs
that refuse to run as root are started as their own system user through ``runuser``.
"""

from __future__ import annotations

import atexit
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTGRES_MISSING = "PostgreSQL is not installed: run scripts/test.sh (it installs it)"


class ServerUnavailable(RuntimeError):
    """The server's programs are not installed on this machine."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def find_postgres_bindir() -> Path | None:
    """The bin folder of the newest PostgreSQL under /usr/lib/postgresql (or $TESSERA_PG_BINDIR)."""
    override = os.environ.get("TESSERA_PG_BINDIR")
    candidates = [override] if override else sorted(
        (os.path.dirname(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")), key=_version_key, reverse=True
    )
    for bindir in candidates:
        if bindir and (Path(bindir) / "initdb").is_file() and (Path(bindir) / "pg_ctl").is_file():
            return Path(bindir)
    return None


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, trust authentication, superuser ``postgres``."""

    user = "postgres"

    def __init__(self, bindir: Path | None = None, database: str = "tessera_test"):
        found = bindir or find_postgres_bindir()
        if found is None:
            raise ServerUnavailable(POSTGRES_MISSING)
        self.bindir = found
        self.database = database
        self.port: int | None = None
        self.base: Path | None = None
        self.start_seconds: float | None = None
        self._running = False
        self._process: subprocess.Popen[bytes] | None = None

    # The server refuses to run as root: run its programs as the postgres system user then.
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    @property
    def datadir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        assert self.base is not None
        return self.base / "postgres.log"

    def url(self, database: str | None = None) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database or self.database}"

    def _dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def start(self) -> PostgresServer:
        started = time.monotonic()
        # Not under pytest's tmp folders: those are private to root and the server runs as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="tessera-pg-"))
        os.chmod(self.base, 0o700)
        if os.geteuid() == 0:
            shutil.chown(self.base, self.user, self.user)
        atexit.register(self.stop)
        try:
            self._run(
                str(self.bindir / "initdb"),
                "-D", str(self.datadir),
                "-U", self.user,
                "-A", "trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            )
            # Password authentication for the roles made by create_role, trust for the superuser.
            hba = self.datadir / "pg_hba.conf"
            rules = "host all all 127.0.0.1/32 scram-sha-256\n"
            text = hba.read_text()
            hba.write_text(text.replace("host    all             all             127.0.0.1/32            trust",
                                        "host    all             postgres        127.0.0.1/32            trust\n" + rules))
            self._start_server()
            self.create_database(self.database)
        except subprocess.CalledProcessError as exc:
            log = self.logfile.read_text(errors="replace")[-4000:] if self.logfile.exists() else ""
            self.stop()
            raise RuntimeError(
                f"PostgreSQL did not start: {' '.join(exc.cmd)}\n{exc.stdout}\n{exc.stderr}\n{log}"
            ) from exc
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _start_server(self) -> None:
        # The server runs as a child of this process (not daemonized by pg_ctl) so that it is
        # reaped when it stops, even where PID 1 does not reap orphans (containers).
        for _ in range(3):  # the free port may be taken between the check and the start
            self.port = free_port()
            cmd = [
                str(self.bindir / "postgres"),
                "-D", str(self.datadir),
                "-p", str(self.port),
                "-k", str(self.base),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=100",
            ]
            if os.geteuid() == 0:
                cmd = ["runuser", "-u", self.user, "--", *cmd]
            with open(self.logfile, "ab") as log:
                self._process = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self._running = True
            if self._wait_ready(timeout=60):
                return
            self._stop_server()
        log = self.logfile.read_text(errors="replace")[-4000:] if self.logfile.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1; its log ends with:\n{log}")

    def _wait_ready(self, timeout: float) -> bool:
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                return False
            try:
                with psycopg.connect(self._dsn(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        return False

    def _stop_server(self) -> None:
        if self._running and self.base is not None:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop", check=False)
        if self._process is not None:
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        self._running = False

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_role(self, name: str, password: str, *, superuser: bool = False) -> None:
        """A login role with a password (host connections of roles other than postgres need one)."""
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS \"{name}\"")
            conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'" + (" SUPERUSER" if superuser else ""))

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self._stop_server()
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


MARIADB_MISSING = "MariaDB is not installed: run scripts/test.sh (it installs it)"


class MariaDBServer:
    """A MariaDB server in a temporary data folder on 127.0.0.1, with a password user.

    ``root`` logs in through the server's socket only; tests connect as ``user``/``password``
    over TCP, like an application would.
    """

    user = "tessera"
    password = "tessera-pw"

    def __init__(self, database: str = "tessera_test"):
        self.mariadbd = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
        self.install_db = shutil.which("mariadb-install-db")
        if not self.mariadbd or not self.install_db:
            raise ServerUnavailable(MARIADB_MISSING)
        self.database = database
        self.port: int | None = None
        self.base: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        assert self.base is not None
        return str(self.base / "mariadb.sock")

    def root(self):
        import pymysql

        return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)

    def start(self) -> "MariaDBServer":
        self.base = Path(tempfile.mkdtemp(prefix="tessera-mariadb-"))
        atexit.register(self.stop)
        datadir = self.base / "data"
        subprocess.run(
            [self.install_db, "--user=root", f"--datadir={datadir}", "--auth-root-authentication-method=socket",
             "--skip-test-db", "--no-defaults"],
            check=True, capture_output=True, text=True, timeout=180,
        )
        log = self.base / "mariadb.log"
        for _ in range(3):
            self.port = free_port()
            cmd = [self.mariadbd, "--no-defaults", "--user=root", f"--datadir={datadir}", f"--port={self.port}",
                   "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.base / 'mariadb.pid'}",
                   "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0",
                   "--local-infile=1", "--max-allowed-packet=256M", f"--log-error={log}"]
            self._process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_ready(60):
                break
            self._kill()
        else:
            text = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            raise RuntimeError(f"MariaDB did not start on 127.0.0.1; its log ends with:\n{text}")
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            cur.execute(f"CREATE USER IF NOT EXISTS '{self.user}'@'%' IDENTIFIED BY '{self.password}'")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%'")
        return self

    def _wait_ready(self, timeout: float) -> bool:
        import pymysql

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                return False
            try:
                self.root().close()
                return True
            except pymysql.err.MySQLError:
                time.sleep(0.1)
        return False

    def create_database(self, name: str) -> str:
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        return name

    def drop_database(self, name: str) -> None:
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def create_user(self, name: str, password: str, grants: str = "ALL PRIVILEGES ON *.*") -> None:
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE OR REPLACE USER '{name}'@'%' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT {grants} TO '{name}'@'%'")

    def connect(self, database: str | None = None):
        """A PyMySQL connection over TCP as the test user."""
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                               database=database or self.database, autocommit=True, local_infile=True)

    def _kill(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None

    def stop(self) -> None:
        self._kill()
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
