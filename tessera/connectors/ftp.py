"""FTP and FTPS folders (``type: ftp`` / ``type: ftps``) with the standard library's ftplib.

``ftps`` is explicit TLS (``AUTH TLS``) with a protected data channel (``PROT P``); the server's
certificate is checked against ``ca_file`` (a CA bundle or the server's own certificate) or the
system's CAs, unless ``verify_certificate: false``. Data connections are passive unless
``passive: false``; ``timeout`` bounds every network wait.

Listings use ``MLSD`` (exact sizes and UTC modification times); servers without it are listed
with ``LIST`` (sizes only: their files are downloaded again to compare content hashes).
"""

from __future__ import annotations

import ftplib
import posixpath
import socket
import ssl
from calendar import timegm
from pathlib import Path

from tessera.connectors.files import Entry, Folder, check_folder
from tessera.errors import ConnectionFailed


class _FTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session, which
    servers such as vsftpd (``require_ssl_reuse``) and FileZilla Server insist on."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


def _tls_context(conn) -> ssl.SSLContext:
    where = f"connection '{conn.name}'"
    if not conn.verify_certificate:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        ctx = ssl.create_default_context(cafile=conn.ca_file) if conn.ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionFailed(f"{where}: ca_file '{conn.ca_file}' cannot be read as PEM certificates "
                               f"({getattr(exc, 'strerror', None) or exc}): point ca_file at the server's "
                               "certificate or its CA bundle (PEM)", reason="config") from None
    if conn.ca_file:
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the server's own certificate may be the anchor
    return ctx


def _reply_code(exc: BaseException) -> str:
    return str(exc)[:3]


class FTPFolder(Folder):
    """The folder ``path`` of an FTP or FTPS server. Opening it connects and logs in."""

    def __init__(self, conn):
        self.conn = conn
        self.kind = conn.type
        self._mlsd = True
        where = f"{self._label()} ({self.kind}://{conn.host}:{conn.port})"
        ctx = _tls_context(conn) if conn.type == "ftps" else None
        ftp = _FTP_TLS(context=ctx, timeout=conn.timeout, encoding="utf-8") if ctx else ftplib.FTP(
            timeout=conn.timeout, encoding="utf-8")
        self.ftp = ftp
        try:
            try:
                ftp.connect(conn.host, conn.port, timeout=conn.timeout)
            except (TimeoutError, socket.timeout):
                raise ConnectionFailed(f"{where}: no answer from {conn.host}:{conn.port} within {conn.timeout} s: "
                                       "check the connection's host and port, and that a firewall lets this "
                                       "machine in", reason="unreachable") from None
            except OSError as exc:
                raise ConnectionFailed(f"{where}: cannot reach {conn.host}:{conn.port} ({_net_reason(exc)}): check "
                                       "the connection's host and port, and that the FTP server runs and a "
                                       "firewall lets this machine in", reason="unreachable") from None
            if ctx is not None:
                try:
                    ftp.auth()
                except ssl.SSLCertVerificationError as exc:
                    raise ConnectionFailed(_tls_message(where, conn, exc), reason="tls") from None
                except ssl.SSLError as exc:
                    raise ConnectionFailed(f"{where}: the TLS handshake failed ({exc.reason or exc}): check that "
                                           "the server offers explicit FTPS (AUTH TLS) on this port", reason="tls") from None
                except ftplib.error_perm as exc:
                    raise ConnectionFailed(f"{where}: the server does not offer TLS ({str(exc).strip()}): use "
                                           "type: ftp if it only speaks plain FTP, or enable explicit FTPS (AUTH TLS) "
                                           "on the server", reason="tls") from None
            try:
                ftp.login(conn.user or "anonymous", conn.password or "")
            except ftplib.error_perm as exc:
                if ctx is None and any(w in str(exc) for w in ("TLS", "SSL")):
                    raise ConnectionFailed(f"{where}: the server requires TLS ({_server_text(exc)}): use "
                                           "type: ftps", reason="tls") from None
                raise ConnectionFailed(f"{where}: the server refused the login of user '{conn.user}' "
                                       f"({_server_text(exc)}): check the connection's user and password",
                                       reason="auth_refused") from None
            if ctx is not None:
                ftp.prot_p()
            ftp.set_pasv(conn.passive)
            self.base = self._resolve_base(conn.path or "/")
        except ConnectionFailed:
            self.close()
            raise
        except (ftplib.Error, OSError, EOFError) as exc:
            self.close()
            raise self._fail(exc, "open", conn.path or "/") from None

    # -- helpers ---------------------------------------------------------------------------

    def _resolve_base(self, path: str) -> str:
        """The connection's folder as an absolute server path (relative paths start at the login folder)."""
        if path.startswith("/"):
            return posixpath.normpath(path)
        home = self.ftp.pwd()
        return posixpath.normpath(posixpath.join(home, path))

    def url(self, name: str = "") -> str:
        path = self._abs(name) if name else self.base
        return f"{self.kind}://{self.conn.user}@{self.conn.host}:{self.conn.port}{path}"

    def _fail(self, exc: BaseException, action: str, path: str) -> ConnectionFailed:
        """A diagnosis of a failed FTP command on ``path``."""
        where = f"{self._label()} ({self.kind}://{self.conn.host}:{self.conn.port})"
        if isinstance(exc, ConnectionFailed):
            return exc
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConnectionFailed(_tls_message(where, self.conn, exc), reason="tls")
        if isinstance(exc, ftplib.error_perm):
            text = _server_text(exc)
            low = text.lower()
            if any(w in low for w in ("permission", "denied", "not allowed", "privilege")) or _reply_code(exc) in ("532", "553"):
                return ConnectionFailed(f"{where}: permission denied to {action} '{path}' ({text}): give user "
                                        f"'{self.conn.user}' the right on the server", reason="permission_denied")
            if _reply_code(exc) == "550":
                if path == self.base or path == (self.conn.path or "/"):
                    return ConnectionFailed(f"{where}: the folder '{path}' does not exist on the server ({text}): "
                                            "fix the connection's path or create the folder", reason="not_found")
                return ConnectionFailed(f"{where}: cannot {action} '{path}' ({text}): it does not exist",
                                        reason="not_found")
            return ConnectionFailed(f"{where}: the server refused to {action} '{path}' ({text})", reason="error")
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return ConnectionFailed(f"{where}: no answer within {self.conn.timeout} s while trying to {action} "
                                    f"'{path}': raise the connection's timeout, or try passive: "
                                    f"{'false' if self.conn.passive else 'true'} if data connections are blocked",
                                    reason="timeout")
        if isinstance(exc, ssl.SSLError):
            return ConnectionFailed(f"{where}: TLS error while trying to {action} '{path}' ({exc.reason or exc})",
                                    reason="tls")
        if isinstance(exc, (OSError, EOFError, ftplib.Error)):
            detail = _net_reason(exc) if isinstance(exc, OSError) else (str(exc).strip() or type(exc).__name__)
            return ConnectionFailed(f"{where}: the connection failed while trying to {action} '{path}' "
                                    f"({detail}): check the server and the network, then retry",
                                    reason="unreachable" if isinstance(exc, (OSError, EOFError)) else "error")
        return ConnectionFailed(f"{where}: cannot {action} '{path}': {type(exc).__name__}: {exc}")

    def _run(self, action: str, path: str, fn):
        try:
            return fn()
        except (ftplib.Error, OSError, EOFError) as exc:
            raise self._fail(exc, action, path) from None

    # -- primitives ------------------------------------------------------------------------

    def _scandir(self, path: str) -> list[Entry]:
        if self._mlsd:
            try:
                return self._run("list", path, lambda: _mlsd_entries(self.ftp, path))
            except ConnectionFailed as exc:
                if exc.reason != "error":
                    raise
                # 500/502: no MLSD on this server; fall back to LIST
                self._mlsd = False
        return self._run("list", path, lambda: _list_entries(self.ftp, path))

    def _get(self, path: str, dest: Path) -> None:
        with open(dest, "wb") as fh:
            self._run("download", path, lambda: self.ftp.retrbinary(f"RETR {path}", fh.write))

    def _put(self, src: Path, path: str) -> None:
        with open(src, "rb") as fh:
            self._run("upload", path, lambda: self.ftp.storbinary(f"STOR {path}", fh))

    def _rename(self, src: str, dst: str) -> None:
        self._run("move", src, lambda: self.ftp.rename(src, dst))

    def _replace(self, src: str, dst: str) -> None:
        try:
            self.ftp.rename(src, dst)
        except ftplib.error_perm:
            # some servers refuse to rename onto an existing file: remove it, then rename
            self._remove(dst)
            self._run("rename", src, lambda: self.ftp.rename(src, dst))
        except (ftplib.Error, OSError, EOFError) as exc:
            raise self._fail(exc, "rename", src) from None

    def _remove(self, path: str) -> None:
        try:
            self.ftp.delete(path)
        except ftplib.error_perm as exc:
            if _reply_code(exc) != "550":
                raise self._fail(exc, "delete", path) from None
        except (ftplib.Error, OSError, EOFError) as exc:
            raise self._fail(exc, "delete", path) from None

    def _makedirs(self, path: str) -> None:
        """Create ``path`` and its missing parents (MKD each missing level)."""
        if path in ("/", ""):
            return
        if self._is_dir(path):
            return
        self._makedirs(posixpath.dirname(path))
        try:
            self.ftp.mkd(path)
        except ftplib.error_perm as exc:
            if not self._is_dir(path):  # created meanwhile by someone else is fine
                raise self._fail(exc, "create the folder", path) from None
        except (ftplib.Error, OSError, EOFError) as exc:
            raise self._fail(exc, "create the folder", path) from None

    def _is_dir(self, path: str) -> bool:
        try:
            self.ftp.cwd(path)
            return True
        except ftplib.error_perm:
            return False
        except (ftplib.Error, OSError, EOFError) as exc:
            raise self._fail(exc, "open", path) from None

    def close(self) -> None:
        ftp = getattr(self, "ftp", None)
        if ftp is None:
            return
        self.ftp = None
        try:
            ftp.quit()
        except Exception:  # noqa: BLE001 - closing a broken connection
            ftp.close()


def _mlsd_entries(ftp: ftplib.FTP, path: str) -> list[Entry]:
    entries = []
    for name, facts in list(ftp.mlsd(path, facts=["type", "size", "modify"])):
        kind = facts.get("type", "").lower()
        if kind in ("cdir", "pdir") or name in (".", ".."):
            continue
        is_dir = kind == "dir"
        size = int(facts.get("size", 0) or 0)
        entries.append(Entry(name, is_dir, 0 if is_dir else size, _mlsd_time(facts.get("modify"))))
    return entries


def _mlsd_time(value: str | None) -> float | None:
    """``YYYYMMDDHHMMSS[.sss]`` (UTC) as seconds since the epoch."""
    if not value or len(value) < 14:
        return None
    try:
        whole = timegm((int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]),
                        int(value[10:12]), int(value[12:14]), 0, 0, 0))
    except ValueError:
        return None
    frac = value[15:] if len(value) > 15 and value[14] == "." else ""
    return whole + (float("0." + frac) if frac.isdigit() else 0.0)


def _list_entries(ftp: ftplib.FTP, path: str) -> list[Entry]:
    lines: list[str] = []
    ftp.retrlines(f"LIST {path}", lines.append)
    return [e for e in (parse_list_line(line) for line in lines) if e is not None]


def parse_list_line(line: str) -> Entry | None:
    """One line of a Unix-style ``LIST`` (``drwxr-xr-x 2 user group 4096 Jan 1 12:00 name``).

    Modification times of LIST are ambiguous (no year, no zone): they are not used.
    """
    parts = line.split(None, 8)
    if len(parts) < 9 or not parts[0] or parts[0][0] not in "-dl":
        return None
    name = parts[8]
    if parts[0][0] == "l":
        name = name.split(" -> ", 1)[0]
    if name in (".", ".."):
        return None
    try:
        size = int(parts[4])
    except ValueError:
        size = 0
    is_dir = parts[0][0] == "d"
    return Entry(name, is_dir, 0 if is_dir else size, None)


def _server_text(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _net_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "the host name cannot be resolved"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _tls_message(where: str, conn, exc: ssl.SSLCertVerificationError) -> str:
    detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
    trust = (f"ca_file '{conn.ca_file}' does not vouch for it" if conn.ca_file
             else "it is not signed by a CA this machine trusts")
    return (f"{where}: the server's TLS certificate is not trusted ({detail}; {trust}): set ca_file to the "
            "server's certificate or its CA bundle (PEM), or verify_certificate: false to skip the check "
            "(not recommended: anyone between you and the server could read the password)")


def check(conn, sources) -> list[str]:
    """Connect and log in, list the folder, count the files of each source's pattern."""
    with FTPFolder(conn) as folder:
        lines = [f"connected to {conn.host}:{conn.port} as '{conn.user}'"
                 + (" over TLS (certificate verified)" if conn.type == "ftps" and conn.verify_certificate
                    else " over TLS (certificate NOT verified)" if conn.type == "ftps" else "")]
        return lines + check_folder(folder, conn, sources)
