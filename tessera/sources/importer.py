"""Imports: new files of a source into the raw layer, archived and recorded once.

A file source reads a folder through :mod:`tessera.connectors.files` — a local folder, an FTP,
FTPS or SFTP server alike. For each file matching the source's pattern:

1. a file whose content was already imported for the source is skipped, so importing again
   changes nothing. A file is first compared with the listing of the last import (kept in the
   metadata store's state ``file_listing/<source>``): a remote file by name, size and
   modification time, which when they match a file that was imported is skipped without being
   downloaded; a local file by name, size, modification and change times and inode (any write
   moves its change time, which no program can set back), which when they match is skipped
   without being read. Otherwise the file is hashed in place (downloaded first if remote). A
   local file changed in the last seconds before it was hashed is hashed again next time (its
   times may not tell a write made in the same clock tick);
2. a new file becomes one immutable raw batch table ``_tessera_raw_<source>_<batch>``
   (remote files are downloaded into a temporary folder of the workspace archive first);
3. the file is kept in the workspace archive under its content hash, and recorded;
4. with ``archive_folder`` set, the file is then moved into that folder of the connection
   (on the server for remote folders); files already in it are never imported again.

Each file is recorded as soon as it is imported: a failure later (a server that drops the
connection) keeps what was imported before it.

A file that cannot be read (binary garbage, a broken compression, a header that is not text,
duplicate or too many columns, more rejected rows than ``max_reject_rate``) is *refused*: it is
kept aside in the workspace archive (``refused/<source>/``), remembered by its content hash in
the metadata store's state ``refused_files/<source>`` so later imports skip it without reading it
again, and reported; the source's other files are imported. Fixing the file (its content changes)
or ``tessera import --retry-refused`` tries it again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from tessera.config.models import SourceConfig
from tessera.connectors.files import Folder, RemoteFile, open_folder
from tessera.engine.base import EngineAdapter
from tessera.errors import ConnectionFailed, SourceError
from tessera.sources.compressed import Member, expand, is_compressed

PARSE_REJECTS = "_tessera_parse_rejects"
#: metadata store state scope: source -> {name: [size, mtime, sha256]} (remote),
#: {name: [size, mtime_ns, ctime_ns, inode, sha256]} (local)
LISTING_STATE = "file_listing"
#: a local file changed less than this before its hash was taken is not remembered by its times
#: (a write in the same tick of the file system's clock would leave them as they were)
SETTLED_NS = 2 * 10**9
REFUSED_STATE = "refused_files"  # metadata store state scope: source -> {sha256: {name, reason, kept}}
REFUSED = "refused"  # folder of the workspace archive where refused files are kept aside
INCOMING = ".incoming"  # folder of the workspace archive where remote files are downloaded


def raw_table(source: str, batch: int) -> str:
    return f"_tessera_raw_{source}_{batch}"


@dataclass
class ImportResult:
    source: str
    files_new: int = 0
    files_skipped: int = 0
    rows: int = 0
    rejected: int = 0
    files_moved: int = 0
    messages: list[str] = field(default_factory=list)
    # files refused in this import: {"file", "reason", "kept"}; and what the user should know
    refused: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _source_failed(src: SourceConfig, exc: ConnectionFailed) -> ConnectionFailed:
    """The connection's diagnosis, prefixed with the source that needed it."""
    text = str(exc)
    if f"connection '{src.connection}'" not in text:
        text = f"connection '{src.connection}': {text}"
    return ConnectionFailed(f"Source '{src.name}': {text}", reason=exc.reason)


def list_files(folder: Folder, src: SourceConfig) -> list[RemoteFile]:
    """The files of the source: those matching its pattern, outside its archive folder."""
    files = folder.list(src.pattern)
    if src.archive_folder:
        files = [f for f in files if not folder.is_inside(f.name, src.archive_folder)]
    return files


class _Listing:
    """What the last import saw of a folder: name -> what identifies the file's content, and its
    content hash.

    A remote file whose name, size and modification time are unchanged, and whose content
    hash is still recorded as imported, need not be downloaded again to know it was imported.
    A local file is known by its size, modification and change times and inode (see the module's
    docstring): one unchanged need not be read again.
    """

    def __init__(self, store, source: str, imported: set[str], listed: list[RemoteFile], folder: Folder):
        self.store = store
        self.source = source
        self.imported = imported
        self.folder = folder
        self.local = folder.local_path("") is not None
        self.before: dict = store.get_state(LISTING_STATE, source, {}) or {}
        # files not reached (an import that fails half-way) keep what was known of them
        self.after: dict[str, list] = {f.name: self.before[f.name] for f in listed if f.name in self.before}
        self._stats: dict[str, list | None] = {}

    def _stat(self, f: RemoteFile) -> list | None:
        """A local file's [size, mtime_ns, ctime_ns, inode], taken before it is read, or None
        when it changed too recently to be known by them."""
        if f.name not in self._stats:
            try:
                st = os.stat(self.folder.local_path(f.name))
            except (OSError, ConnectionFailed):
                self._stats[f.name] = None
            else:
                settled = st.st_ctime_ns < time.time_ns() - SETTLED_NS
                self._stats[f.name] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino] if settled else None
        return self._stats[f.name]

    def known(self, f: RemoteFile) -> str | None:
        """The content hash of ``f`` if it is unchanged since an import, else None."""
        seen = self.before.get(f.name)
        if self.local:
            stat = self._stat(f)
            if stat is None or not seen or len(seen) != 5 or seen[:4] != stat:
                return None
            return seen[4] if seen[4] in self.imported else None
        if f.mtime is None or not seen or len(seen) != 3:
            return None
        size, mtime, digest = seen
        if size == f.size and mtime is not None and abs(mtime - f.mtime) < 1e-3 and digest in self.imported:
            return digest
        return None

    def remember(self, f: RemoteFile, digest: str) -> None:
        if self.local:
            stat = self._stat(f)
            if stat is None:
                self.after.pop(f.name, None)
            else:
                self.after[f.name] = [*stat, digest]
        elif f.mtime is not None:
            self.after[f.name] = [f.size, f.mtime, digest]

    def forget(self, f: RemoteFile) -> None:
        self.after.pop(f.name, None)

    def save(self) -> None:
        """Keep what is known of the files still in the folder (moved ones are gone from it)."""
        if self.after != self.before:
            self.store.set_state(LISTING_STATE, self.source, self.after)


def import_source(adapter: EngineAdapter, store, src: SourceConfig, conn, archive_dir: Path,
                  progress=None) -> ImportResult:
    """Import the source's new files from its connection (local, ftp, ftps or sftp; secrets revealed).

    Raises:
        ConnectionFailed: the folder or server cannot be used (the message names the source,
            the connection and what to fix); files imported before the failure stay recorded.
        SourceError: a file cannot be read, or exceeds the source's reject rate.
    """
    result = ImportResult(src.name)
    try:
        folder = open_folder(conn)
    except ConnectionFailed as exc:
        raise _source_failed(src, exc) from None
    with folder:
        try:
            files = list_files(folder, src)
        except ConnectionFailed as exc:
            raise _source_failed(src, exc) from None
        if not files:
            result.messages.append(f"no file matches '{src.pattern}' in {folder.url()}")
        result.warnings += [f"Source '{src.name}': {r}" for r in folder.refused]
        imported = {f["sha256"] for f in store.list_imported_files(src.name)}
        refused: dict = store.get_state(REFUSED_STATE, src.name, {}) or {}
        refused_before = dict(refused)
        listing = _Listing(store, src.name, imported, files, folder)
        incoming: Path | None = None
        move_failures: list[str] = []
        try:
            for f in files:
                local = folder.local_path(f.name)
                digest = listing.known(f)
                if digest is None and local is None:
                    if incoming is None:
                        (archive_dir / INCOMING).mkdir(parents=True, exist_ok=True)
                        incoming = Path(tempfile.mkdtemp(prefix="import-", dir=archive_dir / INCOMING))
                    local = incoming / Path(f.name).name  # keeps the extension: the format comes from it
                    try:
                        folder.download(f.name, local)
                    except ConnectionFailed as exc:
                        if exc.reason not in ("not_found", "permission_denied", "config"):
                            raise _source_failed(src, exc) from None
                        # This one file: gone since the listing, forbidden, or a link the server (or
                        # Tessera) refuses. The others go on; it is tried again next time.
                        local.unlink(missing_ok=True)
                        result.warnings.append(f"Source '{src.name}': file '{f.name}' could not be downloaded and "
                                               f"was left out of this import ({exc}); it is tried again next time")
                        continue
                if digest is None:
                    digest = sha256_of(local)
                if digest in imported:
                    result.files_skipped += 1
                elif digest in refused:
                    result.files_skipped += 1
                    result.warnings.append(
                        f"Source '{src.name}': file '{f.name}' is still refused ({refused[digest]['reason']}); "
                        f"fix or replace it, or run: tessera import {src.name} --retry-refused")
                    if local is not None and incoming is not None and local.parent == incoming:
                        local.unlink(missing_ok=True)
                    continue
                elif is_compressed(f.name):
                    if incoming is None:
                        (archive_dir / INCOMING).mkdir(parents=True, exist_ok=True)
                        incoming = Path(tempfile.mkdtemp(prefix="import-", dir=archive_dir / INCOMING))
                    try:
                        _import_compressed(adapter, store, src, folder, f, local, digest, archive_dir, result,
                                           imported, incoming)
                    except SourceError as exc:
                        refused[digest] = _refuse(src, f, local, digest, archive_dir, exc, result)
                        if local is not None and incoming is not None and local.parent == incoming:
                            local.unlink(missing_ok=True)
                        continue  # left where it is: not moved to the archive folder
                    if progress:
                        progress(f.name)
                else:
                    try:
                        _import_file(adapter, store, src, folder, f, local, digest, archive_dir, result)
                    except SourceError as exc:
                        refused[digest] = _refuse(src, f, local, digest, archive_dir, exc, result)
                        if local is not None and incoming is not None and local.parent == incoming:
                            local.unlink(missing_ok=True)
                        continue  # left where it is: not moved to the archive folder
                    imported.add(digest)
                    if progress:
                        progress(f.name)
                listing.remember(f, digest)
                if local is not None and incoming is not None and local.parent == incoming:
                    local.unlink(missing_ok=True)
                if src.archive_folder:
                    try:
                        folder.move(f.name, src.archive_folder)
                    except ConnectionFailed as exc:
                        move_failures.append(f"'{f.name}': {exc}")
                    else:
                        result.files_moved += 1
                        listing.forget(f)
        finally:
            if refused != refused_before:
                store.set_state(REFUSED_STATE, src.name, refused)
            listing.save()
            if incoming is not None:
                shutil.rmtree(incoming, ignore_errors=True)
    if move_failures:
        raise SourceError(
            f"Source '{src.name}': imported, but {len(move_failures)} file(s) could not be moved to its "
            f"archive_folder '{src.archive_folder}' (they will be skipped, then moved, next time): "
            + "; ".join(move_failures[:3]) + ". Fix the folder's permissions or the source's archive_folder."
        )
    return result


def _import_compressed(adapter: EngineAdapter, store, src: SourceConfig, folder: Folder, f: RemoteFile,
                       local: Path, digest: str, archive_dir: Path, result: ImportResult, imported: set[str],
                       incoming: Path) -> None:
    """A ``.gz`` file is imported as the plain file inside it (archived compressed); each member
    of a ``.zip`` as a file of its own, skipped when its content was already imported."""
    work = Path(tempfile.mkdtemp(prefix="expand-", dir=incoming))
    try:
        try:
            members = expand(local, f.name, work)
        except SourceError as exc:
            raise SourceError(f"Source '{src.name}': {exc}") from None
        if f.name.lower().endswith(".gz"):
            _import_file(adapter, store, src, folder, f, local, digest, archive_dir, result, read_path=members[0].path)
            imported.add(digest)
            return
        for m in members:
            m_digest = sha256_of(m.path)
            if m_digest in imported:
                result.files_skipped += 1
                continue
            _import_file(adapter, store, src, folder, f, m.path, m_digest, archive_dir, result, member=m)
            imported.add(m_digest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _refuse(src: SourceConfig, f: RemoteFile, local: Path, digest: str, archive_dir: Path,
            exc: SourceError, result: ImportResult) -> dict:
    """Keep a file that cannot be imported aside, with its reason; the source's other files go on."""
    kept = archive_dir / REFUSED / src.name / f"{digest[:12]}_{Path(f.name).name}"
    if not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, kept)
    reason = str(exc).removeprefix(f"Source '{src.name}': ")
    result.refused.append({"file": f.name, "reason": reason, "kept": str(kept)})
    result.warnings.append(
        f"Source '{src.name}': file '{f.name}' was refused: {reason} (kept aside as {kept}). Fix or replace "
        f"the file and run again, or run: tessera import {src.name} --retry-refused")
    return {"name": f.name, "reason": reason[:500], "kept": str(kept)}


def forget_refused(store, source: str) -> int:
    """Forget the files refused for ``source`` so the next import tries them again; how many."""
    refused = store.get_state(REFUSED_STATE, source, {}) or {}
    if refused:
        store.set_state(REFUSED_STATE, source, {})
    return len(refused)


def _import_file(adapter: EngineAdapter, store, src: SourceConfig, folder: Folder, f: RemoteFile,
                 local: Path, digest: str, archive_dir: Path, result: ImportResult, *,
                 read_path: Path | None = None, member: Member | None = None) -> None:
    """Parse one new file into its raw batch table, archive it and record it.

    ``read_path``: the plain file to parse when ``local`` (archived) is compressed; ``member``: a
    member of a zip archive, written at ``local``."""
    options = {"header": src.csv.header, "quote": src.csv.quote, "max_line_bytes": src.max_line_bytes}
    if src.csv.delimiter:
        options["delimiter"] = src.csv.delimiter
    # Identifiers are always text and declared types win: neither needs inference.
    declared = frozenset(src.types) | frozenset(src.record_keys) | frozenset(r.column for r in src.relations)
    rel = member.name if member else f.name
    shown = folder.url(f.name) + (member.name[len(f.name):] if member else "")
    batch = store.next_batch_id()
    table = raw_table(src.name, batch)
    try:
        info = adapter.import_file(str(read_path or local), src.format, table=table, options=options,
                                   decimal_comma=src.csv.decimal_comma, batch=batch, file_name=rel,
                                   declared=declared)
    except SourceError as exc:
        if folder.local_path(f.name) is not None and read_path is None and member is None:
            raise
        # name the file where the user knows it, not its temporary download
        raise SourceError(f"Source '{src.name}': {str(exc).replace(str(read_path or local), shown)}") from exc
    except Exception as exc:  # noqa: BLE001 - a file the parser chokes on is refused, never a crash
        if adapter.exists(table):
            adapter.drop_table(table)
        if adapter.stopped(exc):
            raise  # out of memory or interrupted: the job stops, the file is not to blame
        detail = (str(exc).strip().splitlines() or [""])[0][:300].replace(str(local), rel)
        raise SourceError(f"Source '{src.name}': file '{rel}' could not be read ({type(exc).__name__}"
                          f"{': ' + detail if detail else ''})") from exc
    total = info.rows + info.rejected
    if total and info.rejected / total > src.max_reject_rate:
        adapter.drop_table(table)
        first = info.rejects.slice(0, 3).to_pylist()
        examples = "; ".join(f"line {r['line']}: {r['reason']}" for r in first)
        raise SourceError(
            f"Source '{src.name}': file '{rel}' has {info.rejected} rejected rows out of {total} "
            f"({info.rejected / total:.1%}), above max_reject_rate {src.max_reject_rate:.1%} "
            f"(e.g. {examples}). Nothing was imported from it; fix the file or raise max_reject_rate."
        )
    if info.rejected:
        n = info.rejects.num_rows
        rejects = pa.table({
            "source": pa.array([src.name] * n, pa.string()),
            "file": pa.array([rel] * n, pa.string()),
            "line": info.rejects.column("line").cast(pa.int64()),
            "column_name": info.rejects.column("column_name").cast(pa.string()),
            "reason": info.rejects.column("reason").cast(pa.string()),
            "raw": info.rejects.column("raw").cast(pa.string()),
            "batch": pa.array([batch] * n, pa.int64()),
        })
        adapter.append(PARSE_REJECTS, rejects)
    archived = archive_dir / src.name / digest[:2] / (digest + Path(rel).suffix.lower())
    if not archived.exists():
        archived.parent.mkdir(parents=True, exist_ok=True)
        if folder.local_path(f.name) is None or member is not None:
            os.replace(local, archived)  # a download or an extraction of ours: move it, no copy
        else:
            shutil.copy2(local, archived)
    store.set_source_schema(src.name, [(c, info.types.get(c, "string")) for c in info.columns])
    store.add_imported_file(
        source=src.name, path=shown, name=rel, sha256=digest, size=member.size if member else f.size,
        batch_id=batch, imported_at=datetime.now(timezone.utc), rows=info.rows,
        rejected=info.rejected, archive_path=str(archived), status="imported",
    )
    result.files_new += 1
    result.rows += info.rows
    result.rejected += info.rejected
