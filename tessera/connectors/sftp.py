"""SFTP folders (``type: sftp``) with asyncssh, driven from synchronous code.

asyncssh is asynchronous: an :class:`SFTPFolder` runs its coroutines on one event loop that
lives in a background thread of this process, so it works from plain code, from a thread of
the web server and from inside a running event loop alike.

Authentication uses only what the connection says: ``password``, ``private_key`` (the key's
text) or ``private_key_file`` (with ``passphrase`` when the key is encrypted) — never an SSH
agent or ``~/.ssh/config``. The server's host key must be in ``known_hosts`` (default
``~/.ssh/known_hosts``) unless ``verify_host_key: false``.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import socket
import stat
import threading
from pathlib import Path

import asyncssh

from tessera.connectors.files import Entry, Folder, _within, check_folder
from tessera.errors import ConnectionFailed

# --------------------------------------------------------------------------- the event loop thread

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    """The process's background event loop for SFTP (started on first use, again after a fork)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="tessera-sftp", daemon=True)
            thread.start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def _call(coro):
    """Run a coroutine on the background loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, _event_loop()).result()


# --------------------------------------------------------------------------- connecting


def _client_keys(conn, where: str):
    """The private key of the connection (None when it has none)."""
    passphrase = conn.passphrase or None
    try:
        if conn.private_key:
            return [asyncssh.import_private_key(conn.private_key, passphrase)]
        if conn.private_key_file:
            path = os.path.expanduser(conn.private_key_file)
            if not os.path.isfile(path):
                raise ConnectionFailed(f"{where}: private_key_file '{conn.private_key_file}' does not exist: "
                                       "fix the path", reason="config")
            return [asyncssh.read_private_key(path, passphrase)]
    except asyncssh.KeyEncryptionError as exc:
        if "bcrypt" in str(exc):
            raise ConnectionFailed(f"{where}: the private key is an encrypted OpenSSH key, which needs the "
                                   "bcrypt package: pip install bcrypt, or convert the key to PEM with "
                                   "ssh-keygen -p -m PEM -f <key file>", reason="config") from None
        raise ConnectionFailed(f"{where}: the private key cannot be decrypted: "
                               + ("check the connection's passphrase" if passphrase
                                  else "it is encrypted, set the connection's passphrase"),
                               reason="config") from None
    except asyncssh.KeyImportError as exc:
        text = str(exc).lower()
        if "decrypt" in text or "passphrase" in text:
            raise ConnectionFailed(f"{where}: the private key cannot be decrypted: "
                                   + ("check the connection's passphrase" if passphrase
                                      else "it is encrypted, set the connection's passphrase"),
                                   reason="config") from None
        setting = "private_key" if conn.private_key else f"private_key_file '{conn.private_key_file}'"
        raise ConnectionFailed(f"{where}: {setting} is not a private key asyncssh can read ({exc}): give an "
                               "OpenSSH or PEM private key", reason="config") from None
    except OSError as exc:
        raise ConnectionFailed(f"{where}: private_key_file '{conn.private_key_file}' cannot be read "
                               f"({exc.strerror or exc})", reason="config") from None
    return None


def _known_hosts(conn, where: str):
    if not conn.verify_host_key:
        return None  # accept any host key
    if conn.known_hosts:
        path = os.path.expanduser(conn.known_hosts)
        if not os.path.isfile(path):
            raise ConnectionFailed(f"{where}: known_hosts file '{conn.known_hosts}' does not exist: fix the path, "
                                   f"or create it with: ssh-keyscan -p {conn.port} {conn.host} > {conn.known_hosts} "
                                   "(then compare the fingerprint with the server's)", reason="config")
        return path
    return ()  # asyncssh's default: ~/.ssh/known_hosts


async def _host_key_text(conn) -> str | None:
    """The server's host key as a known_hosts line and fingerprint, to help fix a host key error."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(conn.host, conn.port, config=None),
                                     timeout=conn.timeout)
    except Exception:  # noqa: BLE001 - only a hint for the message
        return None
    if key is None:
        return None
    host = conn.host if conn.port == 22 else f"[{conn.host}]:{conn.port}"
    line = f"{host} {key.export_public_key('openssh').decode().strip()}"
    return f"its key is {key.get_fingerprint('sha256')}; after checking this fingerprint with the server's " \
           f"administrator, add this line to the known_hosts file: {line}"


async def _connect(conn, where: str):
    options = dict(
        username=conn.user, known_hosts=_known_hosts(conn, where), config=None, agent_path=None,
        client_keys=_client_keys(conn, where), password=conn.password or None,
        connect_timeout=conn.timeout, login_timeout=conn.timeout,
        keepalive_interval=conn.timeout, keepalive_count_max=3,
    )
    if not options["client_keys"]:
        options["client_keys"] = None  # no key: do not try ~/.ssh/id_*
    try:
        ssh = await asyncssh.connect(conn.host, conn.port, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        hint = await _host_key_text(conn)
        source = f"known_hosts file '{conn.known_hosts}'" if conn.known_hosts else "~/.ssh/known_hosts"
        raise ConnectionFailed(
            f"{where}: the server's host key is not trusted ({exc.reason}): it is not in the {source}"
            + (f"; {hint}" if hint else f"; add it with: ssh-keyscan -p {conn.port} {conn.host} >> "
               f"{conn.known_hosts or '~/.ssh/known_hosts'}")
            + " (or verify_host_key: false, not recommended: anyone between you and the server could "
              "impersonate it)", reason="host_key") from None
    except asyncssh.PermissionDenied:
        tried = [m for m, v in (("password", conn.password), ("private key", conn.private_key or conn.private_key_file)) if v]
        raise ConnectionFailed(
            f"{where}: the server refused the login of user '{conn.user}' (tried: {', '.join(tried) or 'no credentials'}): "
            "check the connection's user and password, or that the server accepts its private key",
            reason="auth_refused") from None
    except (asyncio.TimeoutError, TimeoutError, asyncssh.TimeoutError):
        raise ConnectionFailed(f"{where}: no answer from {conn.host}:{conn.port} within {conn.timeout} s: check the "
                               "connection's host and port, and that a firewall lets this machine in",
                               reason="unreachable") from None
    except socket.gaierror:
        raise ConnectionFailed(f"{where}: cannot reach {conn.host}:{conn.port} (the host name cannot be resolved): "
                               "check the connection's host", reason="unreachable") from None
    except ConnectionRefusedError:
        raise ConnectionFailed(f"{where}: cannot reach {conn.host}:{conn.port} (connection refused): check the "
                               "connection's host and port, and that the SSH server runs", reason="unreachable") from None
    except OSError as exc:
        raise ConnectionFailed(f"{where}: cannot reach {conn.host}:{conn.port} ({exc.strerror or exc}): check the "
                               "connection's host and port", reason="unreachable") from None
    except asyncssh.DisconnectError as exc:
        raise ConnectionFailed(f"{where}: the server closed the connection ({exc.reason}): check that "
                               f"{conn.host}:{conn.port} is an SSH server", reason="unreachable") from None
    try:
        sftp = await ssh.start_sftp_client()
    except (asyncssh.Error, OSError) as exc:
        ssh.close()
        raise ConnectionFailed(f"{where}: logged in, but the server does not offer SFTP ({exc}): enable its "
                               "SFTP subsystem", reason="error") from None
    return ssh, sftp


# --------------------------------------------------------------------------- the folder


class SFTPFolder(Folder):
    """The folder ``path`` of an SFTP server. Opening it connects and logs in."""

    kind = "sftp"

    def __init__(self, conn):
        self.conn = conn
        self._ssh = self._sftp = None
        self.refused = []
        self.allow_symlinks = bool(getattr(conn, "allow_symlinks", False))
        self._ssh, self._sftp = _call(_connect(conn, self._where()))
        try:
            path = conn.path or "/"
            if not path.startswith("/"):
                path = posixpath.join(_call(self._sftp.realpath(".")), path)
            self.base = posixpath.normpath(path)
        except (asyncssh.Error, OSError) as exc:
            self.close()
            raise self._fail(exc, "open", conn.path) from None
        self.real_base = self.base  # the folder itself may be reached through a link on the server
        if not self.allow_symlinks:
            try:
                self.real_base = posixpath.normpath(_call(self._sftp.realpath(self.base)))
            except (asyncssh.Error, OSError):
                pass  # a folder that does not exist: its listing says so

    # -- symbolic links on the server ------------------------------------------------------

    async def _outside(self, path: str) -> str | None:
        """Where ``path`` leads once the server follows its links, when that is outside the
        connection's folder (``"outside what this connection may see"`` when the server will not
        say); None when it stays inside, or when links may be followed."""
        if self.allow_symlinks:
            return None
        try:
            target = posixpath.normpath(await self._sftp.realpath(path))
        except asyncssh.SFTPError:
            return "a place outside what this connection may see"
        return None if _within(target, self.real_base) else target

    def _check_link(self, path: str, name: str) -> None:
        where = self._run("read", path, self._outside(path))
        if name and where:
            raise ConnectionFailed(
                f"{self._label()}: '{name}' is a symbolic link on the server (or lies under one) that leads to "
                f"{where}, outside the connection's folder {self.base}; move the file into the folder, or set "
                "allow_symlinks: true on the connection to follow such links", reason="config")

    def _where(self) -> str:
        return f"{self._label()} (sftp://{self.conn.host}:{self.conn.port})"

    def url(self, name: str = "") -> str:
        path = self._abs(name) if name else self.base
        return f"sftp://{self.conn.user}@{self.conn.host}:{self.conn.port}{path}"

    def _fail(self, exc: BaseException, action: str, path: str) -> ConnectionFailed:
        where = self._where()
        if isinstance(exc, asyncssh.SFTPNoSuchFile) or isinstance(exc, getattr(asyncssh, "SFTPNoSuchPath", ())):
            if path == self.base:
                return ConnectionFailed(f"{where}: the folder '{path}' does not exist on the server: fix the "
                                        "connection's path or create the folder", reason="not_found")
            return ConnectionFailed(f"{where}: cannot {action} '{path}': it does not exist", reason="not_found")
        if isinstance(exc, asyncssh.SFTPPermissionDenied):
            return ConnectionFailed(f"{where}: permission denied to {action} '{path}' ({exc.reason}): give user "
                                    f"'{self.conn.user}' the right on the server", reason="permission_denied")
        if isinstance(exc, asyncssh.SFTPError):
            return ConnectionFailed(f"{where}: the server refused to {action} '{path}' ({exc.reason})", reason="error")
        if isinstance(exc, (asyncssh.Error, OSError, EOFError)):
            detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return ConnectionFailed(f"{where}: the connection failed while trying to {action} '{path}' ({detail}): "
                                    "check the server and the network, then retry", reason="unreachable")
        return ConnectionFailed(f"{where}: cannot {action} '{path}': {type(exc).__name__}: {exc}")

    def _run(self, action: str, path: str, coro):
        try:
            return _call(coro)
        except (asyncssh.Error, OSError, EOFError) as exc:
            raise self._fail(exc, action, path) from None

    # -- primitives ------------------------------------------------------------------------

    def _scandir(self, path: str) -> list[Entry]:
        async def scan():
            entries = []
            for item in await self._sftp.readdir(path):
                name = item.filename if isinstance(item.filename, str) else item.filename.decode("utf-8", "replace")
                if name in (".", ".."):
                    continue
                attrs = item.attrs
                mode = attrs.permissions
                if mode is not None and stat.S_ISLNK(mode):
                    full = posixpath.join(path, name)
                    try:  # a symbolic link: describe what it points at
                        attrs = await self._sftp.stat(full)
                        mode = attrs.permissions
                    except asyncssh.SFTPError:
                        continue  # a broken link
                    where = await self._outside(full)
                    if where:
                        self.refused.append(
                            f"'{self._rel(full)}' is a symbolic link on the server to {where}, outside the "
                            "connection's folder: left out (set allow_symlinks: true on the connection to follow it)")
                        continue
                if mode is not None:
                    is_dir = stat.S_ISDIR(mode)
                else:
                    is_dir = attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY
                mtime = attrs.mtime if attrs.mtime is not None else None
                if mtime is not None and getattr(attrs, "mtime_ns", None):
                    mtime = attrs.mtime_ns / 1e9
                entries.append(Entry(name, is_dir, 0 if is_dir else int(attrs.size or 0),
                                     float(mtime) if mtime is not None else None))
            return entries

        return self._run("list", path, scan())

    def _get(self, path: str, dest: Path) -> None:
        self._check_link(path, self._rel(path))
        # the content, not a copy of the link (links leaving the folder were refused above)
        self._run("download", path, self._sftp.get(path, str(dest), follow_symlinks=True))

    def _put(self, src: Path, path: str) -> None:
        self._run("upload", path, self._sftp.put(str(src), path))

    def _rename(self, src: str, dst: str) -> None:
        self._run("move", src, self._sftp.rename(src, dst))  # SFTP rename never overwrites

    def _replace(self, src: str, dst: str) -> None:
        async def replace():
            try:
                await self._sftp.posix_rename(src, dst)
            except asyncssh.SFTPOpUnsupported:
                try:
                    await self._sftp.remove(dst)
                except asyncssh.SFTPNoSuchFile:
                    pass
                await self._sftp.rename(src, dst)

        self._run("rename", src, replace())

    def _remove(self, path: str) -> None:
        async def remove():
            try:
                await self._sftp.remove(path)
            except asyncssh.SFTPNoSuchFile:
                pass

        self._run("delete", path, remove())

    def _makedirs(self, path: str) -> None:
        self._run("create the folder", path, self._sftp.makedirs(path, exist_ok=True))

    def close(self) -> None:
        sftp, ssh = self._sftp, self._ssh
        self._sftp = self._ssh = None
        if ssh is None:
            return

        async def shutdown():
            if sftp is not None:
                sftp.exit()
            ssh.close()
            try:
                await asyncio.wait_for(ssh.wait_closed(), timeout=5)
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

        try:
            _call(shutdown())
        except Exception:  # noqa: BLE001
            pass


def check(conn, sources) -> list[str]:
    """Connect and log in, list the folder, count the files of each source's pattern."""
    with SFTPFolder(conn) as folder:
        how = "host key verified" if conn.verify_host_key else "host key NOT verified"
        lines = [f"connected to {conn.host}:{conn.port} as '{conn.user}' ({how})"]
        return lines + check_folder(folder, conn, sources)
