"""FTP, FTPS and SFTP servers for the tests, running in-process on 127.0.0.1.

Session fixtures (started once, on free ports):

- ``ftp_server``: pyftpdlib, plain FTP.
- ``ftps_server``: pyftpdlib with explicit TLS (AUTH TLS, TLS required on control and data),
  a self-signed certificate for 127.0.0.1/localhost generated at start.
- ``sftp_server``: asyncssh with an SFTP subsystem chrooted to its root folder; password and
  public key authentication; a host key generated at start.

Each yields a :class:`RemoteServer`: ``.root`` is the served folder on disk, and
``.connection(**overrides)`` gives the settings of a connection to it (``type``, ``host``,
``port``, ``user``, ``password``, ``path``; ``ca_file`` for FTPS; ``known_hosts`` for SFTP).
Every server also has a read-only user (``.reader``, password ``.reader_password``).

Per-test fixtures ``ftp_folder``, ``ftps_folder``, ``sftp_folder`` and ``local_folder`` give a
fresh subfolder (deleted afterwards) as a :class:`ServedFolder`: ``.dir`` is that folder on disk,
``.connection(**overrides)`` points the connection's ``path`` at it. ``remote_folder`` runs a
test once per server kind (ftp, ftps, sftp); ``any_folder`` adds the local kind.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import shutil
import socket
import threading
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

USER, PASSWORD = "tessera", "s3cret-pw"
READER, READER_PASSWORD = "reader", "read-only-pw"


class RemoteServer:
    """A running test server: where its files are and how to connect to it."""

    def __init__(self, kind: str, root: Path, port: int, extra: dict | None = None):
        self.kind = kind
        self.root = root
        self.host = "127.0.0.1"
        self.port = port
        self.user = USER
        self.password = PASSWORD
        self.reader = READER
        self.reader_password = READER_PASSWORD
        self._extra = extra or {}

    def connection(self, **overrides) -> dict:
        """The settings of a connection to this server (add ``name`` to use it in a configuration)."""
        settings = {"type": self.kind, "host": self.host, "port": self.port, "user": self.user,
                    "password": self.password, "path": "/", **self._extra}
        settings.update(overrides)
        return settings

    def __repr__(self) -> str:
        return f"<{self.kind} server 127.0.0.1:{self.port} root={self.root}>"


class ServedFolder:
    """One test's own folder on a server (or a local folder)."""

    def __init__(self, server: RemoteServer | None, dir: Path, path: str):
        self.server = server
        self.dir = dir  # the folder on disk
        self.path = path  # the folder as the server shows it
        self.kind = server.kind if server else "local"

    def connection(self, **overrides) -> dict:
        """Connection settings whose ``path`` is this folder (``name`` not included)."""
        if self.server is None:
            return {"type": "local", "path": str(self.dir), **overrides}
        return self.server.connection(**{"path": self.path, **overrides})

    def write(self, name: str, content: str | bytes) -> Path:
        """Put a file into the folder (creating subfolders); returns its path on disk."""
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return path

    def files(self) -> list[str]:
        """The files under the folder (posix names relative to it), sorted."""
        return sorted(p.relative_to(self.dir).as_posix() for p in self.dir.rglob("*") if p.is_file())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- certificates


def make_self_signed_cert(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tessera test {name}")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# --------------------------------------------------------------------------- FTP / FTPS


class _FTPThread:
    """A pyftpdlib server polled in a thread until stopped."""

    def __init__(self, root: Path, tls: tuple[Path, Path] | None):
        with warnings.catch_warnings():  # pyftpdlib imports asyncore and asynchat (deprecated)
            warnings.simplefilter("ignore", DeprecationWarning)
            from pyftpdlib.authorizers import DummyAuthorizer
            from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
            from pyftpdlib.ioloop import IOLoop
            from pyftpdlib.servers import FTPServer

        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
        authorizer.add_user(READER, READER_PASSWORD, str(root), perm="elr")
        base = TLS_FTPHandler if tls else FTPHandler
        attrs = {"authorizer": authorizer, "auth_failed_timeout": 0.05, "banner": "tessera test server",
                 "passive_ports": None, "permit_foreign_addresses": False}
        if tls:
            attrs.update(certfile=str(tls[0]), keyfile=str(tls[1]), tls_control_required=True,
                         tls_data_required=True)
        handler = type("TestHandler", (base,), attrs)
        # its own IO loop: the default one is shared by every server of the process
        self.server = FTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
        self.port = self.server.socket.getsockname()[1]
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)  # it sets INFO when it starts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ftp-test-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.server.ioloop.loop(0.02, blocking=False)
        self.server.close_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteServer]:
    """A plain FTP server (pyftpdlib) on a free port of 127.0.0.1."""
    root = tmp_path_factory.mktemp("ftp_root")
    server = _FTPThread(root, None)
    try:
        yield RemoteServer("ftp", root, server.port)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteServer]:
    """An explicit FTPS server (AUTH TLS, TLS required) with a self-signed certificate;
    ``connection()`` includes ``ca_file`` pointing at that certificate."""
    root = tmp_path_factory.mktemp("ftps_root")
    cert, key = make_self_signed_cert(tmp_path_factory.mktemp("ftps_cert"))
    server = _FTPThread(root, (cert, key))
    try:
        srv = RemoteServer("ftps", root, server.port, {"ca_file": str(cert)})
        srv.cert_file = cert
        yield srv
    finally:
        server.stop()


# --------------------------------------------------------------------------- SFTP


class _SFTPThread:
    """An asyncssh SSH server with SFTP only, on its own event loop in a thread."""

    def __init__(self, root: Path, keys_dir: Path):
        import asyncssh

        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_file = keys_dir / "id_ed25519"
        self.client_key_file.write_bytes(self.client_key.export_private_key())
        self.client_key_file.chmod(0o600)
        self.passphrase = "key-passphrase"
        self.encrypted_key_file = keys_dir / "id_ed25519_encrypted"
        self.encrypted_key_file.write_bytes(self.client_key.export_private_key('pkcs8-pem', passphrase=self.passphrase))
        accepted = self.client_key.convert_to_public().public_data
        users = {USER: PASSWORD, READER: READER_PASSWORD}

        class Server(asyncssh.SSHServer):
            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return users.get(username) == password

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key) -> bool:
                return username == USER and key.public_data == accepted

        class ReadOnlySFTP(asyncssh.SFTPServer):
            """The reader's view: writes are refused."""

            def __init__(self, chan):
                super().__init__(chan, chroot=str(root).encode())
                self.read_only = chan.get_extra_info("username") == READER

            def _refuse(self):
                if self.read_only:
                    raise asyncssh.SFTPPermissionDenied("read-only user")

            def open(self, path, pflags, attrs):
                if pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_APPEND):
                    self._refuse()
                return super().open(path, pflags, attrs)

            def rename(self, oldpath, newpath):
                self._refuse()
                return super().rename(oldpath, newpath)

            def posix_rename(self, oldpath, newpath):
                self._refuse()
                return super().posix_rename(oldpath, newpath)

            def remove(self, path):
                self._refuse()
                return super().remove(path)

            def mkdir(self, path, attrs):
                self._refuse()
                return super().mkdir(path, attrs)

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sftp-test-server", daemon=True)
        self._thread.start()

        async def start():
            return await asyncssh.create_server(
                Server, "127.0.0.1", 0, server_host_keys=[self.host_key], sftp_factory=ReadOnlySFTP,
                allow_scp=False, login_timeout=10)

        self.acceptor = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.port = self.acceptor.sockets[0].getsockname()[1]

    def known_hosts_line(self, port: int | None = None) -> str:
        return f"[127.0.0.1]:{port or self.port} {self.host_key.export_public_key().decode().strip()}\n"

    def stop(self) -> None:
        async def close():
            self.acceptor.close()
            await self.acceptor.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteServer]:
    """An SFTP server (asyncssh) chrooted to its root folder, with password and key authentication.

    ``connection()`` includes ``known_hosts`` (a file holding the server's host key). The server
    object also has ``client_key_file`` (a key it accepts for ``user``), ``client_key_text``,
    ``encrypted_key_file`` with ``passphrase``, and ``host_key_line``.
    """
    root = tmp_path_factory.mktemp("sftp_root")
    keys = tmp_path_factory.mktemp("sftp_keys")
    server = _SFTPThread(root, keys)
    known_hosts = keys / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    try:
        srv = RemoteServer("sftp", root, server.port, {"known_hosts": str(known_hosts)})
        srv.client_key_file = server.client_key_file
        srv.client_key_text = server.client_key_file.read_text()
        srv.encrypted_key_file = server.encrypted_key_file
        srv.passphrase = server.passphrase
        srv.host_key_line = server.known_hosts_line()
        srv.known_hosts = known_hosts
        yield srv
    finally:
        server.stop()


# --------------------------------------------------------------------------- per-test folders


def _served_folder(server: RemoteServer, request: pytest.FixtureRequest) -> Iterator[ServedFolder]:
    name = f"t_{request.node.name[:40].translate(str.maketrans('[]/- ', '_____'))}_{uuid.uuid4().hex[:6]}"
    folder = server.root / name
    folder.mkdir()
    try:
        yield ServedFolder(server, folder, "/" + name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ftp_folder(ftp_server: RemoteServer, request: pytest.FixtureRequest) -> Iterator[ServedFolder]:
    """A fresh folder of the FTP server for this test."""
    yield from _served_folder(ftp_server, request)


@pytest.fixture
def ftps_folder(ftps_server: RemoteServer, request: pytest.FixtureRequest) -> Iterator[ServedFolder]:
    """A fresh folder of the FTPS server for this test."""
    yield from _served_folder(ftps_server, request)


@pytest.fixture
def sftp_folder(sftp_server: RemoteServer, request: pytest.FixtureRequest) -> Iterator[ServedFolder]:
    """A fresh folder of the SFTP server for this test."""
    yield from _served_folder(sftp_server, request)


@pytest.fixture
def local_folder(tmp_path: Path) -> ServedFolder:
    """A fresh local folder, with the same interface as the server folders."""
    folder = tmp_path / "local_folder"
    folder.mkdir()
    return ServedFolder(None, folder, str(folder))


@pytest.fixture(params=["ftp", "ftps", "sftp"])
def remote_folder(request: pytest.FixtureRequest) -> ServedFolder:
    """This test's folder on each kind of server in turn (ftp, ftps, sftp)."""
    return request.getfixturevalue(f"{request.param}_folder")


@pytest.fixture(params=["local", "ftp", "ftps", "sftp"])
def any_folder(request: pytest.FixtureRequest) -> ServedFolder:
    """This test's folder on a local disk and on each kind of server in turn."""
    return request.getfixturevalue(f"{request.param}_folder")


@pytest.fixture
def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (connections are refused)."""
    return _free_port()
