"""Folders of files: a local folder, an FTP/FTPS server or an SFTP server, behind one interface.

File sources list and download their files through a :class:`Folder`; file destinations of
syncs upload through it. :func:`open_folder` opens the folder of a connection (secrets
revealed)::

    with open_folder(conn) as folder:
        for f in folder.list("crm/contacts_*.csv"):      # names relative to the connection's path
            folder.download(f.name, tmp / "contacts.csv")
            folder.move(f.name, "archive")                # -> "archive/contacts_2024.csv"
        folder.upload(Path("out.csv"), "exports/segment.csv")  # atomic: temporary name, then rename

Names are posix paths relative to the connection's ``path`` and never leave it: an absolute name
or one that goes up with ``..`` outside the folder is refused (``reason="config"``). In a local
folder and on an SFTP server, a symbolic link whose target lies outside the folder is left out of
listings and refused when read or written through, unless the connection sets ``allow_symlinks: true``. Patterns are globs matched segment by segment (``*``, ``?``,
``[abc]`` inside one folder name; ``**`` for any number of folders, including none), case-sensitive.

Every failure is a :class:`~tessera.errors.ConnectionFailed` whose ``reason`` is one of
``unreachable``, ``auth_refused``, ``not_found``, ``permission_denied``, ``tls``, ``host_key``,
``config`` or ``error``, and whose message names the connection and the setting to fix.

This module also holds the local folder (:class:`LocalFolder`) and its ``check``.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import uuid
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from tessera.errors import ConnectionFailed

TEMP_MARK = ".tessera-tmp-"  # uploads in progress are named ".<name>.tessera-tmp-<random>"
MAX_DEPTH = 64  # a "**" walk never goes deeper (guards against symbolic link loops)


@dataclass
class RemoteFile:
    """A file of a folder: its name relative to the connection's path, size in bytes and
    modification time (seconds since the epoch, None when the server does not tell)."""

    name: str
    size: int
    mtime: float | None


@dataclass
class Entry:
    """One item of a folder listing, as the folder implementations return it."""

    name: str  # the item's own name (no folder)
    is_dir: bool
    size: int = 0
    mtime: float | None = None


# --------------------------------------------------------------------------- patterns


def split_pattern(pattern: str) -> list[str]:
    """The segments of a glob pattern (``a//b/`` and a leading ``./`` or ``/`` are tolerated)."""
    return [s for s in pattern.strip().strip("/").split("/") if s not in ("", ".")]


def _advance(segments: list[str], states: set[int], part: str) -> set[int]:
    """The pattern positions reached after matching one more path segment ``part``."""
    reached: set[int] = set()
    for i in states:
        if i >= len(segments):
            continue
        if segments[i] == "**":
            reached.add(i)  # "**" eats this segment and may eat more
        elif fnmatchcase(part, segments[i]):
            reached.add(i + 1)
    return _closure(segments, reached)


def _closure(segments: list[str], states: set[int]) -> set[int]:
    """Add the positions after each "**" (it also matches no segment at all)."""
    todo = list(states)
    out = set(states)
    while todo:
        i = todo.pop()
        if i < len(segments) and segments[i] == "**" and i + 1 not in out:
            out.add(i + 1)
            todo.append(i + 1)
    return out


def match_pattern(pattern: str, name: str) -> bool:
    """Whether the relative posix path ``name`` matches the glob ``pattern``."""
    segments = split_pattern(pattern)
    states = _closure(segments, {0})
    for part in name.split("/"):
        states = _advance(segments, states, part)
        if not states:
            return False
    return len(segments) in states


def _within(path: str, base: str) -> bool:
    """Whether the normalized absolute ``path`` is ``base`` or lies under it."""
    return path == base or path.startswith(base.rstrip("/") + "/")


# --------------------------------------------------------------------------- the interface


class Folder:
    """A folder of files on some system. Use it as a context manager, or call :meth:`close`.

    Subclasses implement the primitives (``_scandir``, ``_get``, ``_put``, ``_rename``,
    ``_replace``, ``_remove``, ``_makedirs``) on absolute paths; this class turns names relative
    to the connection's path into absolute ones and implements listing, atomic upload and moves.
    """

    kind = "folder"
    conn = None
    base = "/"  # absolute path of the connection's folder on its system
    refused: list[str] = []  # why files were left out of the last listings (links leaving the folder)

    # -- what a caller uses ----------------------------------------------------------------

    def list(self, pattern: str) -> list[RemoteFile]:
        """The files whose name (relative to the connection's path) matches the glob ``pattern``,
        sorted by name. Uploads in progress (temporary names) are left out.

        Raises ConnectionFailed(reason="not_found") when the connection's folder does not exist.
        """
        segments = split_pattern(pattern)
        found: list[RemoteFile] = []
        self.refused = []

        def walk(rel: str, states: set[int], depth: int) -> None:
            for entry in self._scandir(self._abs(rel) if rel else self.base):
                if entry.name in (".", "..") or TEMP_MARK in entry.name:
                    continue
                reached = _advance(segments, states, entry.name)
                if not reached:
                    continue
                name = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir:
                    if any(i < len(segments) for i in reached) and depth < MAX_DEPTH:
                        walk(name, reached, depth + 1)
                elif len(segments) in reached:
                    found.append(RemoteFile(name, entry.size, entry.mtime))

        if segments:
            walk("", _closure(segments, {0}), 0)
        return sorted(found, key=lambda f: f.name)

    def download(self, name: str, dest: Path) -> None:
        """Copy the file ``name`` to the local path ``dest`` (its folder must exist)."""
        self._get(self._abs(name), Path(dest))

    def upload(self, src: Path, name: str) -> None:
        """Write the local file ``src`` as ``name``, atomically: it is written under a temporary
        name in the same folder, then renamed, so a reader never sees half a file. Missing
        folders are created; an existing file ``name`` is replaced."""
        target = self._abs(name)
        parent, base = posixpath.split(target)
        self._makedirs(parent)
        self._check_link(parent, self._rel(parent))  # a folder that is a link leading elsewhere
        temp = posixpath.join(parent, f".{base}{TEMP_MARK}{uuid.uuid4().hex[:12]}")
        try:
            self._put(Path(src), temp)
            self._replace(temp, target)
        except BaseException:
            try:
                self._remove(temp)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise

    def move(self, name: str, folder: str) -> str:
        """Move the file ``name`` into ``folder`` (created if missing) and return its new name.

        An existing file of the same name in ``folder`` is never overwritten: the moved file gets
        a suffix (``contacts.csv`` -> ``contacts-1.csv``, ``contacts-2.csv``...).
        """
        source = self._abs(name)
        target_dir = self._abs(folder)
        self._makedirs(target_dir)
        self._check_link(target_dir, folder)
        taken = {e.name for e in self._scandir(target_dir)}
        stem, dot, ext = posixpath.basename(source).partition(".")
        candidate = posixpath.basename(source)
        n = 0
        while candidate in taken:
            n += 1
            candidate = f"{stem}-{n}{dot}{ext}"
        target = posixpath.join(target_dir, candidate)
        self._rename(source, target)
        return self._rel(target)

    def local_path(self, name: str) -> Path | None:
        """The file's path on this machine when the folder is local (read it in place), else None."""
        return None

    def url(self, name: str = "") -> str:
        """Where a file is, for messages and records (never with a password)."""
        return self._abs(name) if name else self.base

    def close(self) -> None:
        """Close the connection to the server (nothing for a local folder)."""

    def __enter__(self) -> "Folder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- paths -----------------------------------------------------------------------------

    def _abs(self, name: str) -> str:
        """The absolute path of a name relative to the connection's folder; a name that leaves
        the folder (absolute, or going up with ``..``) is refused."""
        path = posixpath.normpath(posixpath.join(self.base, name))
        if not _within(path, self.base):
            raise ConnectionFailed(
                f"{self._label()}: '{name}' is outside the connection's folder {self.base}; names are relative "
                "to that folder and cannot leave it (change the connection's path instead)", reason="config")
        return path

    def _rel(self, path: str) -> str:
        """A name relative to the connection's folder (an absolute path when outside it)."""
        if path == self.base:
            return "."
        prefix = self.base.rstrip("/") + "/"
        return path[len(prefix):] if path.startswith(prefix) else path

    def is_inside(self, name: str, folder: str) -> bool:
        """Whether the file ``name`` lies inside ``folder`` (both as given to this interface)."""
        return self._abs(name).startswith(self._abs(folder).rstrip("/") + "/")

    def _label(self) -> str:
        name = getattr(self.conn, "name", "?")
        return f"connection '{name}'"

    def _check_link(self, path: str, name: str) -> None:
        """Refuse ``path`` when a symbolic link takes it outside the connection's folder (folders
        whose system has links and can resolve them: local and SFTP)."""

    # -- primitives (absolute paths) -------------------------------------------------------

    def _scandir(self, path: str) -> list[Entry]:
        raise NotImplementedError

    def _get(self, path: str, dest: Path) -> None:
        raise NotImplementedError

    def _put(self, src: Path, path: str) -> None:
        raise NotImplementedError

    def _rename(self, src: str, dst: str) -> None:
        """Rename; ``dst`` does not exist."""
        raise NotImplementedError

    def _replace(self, src: str, dst: str) -> None:
        """Rename, replacing ``dst`` if it exists."""
        raise NotImplementedError

    def _remove(self, path: str) -> None:
        raise NotImplementedError

    def _makedirs(self, path: str) -> None:
        raise NotImplementedError


def open_folder(conn) -> Folder:
    """Open the folder of a ``local``, ``ftp``, ``ftps`` or ``sftp`` connection (secrets revealed).

    Raises ConnectionFailed with a diagnosis when the server cannot be reached or refuses the login.
    """
    if conn.type == "local":
        return LocalFolder(conn)
    if conn.type in ("ftp", "ftps"):
        from tessera.connectors.ftp import FTPFolder  # lazy: each protocol loads only when used

        return FTPFolder(conn)
    if conn.type == "sftp":
        from tessera.connectors.sftp import SFTPFolder  # lazy: asyncssh is heavy

        return SFTPFolder(conn)
    raise ConnectionFailed(f"connection '{conn.name}' is a {conn.type} connection, not a folder of files "
                           "(local, ftp, ftps or sftp)", reason="config")


def check_folder(folder: Folder, conn, sources) -> list[str]:
    """What ``check`` verifies on any folder: the folder can be listed, and each source's pattern
    matches some files (a pattern that matches nothing is reported, not an error)."""
    lines = [f"folder {folder.url()} can be listed"]
    for src in sources:
        if not getattr(src, "pattern", None):
            continue
        files = folder.list(src.pattern)
        if getattr(src, "archive_folder", None):
            files = [f for f in files if not folder.is_inside(f.name, src.archive_folder)]
        total = sum(f.size for f in files)
        if files:
            lines.append(f"source '{src.name}': {len(files)} file(s) match '{src.pattern}' ({total:,} bytes)")
        else:
            lines.append(f"source '{src.name}': no file matches '{src.pattern}' yet")
    return lines


# --------------------------------------------------------------------------- local folders


class LocalFolder(Folder):
    """A folder on this machine (``type: local``)."""

    kind = "local"

    def __init__(self, conn):
        self.conn = conn
        self.base = posixpath.normpath(os.path.abspath(os.path.expanduser(str(conn.path))))
        self.real_base = os.path.realpath(self.base)  # the folder itself may be reached through a link
        self.allow_symlinks = bool(getattr(conn, "allow_symlinks", False))
        self.refused = []

    def local_path(self, name: str) -> Path | None:
        path = self._abs(name)
        self._check_link(path, name)
        return Path(path)

    def _leaves(self, path: str) -> bool:
        """Whether ``path``, once its symbolic links are followed, lies outside the folder."""
        return not self.allow_symlinks and not _within(os.path.realpath(path), self.real_base)

    def _check_link(self, path: str, name: str) -> None:
        if name and self._leaves(path):
            raise ConnectionFailed(
                f"{self._label()}: '{name}' is a symbolic link (or lies under one) that leads outside the "
                f"connection's folder {self.base}; move the file into the folder, or set allow_symlinks: true "
                "on the connection to follow such links", reason="config")

    def url(self, name: str = "") -> str:
        return self._abs(name) if name else self.base

    def _fail(self, exc: OSError, action: str, path: str) -> ConnectionFailed:
        if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
            if path == self.base:
                return ConnectionFailed(
                    f"{self._label()}: the folder '{path}' does not exist; fix the connection's path "
                    "(relative paths start from the configuration file's folder) or create the folder",
                    reason="not_found")
            return ConnectionFailed(f"{self._label()}: cannot {action} '{path}': it does not exist", reason="not_found")
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
            return ConnectionFailed(f"{self._label()}: permission denied to {action} '{path}': give the user "
                                    f"running Tessera (uid {os.getuid()}) access to it", reason="permission_denied")
        if exc.errno == errno.ENOTDIR:
            return ConnectionFailed(f"{self._label()}: '{path}' is not a folder: fix the connection's path",
                                    reason="not_found")
        return ConnectionFailed(f"{self._label()}: cannot {action} '{path}': {exc.strerror or exc}", reason="error")

    def _scandir(self, path: str) -> list[Entry]:
        try:
            entries = []
            with os.scandir(path) as it:
                for e in it:
                    try:
                        is_dir = e.is_dir()
                        st = e.stat()
                    except OSError:
                        continue  # a broken symbolic link or a file removed meanwhile
                    if e.is_symlink() and self._leaves(e.path):
                        self.refused.append(
                            f"'{self._rel(e.path)}' is a symbolic link to {os.path.realpath(e.path)}, outside the "
                            "connection's folder: left out (set allow_symlinks: true on the connection to follow it)")
                        continue
                    entries.append(Entry(e.name, is_dir, 0 if is_dir else st.st_size, st.st_mtime))
            return entries
        except OSError as exc:
            raise self._fail(exc, "list", path) from None

    def _get(self, path: str, dest: Path) -> None:
        self._check_link(path, self._rel(path))
        try:
            shutil.copyfile(path, dest)
        except OSError as exc:
            raise self._fail(exc, "read", path) from None

    def _put(self, src: Path, path: str) -> None:
        try:
            shutil.copyfile(src, path)
        except OSError as exc:
            raise self._fail(exc, "write", path) from None

    def _rename(self, src: str, dst: str) -> None:
        try:
            if os.path.exists(dst):
                raise FileExistsError(errno.EEXIST, "exists", dst)
            os.rename(src, dst)
        except OSError as exc:
            raise self._fail(exc, "move", src) from None

    def _replace(self, src: str, dst: str) -> None:
        try:
            os.replace(src, dst)
        except OSError as exc:
            raise self._fail(exc, "rename", src) from None

    def _remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fail(exc, "delete", path) from None

    def _makedirs(self, path: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise self._fail(exc, "create the folder", path) from None


def check(conn, sources) -> list[str]:
    """Check a local folder: it exists and can be listed; count each source's matching files."""
    with LocalFolder(conn) as folder:
        return check_folder(folder, conn, sources)


__all__ = ["RemoteFile", "Folder", "LocalFolder", "open_folder", "check", "match_pattern", "TEMP_MARK"]
