"""Checks at apply: the columns a configuration names for a source exist in its data.

The columns a source is known to have are those of its last import (the metadata store's
inferred schema) or, before any import, those of the first file its pattern matches in a local
folder. Every name used for the source (record keys, selected columns, types, normalization
rules, relations, filters, items, and the source columns of the mappings that read it) is
checked against them; a name that is not there is reported with the closest one
("'Telephone' is not a column of source 'crm' (file contacts.csv): did you mean 'Téléphone'?").
Sources whose columns cannot be read yet (a remote folder never imported, an event stream)
are checked at run time.
"""

from __future__ import annotations

import difflib
import unicodedata
from pathlib import Path


from tessera.config.models import WorkspaceConfig
from tessera.engine.filereader import peek_columns
from tessera.sources.staging import filter_columns, nested_path

_PEEK_MAX_BYTES = 50 * 1024 * 1024  # larger files are checked at their import


def _fold(name: str) -> str:
    text = unicodedata.normalize("NFKD", name)
    return "".join(c for c in text if not unicodedata.combining(c)).lower().replace(" ", "_")


def did_you_mean(name: str, known: list[str]) -> str | None:
    """The known column closest to ``name`` (accents, case and spaces aside), if one is close."""
    folded = {_fold(k): k for k in known}
    if _fold(name) in folded:
        return folded[_fold(name)]
    close = difflib.get_close_matches(_fold(name), list(folded), n=1, cutoff=0.75)
    return folded[close[0]] if close else None


def _first_local_file(config: WorkspaceConfig, src) -> Path | None:
    conn = next((c for c in config.connections if c.name == src.connection), None)
    if conn is None or conn.type != "local" or not src.pattern:
        return None
    folder = Path(conn.path)
    try:
        files = sorted(p for p in folder.glob(src.pattern) if p.is_file())
    except (OSError, ValueError):
        return None
    return files[0] if files else None


def _peek(path: Path, fmt: str, options: dict) -> list[str] | None:
    if path.stat().st_size > _PEEK_MAX_BYTES or path.name.lower().endswith((".gz", ".zip")):
        return None
    return peek_columns(str(path), fmt, options)  # None: a file that cannot be read is reported at its import


def known_columns(config: WorkspaceConfig, store) -> dict[str, tuple[list[str], str]]:
    """Source name -> (its known columns, where they were read) for the sources whose columns can
    be known now."""
    out: dict[str, tuple[list[str], str]] = {}
    http = {c.name for c in config.connections if c.type == "http"}
    for src in config.sources:
        if src.connection in http:
            continue
        if src.items_of is not None:
            parent = next((s for s in config.sources if s.name == src.items_of.source), None)
            if parent is not None:
                out[src.name] = ([*parent.record_keys, "position", *src.items_of.fields],
                                 f"items of '{parent.name}'.{src.items_of.column}")
            continue
        schema = [c for c, _ in store.get_source_schema(src.name)]
        if schema:
            out[src.name] = (schema, "its last import")
            continue
        path = _first_local_file(config, src)
        if path is not None:
            options = {"header": src.csv.header, "quote": src.csv.quote}
            if src.csv.delimiter:
                options["delimiter"] = src.csv.delimiter
            cols = _peek(path, src.format, options)
            if cols is not None:
                out[src.name] = (cols, f"file {path.name}")
    return out


def column_problems(config: WorkspaceConfig, store) -> list[str]:
    """Every column named for a source that its data does not have, with a suggestion."""
    known = known_columns(config, store)
    problems: list[str] = []
    sources = {s.name: s for s in config.sources}

    def check(source: str, column: str, where: str) -> None:
        if source not in known:
            return
        cols, origin = known[source]
        if column in cols or nested_path(column, set(cols)) is not None:
            return
        hint = did_you_mean(column, cols)
        fix = f"did you mean '{hint}'?" if hint else f"its columns are: {', '.join(cols[:30])}"
        problems.append(f"{where}: '{column}' is not a column of source '{source}' ({origin}); {fix}")

    for i, s in enumerate(config.sources):
        where = f"sources[{i}] ({s.name})"
        for k in s.record_keys:
            check(s.name, k, f"{where}.record_keys")
        for c in s.columns or []:
            check(s.name, c, f"{where}.columns")
        for c in s.types:
            check(s.name, c, f"{where}.types")
        for c in s.normalize:
            check(s.name, c, f"{where}.normalize")
        for j, r in enumerate(s.relations):
            check(s.name, r.column, f"{where}.relations[{j}].column")
            obj, col = r.to.split(".", 1)
            if obj in sources:
                check(obj, col, f"{where}.relations[{j}].to")
        if s.filter:
            try:
                used = filter_columns(s.filter)
            except Exception:  # noqa: BLE001 - a filter that does not parse is reported by its own check
                used = set()
            for c in sorted(used):
                check(s.name, c, f"{where}.filter")
        if s.items_of is not None and s.items_of.source in sources:
            check(s.items_of.source, s.items_of.column, f"{where}.items_of.column")
    for i, d in enumerate(config.datasets):
        for j, m in enumerate(d.mappings):
            for col, src_col in m.columns.items():
                check(m.source, src_col, f"datasets[{i}] ({d.name}).mappings[{j}].columns.{col}")
    return problems
