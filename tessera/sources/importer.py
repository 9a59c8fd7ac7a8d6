"""Imports: new files of a source into the raw layer, archived and recorded once.

Each new file becomes one immutable raw batch table ``_tessera_raw_<source>_<batch>``; the file
is copied into the workspace archive under its content hash. A file already imported (same
content hash for the source) is skipped, so importing again changes nothing.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from tessera.config.models import LocalConnectionConfig, SourceConfig
from tessera.engine.base import EngineAdapter
from tessera.errors import SourceError

PARSE_REJECTS = "_tessera_parse_rejects"


def raw_table(source: str, batch: int) -> str:
    return f"_tessera_raw_{source}_{batch}"


@dataclass
class ImportResult:
    source: str
    files_new: int = 0
    files_skipped: int = 0
    rows: int = 0
    rejected: int = 0
    messages: list[str] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_files(conn: LocalConnectionConfig, src: SourceConfig) -> list[Path]:
    base = Path(conn.path)
    if not base.is_dir():
        raise SourceError(
            f"Source '{src.name}': the folder '{base}' of connection '{conn.name}' does not exist; "
            "fix the connection's path."
        )
    return sorted(p for p in base.glob(src.pattern) if p.is_file())


def import_source(adapter: EngineAdapter, store, src: SourceConfig, conn: LocalConnectionConfig,
                  archive_dir: Path, progress=None) -> ImportResult:
    """Import the source's new files. Raises SourceError when a file exceeds the reject rate."""
    result = ImportResult(src.name)
    files = list_files(conn, src)
    if not files:
        result.messages.append(f"no file matches '{src.pattern}' in {conn.path}")
    options = {"header": src.csv.header, "quote": src.csv.quote}
    if src.csv.delimiter:
        options["delimiter"] = src.csv.delimiter
    # Identifiers are always text and declared types win: neither needs inference.
    declared = frozenset(src.types) | frozenset(src.record_keys) | frozenset(r.column for r in src.relations)
    for path in files:
        digest = sha256_of(path)
        if store.find_imported_file(src.name, digest):
            result.files_skipped += 1
            continue
        batch = store.next_batch_id()
        table = raw_table(src.name, batch)
        rel = str(path.relative_to(conn.path))
        info = adapter.import_file(str(path), src.format, table=table, options=options,
                                   decimal_comma=src.csv.decimal_comma, batch=batch, file_name=rel,
                                   declared=declared)
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
        archived = archive_dir / src.name / digest[:2] / (digest + path.suffix.lower())
        if not archived.exists():
            archived.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, archived)
        store.set_source_schema(src.name, [(c, info.types.get(c, "string")) for c in info.columns])
        store.add_imported_file(
            source=src.name, path=str(path), name=rel, sha256=digest, size=path.stat().st_size,
            batch_id=batch, imported_at=datetime.now(timezone.utc), rows=info.rows,
            rejected=info.rejected, archive_path=str(archived), status="imported",
        )
        result.files_new += 1
        result.rows += info.rows
        result.rejected += info.rejected
        if progress:
            progress(rel)
    return result
