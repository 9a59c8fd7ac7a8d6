"""Export everything the workspace holds on one customer: a JSON document, or a zip of CSV files.

Sections (each a list of rows; the zip has one CSV file per section, ``source_rows`` one per
source):

- ``customer``: the unified row(s) of the customer dataset;
- ``attribute_sources``: each attribute's value in each source record, with its source, file,
  line and import time (where each value comes from);
- ``records``: the source records and their lineage (``<dataset>__records``);
- ``related``: rows of the datasets that point at the customer (orders, events...), by dataset;
- ``source_rows``: the rows of the raw batches whose identifiers are the customer's, by source;
- ``events``: the collected events carrying one of the customer's identifiers;
- ``segments``: current memberships; ``segment_history``: entries and exits;
- ``consent``: the current consent per channel and every change;
- ``syncs``: what each sync holds for the customer (key, last sent, status), from the caller.

The rows are selected in the engine; only the customer's rows reach Python, to be written.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import ibis

from tessera.config.models import WorkspaceConfig
from tessera.datasets.build import link_name, relation_target
from tessera.errors import NotFoundError, UsageError
from tessera.privacy import consent
from tessera.privacy.erase import RAW_TABLE, find_customer
from tessera.privacy.identifiers import EVENT_ID_COLUMNS, any_of, identifier_table, text
from tessera.segments import LOG, MEMBERS
from tessera.sources.events import EVENTS_TABLE

TID = "tessera_id"


def _plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return str(value)
    return value


def _rows(adapter, expr: ibis.Table) -> list[dict]:
    return [{k: _plain(v) for k, v in r.items()} for r in adapter.to_arrow(expr).to_pylist()]


def collect(ws, value: str, *, dataset: str | None = None,
            syncs: Callable[[str, list[str]], list[dict]] | None = None) -> dict:
    """The export document of a customer (a ``tessera_id`` or an identity value)."""
    adapter = ws.adapter
    config: WorkspaceConfig = ws.config
    ds, ids, values = find_customer(ws, value, dataset)
    if not ids and not any(values.values()):
        raise NotFoundError(f"no customer found for '{value}'")
    all_values = sorted({v for vs in values.values() for v in vs})
    doc: dict = {"exported_at": datetime.now(timezone.utc).isoformat(), "dataset": ds.name if ds else None,
                 "tessera_ids": ids, "identifiers": values, "customer": [], "attribute_sources": [],
                 "records": [], "related": {}, "source_rows": {}, "events": [], "segments": [],
                 "segment_history": [], "consent": {"current": {}, "history": []}, "syncs": []}
    sources = {s.name: s for s in config.sources}
    if ds is not None and ids:
        if adapter.published_target(ds.name):
            t = adapter.table(ds.name)
            doc["customer"] = _rows(adapter, t.filter(t[TID].isin(ids)))
        if adapter.published_target(f"{ds.name}__records"):
            rec = adapter.table(f"{ds.name}__records")
            own = rec.filter(rec[TID].isin(ids))
            doc["records"] = _rows(adapter, own.order_by(["_tessera_source", "_tessera_record"]))
            attrs = [c for c in rec.columns if not c.startswith("_") and c != TID]
            parts = [own.select(TID, attribute=ibis.literal(c), value=own[c].cast("string"),
                                source=own._tessera_source, record=own._tessera_record, file=own._tessera_file,
                                line=own._tessera_line.cast("int64"),
                                imported_at=own._tessera_imported_at.cast("timestamp")) for c in attrs]
            if parts:
                long = parts[0]
                for p in parts[1:]:
                    long = long.union(p, distinct=False)
                long = long.filter(long.value.notnull())
                doc["attribute_sources"] = _rows(adapter, long.order_by(["attribute", "source", "record"]))
        for d in config.datasets:
            if d.name == ds.name:
                continue
            links = sorted({link_name(config, rel) for m in d.mappings if m.source in sources
                            for rel in sources[m.source].relations if relation_target(config, rel)[2] == ds.name})
            if not links or adapter.published_target(d.name) is None:
                continue
            t = adapter.table(d.name)
            conds = [t[link].isin(ids) for link in links if link in t.columns]
            if conds:
                doc["related"][d.name] = _rows(adapter, t.filter(any_of(conds)))
        if adapter.exists(MEMBERS):
            m = adapter.table(MEMBERS)
            doc["segments"] = _rows(adapter, m.filter(m[TID].isin(ids)).order_by("segment"))
        if adapter.exists(LOG):
            lg = adapter.table(LOG)
            doc["segment_history"] = _rows(adapter, lg.filter(lg[TID].isin(ids)).order_by(["segment", "entered_at"]))
        merged = {"current": {}, "history": []}
        for tid in ids:
            c = consent.history(adapter, ds.name, tid)
            merged["current"].update(c["current"])
            merged["history"] += c["history"]
        doc["consent"] = merged
        if syncs is not None:
            doc["syncs"] = syncs(ds.name, ids)
    if all_values:
        for name in sorted(adapter.list_tables()):
            m = RAW_TABLE.match(name)
            if not m or m.group(1) not in sources:
                continue
            src = sources[m.group(1)]
            t = adapter.table(name)
            work = f"_tessera_export_{name}"[:63]
            ids, columns = identifier_table(adapter, config, src, t, work)
            if ids is None:
                continue
            try:
                hits = ids.filter(any_of([text(ids[c]).isin(all_values) for c in columns]).fill_null(False))
                rows = _rows(adapter, t.semi_join(hits, t._tessera_line.cast("int64") == hits._tessera_line)
                             .order_by("_tessera_line"))
            finally:
                adapter.drop_table(work)
            if rows:
                doc["source_rows"].setdefault(src.name, []).extend(rows)
        if adapter.exists(EVENTS_TABLE):
            ev = adapter.table(EVENTS_TABLE)
            conds = [text(ev[c]).isin(all_values) for c in EVENT_ID_COLUMNS if c in ev.columns]
            doc["events"] = _rows(adapter, ev.filter(any_of(conds).fill_null(False)).order_by(["timestamp", "message_id"]))
    return doc


def counts(doc: dict) -> dict:
    """Rows per section (what the audit log records of an export)."""
    out = {}
    for key in ("customer", "attribute_sources", "records", "events", "segments", "segment_history", "syncs"):
        out[key] = len(doc[key])
    out["related"] = {k: len(v) for k, v in doc["related"].items()}
    out["source_rows"] = {k: len(v) for k, v in doc["source_rows"].items()}
    out["consent"] = len(doc["consent"]["history"])
    return out


def _csv(rows: list[dict]) -> bytes:
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in names]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names or ["(none)"], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
    return buf.getvalue().encode("utf-8")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def write(doc: dict, path: str | Path, fmt: str | None = None) -> Path:
    """Write the document as ``json`` or as a ``zip`` of CSV files (from the suffix by default)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "json").lower()
    if fmt not in ("json", "zip"):
        raise UsageError(f"unknown export format '{fmt}': use json or zip (CSV files)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "json":
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    else:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for key in ("customer", "attribute_sources", "records", "events", "segments", "segment_history", "syncs"):
                z.writestr(f"{key}.csv", _csv(doc[key]))
            for name, rows in doc["related"].items():
                z.writestr(f"related_{_safe(name)}.csv", _csv(rows))
            for name, rows in doc["source_rows"].items():
                z.writestr(f"source_rows_{_safe(name)}.csv", _csv(rows))
            z.writestr("consent.csv", _csv(doc["consent"]["history"]))
            z.writestr("identifiers.csv", _csv([{"kind": k, "value": v} for k, vs in doc["identifiers"].items()
                                                 for v in vs]))
    tmp.replace(path)
    return path
