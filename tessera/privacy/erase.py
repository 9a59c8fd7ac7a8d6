"""Erase one customer everywhere the workspace holds them, at once, with a receipt.

The customer is named by a ``tessera_id`` or by any identity value (an e-mail, a phone, a
customer or anonymous id), normalized as the sources normalize it. Then, in this order:

1. the salted hashes of the customer's normalized identifiers join the suppression list
   (:mod:`tessera.privacy.suppression`), so the customer never comes back;
2. sync state: the keys the destinations hold for the customer are marked ``erase``; the next
   run of each sync sends a delete whatever its mode (the hook of the caller, see
   :func:`tessera.syncs.mark_erased`);
3. published datasets: the customer's unified rows, source records and lineage, the rows of
   related datasets that point at them (orders, events), their shared values and matches, and
   the manual identity overrides (merges, splits) that name their source records;
4. rejected rows whose raw text holds one of the identifiers;
5. the raw batches of every file and database source: rows whose identifiers match;
6. the archived files of those batches, rewritten without the rows (:mod:`tessera.privacy.archive`);
7. collected events (``_tessera_events``) and, through the caller's hook, the event log;
8. segment membership and history, and consent history.

Each step is a set-based ``DELETE`` in the engine. The receipt lists every place with the rows
removed; it names the customer by ``tessera_id`` and counts identifiers by kind, never by value.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

import ibis
import ibis.expr.datatypes as dt

from tessera.config.models import DatasetConfig, WorkspaceConfig
from tessera.datasets.build import link_name, relation_target
from tessera.datasets.incremental import kept_unified
from tessera.datasets.search import search_view
from tessera.errors import NotFoundError, UsageError
from tessera.normalize.rules import apply_rules
from tessera.privacy import suppression
from tessera.privacy.archive import rewrite
from tessera.privacy.consent import HISTORY as CONSENT_HISTORY
from tessera.privacy.identifiers import (EVENT_ID_COLUMNS, any_of, deduplicated, digest, identifier_table,
                                         key_rule_sets, text)
from tessera.segments import LOG, MEMBERS
from tessera.sources.events import EVENTS_TABLE
from tessera.sources.importer import PARSE_REJECTS

TID = "tessera_id"
RAW_TABLE = re.compile(r"^_tessera_raw_(.+)_(\d+)$")
# the staged rows of one imported batch, kept from run to run by the pipeline (tessera.pipeline.STAGED_TABLE)
STAGED_TABLE = re.compile(r"^_tessera_staged(rej)?_(.+)_(\d+)_([0-9a-f]{12})$")
RUN_REJECTS = "tessera_rejects"  # the published rejects of the last run
EVENT_REJECTS = "_tessera_events_rejects"
MIN_SEARCHED = 3  # identifiers shorter than this are not searched inside rejected raw text


@dataclass
class Erasure:
    """What an erase works on, and what it removed so far (the receipt's lines)."""

    request: int
    dataset: str | None
    tessera_ids: list[str]
    values: dict[str, list[str]]  # kind -> normalized identifiers (in memory only, never written)
    removed: list[dict] = field(default_factory=list)

    @property
    def all_values(self) -> list[str]:
        return sorted({v for vs in self.values.values() for v in vs})

    def note(self, where: str, rows: int, **extra) -> None:
        if rows:
            self.removed.append({"where": where, "rows": int(rows), **extra})


Hook = Callable[[Erasure], None]


# --------------------------------------------------------------------------- the customer


def normalized_forms(adapter, config: WorkspaceConfig, ds: DatasetConfig, column: str, value: str) -> list[str]:
    """``value`` as each source feeding identity key ``column`` would have normalized it."""
    forms = {value.strip()}
    for rules in key_rule_sets(config, ds, column):
        try:
            out = adapter.execute(apply_rules(ibis.literal(value, dt.string), rules, adapter.dialect).cast("string"))
        except Exception:  # noqa: BLE001 - a rule that cannot read this value (a date rule...) gives nothing
            continue
        if isinstance(out, str) and out.strip():
            forms.add(out.strip())
    return sorted(f for f in forms if f)


def find_customer(ws, value: str, dataset: str | None = None) -> tuple[DatasetConfig | None, list[str], dict]:
    """(customer dataset, tessera_ids, identifiers by kind) of a tessera_id or identity value.

    An identity value that no published record carries gives no id; its forms are still the
    identifiers to suppress and to look for in raw batches and events."""
    value = (value or "").strip()
    if not value:
        raise UsageError("name the customer to erase: a tessera_id, an e-mail, a phone or a customer id")
    config = ws.config
    adapter = ws.adapter
    candidates = [d for d in deduplicated(config) if dataset is None or d.name == dataset]
    if dataset is not None and not candidates:
        raise NotFoundError(f"'{dataset}' is not a deduplicated dataset with identity keys; name one of: "
                            f"{', '.join(d.name for d in deduplicated(config)) or 'none'}")
    for ds in candidates:
        if adapter.published_target(ds.name) is None:
            continue
        t = adapter.table(ds.name)
        if adapter.count(t.filter(t[TID] == value)):
            return ds, [value], identifiers_of(adapter, ds, [value])
    given: dict[str, list[str]] = {}
    for ds in candidates:
        forms = {k.column: normalized_forms(adapter, config, ds, k.column, value) for k in ds.identity_keys}
        for k, vs in forms.items():
            given.setdefault(k, [])
            given[k] = sorted(set(given[k]) | set(vs))
        records = f"{ds.name}__records"
        if adapter.published_target(records) is None:
            continue
        rec = adapter.table(records)
        # identity key columns of the records are trimmed when staged: plain equality finds them
        conds = [(rec[k] if rec[k].type().is_string() else rec[k].cast("string")).isin(vs)
                 for k, vs in forms.items() if k in rec.columns and vs]
        found = sorted(set(adapter.to_arrow(rec.filter(any_of(conds)).select(TID).distinct()).column(TID).to_pylist()))
        if found:
            values = identifiers_of(adapter, ds, found)
            return ds, found, values
    ds = candidates[0] if len(candidates) == 1 else None
    return ds, [], {"given": sorted({v for vs in given.values() for v in vs})}


def identifiers_of(adapter, ds: DatasetConfig, ids: list[str]) -> dict[str, list[str]]:
    """The normalized identity values of the source records of ``ids``, by key."""
    records = f"{ds.name}__records"
    if adapter.published_target(records) is None:
        return {}
    rec = adapter.table(records)
    own = rec.filter(rec[TID].isin(ids))
    parts = [own.select(kind=ibis.literal(k.column), value=text(own[k.column]))
             for k in ds.identity_keys if k.column in rec.columns]
    if not parts:
        return {}
    union = parts[0]
    for p in parts[1:]:
        union = union.union(p, distinct=False)
    out: dict[str, list[str]] = {}
    for r in adapter.to_arrow(union.filter(union.value.notnull()).distinct()).to_pylist():
        out.setdefault(r["kind"], []).append(r["value"])
    return {k: sorted(set(v)) for k, v in sorted(out.items())}


# --------------------------------------------------------------------------- erase


def erase(ws, value: str, *, dataset: str | None = None, actor: str | None = None,
          before_delete: list[Hook] = (), after_delete: list[Hook] = ()) -> dict:
    """Erase a customer (the caller holds the write lock); the receipt, also in the audit log.

    Args:
        ws: the workspace (the facade).
        value: a ``tessera_id`` or an identity value.
        dataset: the customer dataset (default: search every deduplicated dataset).
        actor: who asked (the audit log's actor).
        before_delete: called with the :class:`Erasure` before rows are deleted (sync state).
        after_delete: called at the end (the event log).
    """
    t0 = time.perf_counter()
    adapter = ws.adapter
    config = ws.config
    steps: dict[str, float] = {}

    def timed(name: str, fn, *args) -> None:
        start = time.perf_counter()
        fn(*args)
        steps[name] = round(time.perf_counter() - start, 3)

    ds, ids, values = find_customer(ws, value, dataset)
    steps["find"] = round(time.perf_counter() - t0, 3)
    subject = f"customer {ids[0]}" if len(ids) == 1 else (
        f"customers {', '.join(ids)}" if ids else "an identifier no published record carries")
    request = ws.store.add_privacy_request("erase", subject, actor)
    job = Erasure(request, ds.name if ds else None, ids, values)
    try:
        salt = suppression.salt(ws.secrets, create=True)
        start = time.perf_counter()
        listed = _suppress(adapter, job, salt)
        steps["suppress"] = round(time.perf_counter() - start, 3)
        for hook in before_delete:
            timed("syncs", hook, job)
        if ds is not None and ids:
            timed("datasets", _published, adapter, ws.store, config, ds, job)
        timed("rejects", _rejects, adapter, job)
        timed("raw batches and archived files", _raw_batches, ws, config, job)
        timed("events", _events, adapter, job)
        timed("segments and consent", _segments_and_consent, adapter, job)
        for hook in after_delete:
            timed("event log", hook, job)
    except BaseException as exc:
        # What was removed stays removed; asking again finishes the erase (every step is idempotent).
        # The error's text may quote the identifier: the audit log keeps its kind and step only.
        partial = {"request": request, "subject": subject, "removed": job.removed,
                   "error": type(exc).__name__, "after_steps": list(steps)}
        ws.store.finish_privacy_request(request, "failed", partial)
        ws.store.audit("privacy.erase.failed", actor=actor, target=subject, details=partial)
        raise
    receipt = {
        "request": request, "subject": subject, "dataset": job.dataset, "tessera_ids": ids,
        "identifiers": {k: len(v) for k, v in values.items()}, "suppressed": listed,
        "removed": job.removed, "rows_removed": sum(r["rows"] for r in job.removed),
        "seconds": round(time.perf_counter() - t0, 3), "steps": steps,
    }
    ws.store.finish_privacy_request(request, "done", receipt)
    ws.store.audit("privacy.erase", actor=actor, target=subject, details=receipt)
    return receipt


def _suppress(adapter, job: Erasure, salt: str) -> int:
    rows = [{"kind": k, "value": v} for k, vs in job.values.items() for v in vs]
    if not rows:
        return 0
    t = ibis.memtable(rows, schema={"kind": "string", "value": "string"})
    return suppression.add(adapter, t.select("kind", hash=digest(text(t.value), salt)), job.request)


def _delete(adapter, name: str, matched: ibis.Table, keys: list[str]) -> int:
    n = adapter.count(matched)
    if n:
        adapter.delete_matching(name, matched, keys)
    return n


def _published(adapter, store, config: WorkspaceConfig, ds: DatasetConfig, job: Erasure) -> None:
    """The customer's rows in every published dataset, records and lineage."""
    ids = job.tessera_ids
    sources = {s.name: s for s in config.sources}
    records_name = adapter.published_target(f"{ds.name}__records")
    erased_records: list[str] = []
    if records_name:
        rec = adapter.table(records_name)
        erased_records = adapter.to_arrow(rec.filter(rec[TID].isin(ids)).select("_tessera_record")) \
            .column("_tessera_record").to_pylist()
    for d in config.datasets:
        links = sorted({link_name(config, rel) for m in d.mappings for rel in sources[m.source].relations
                        if m.source in sources and relation_target(config, rel)[2] == ds.name and d.name != ds.name})
        if d.name != ds.name and not links:
            continue
        targets = dict.fromkeys(t for t in (adapter.published_target(d.name),
                                            adapter.published_target(f"{d.name}__records")) if t)
        for target in targets:
            t = adapter.table(target)
            conds = [t[TID].isin(ids)] if d.name == ds.name and TID in t.columns else []
            conds += [t[link].isin(ids) for link in links if link in t.columns]
            if not conds:
                continue
            key = "_tessera_record" if "_tessera_record" in t.columns else TID
            what = "source records and lineage" if key == "_tessera_record" and d.deduplicate else "rows"
            job.note(f"dataset {d.name} ({what})", _delete(adapter, target, t.filter(any_of(conds)), [key]),
                     table=target)
    search = adapter.published_target(search_view(ds.name))
    if search:  # the customer is never found by the search as you type again
        t = adapter.table(search)
        job.note(f"dataset {ds.name} (search index)", _delete(adapter, search, t.filter(t[TID].isin(ids)), [TID]),
                 table=search)
    kept = kept_unified(store).get(ds.name)
    if kept and kept not in (adapter.published_target(ds.name), adapter.published_target(f"{ds.name}__records")) \
            and adapter.exists(kept):
        # the unified table before enrichment, which the next incremental run starts from
        t = adapter.table(kept)
        job.note(f"dataset {ds.name} (unified rows kept for the next run)",
                 _delete(adapter, kept, t.filter(t[TID].isin(ids)), [TID]), table=kept)
    if erased_records:
        # Manual merges and splits name source records (``crm:C1``): those of the customer go too.
        gone = set(erased_records)
        overrides = [o for o in store.list_identity_overrides(ds.name) if gone & set(o["records"])]
        for o in overrides:
            store.delete_identity_override(o["id"])
        job.note(f"identity overrides of dataset {ds.name}", len(overrides))
    values = job.all_values
    for d in deduplicated(config):
        shared = adapter.published_target(f"{d.name}__shared_values")
        if shared and values:
            t = adapter.table(shared)
            if {"key", "value"} <= set(t.columns):
                matched = t.filter(text(t.value).isin(values))
                job.note(f"dataset {d.name} (shared values)", _delete(adapter, shared, matched, ["key", "value"]),
                         table=shared)
        matches = adapter.published_target(f"{d.name}__matches")
        if matches and erased_records:
            t = adapter.table(matches)
            if {"record_l", "record_r"} <= set(t.columns):
                matched = t.filter(t.record_l.isin(erased_records) | t.record_r.isin(erased_records))
                job.note(f"dataset {d.name} (matched pairs)",
                         _delete(adapter, matches, matched, ["record_l", "record_r"]), table=matches)


def _contains_any(column: ibis.Value, values: list[str]) -> ibis.BooleanValue:
    return any_of([column.contains(v) for v in values]).fill_null(False)


def _rejects(adapter, job: Erasure) -> None:
    """Rejected rows whose raw text holds one of the customer's identifiers."""
    values = [v for v in job.all_values if len(v) >= MIN_SEARCHED]
    if not values:
        return
    for name, column, keys, where in (
            (adapter.published_target(RUN_REJECTS), "raw", ["source", "line", "raw"], "rejected rows of the last run"),
            (PARSE_REJECTS if adapter.exists(PARSE_REJECTS) else None, "raw", ["source", "batch", "line"],
             "rejected lines of imported files"),
            (EVENT_REJECTS if adapter.exists(EVENT_REJECTS) else None, "message", ["log_offset", "message"],
             "refused event messages")):
        if not name:
            continue
        t = adapter.table(name)
        if column not in t.columns:
            continue
        job.note(where, _delete(adapter, name, t.filter(_contains_any(t[column], values)), keys), table=name)


def _raw_batches(ws, config: WorkspaceConfig, job: Erasure) -> None:
    """The raw batches of file and database sources, and the archived files of those batches."""
    adapter = ws.adapter
    values = job.all_values
    if not values:
        return
    sources = {s.name: s for s in config.sources}
    files = {(f["source"], f["batch_id"]): f for f in ws.store.list_imported_files()}
    parse_rejects = adapter.table(PARSE_REJECTS) if adapter.exists(PARSE_REJECTS) else None
    tables = sorted(adapter.list_tables())
    for name in tables:
        m = RAW_TABLE.match(name)
        if not m or m.group(1) not in sources:
            continue
        src, batch = sources[m.group(1)], int(m.group(2))
        t = adapter.table(name)
        # The identifiers normalized once into a work table (normalization rules make large expressions).
        work = f"_tessera_erase_{name}"[:63]
        ids, columns = identifier_table(adapter, config, src, t, work)
        if ids is None:
            continue
        hit_rows = ids.filter(any_of([text(ids[c]).isin(values) for c in columns]).fill_null(False))
        hits = adapter.create_table(f"{work}_h"[:63], hit_rows.select(_hit=hit_rows._tessera_line), temp=True)
        adapter.drop_table(work)
        n = adapter.count(hits)
        if not n:
            adapter.drop_table(f"{work}_h"[:63])
            continue
        record = files.get((src.name, batch))
        spans = None
        if record and record.get("archive_path"):
            # Where each removed record ends: the first line after it where a record (or a
            # rejected line) starts; a range join of the few lines removed with the batch's lines.
            lines = t.select(line=t._tessera_line.cast("int64"))
            if parse_rejects is not None:
                pr = parse_rejects.filter((parse_rejects.source == src.name) & (parse_rejects.batch == batch))
                lines = lines.union(pr.select(line=pr.line.cast("int64")), distinct=False)
            after = hits.left_join(lines, lines.line > hits._hit)
            nxt = after.group_by(after._hit).agg(next=after.line.min())
            spans = [(r["_hit"], r["next"]) for r in adapter.to_arrow(nxt.order_by("_hit")).to_pylist()]
        adapter.delete_matching(name, hits.select(_tessera_line=hits._hit), ["_tessera_line"])
        adapter.drop_table(f"{work}_h"[:63])
        # The batch's staged rows kept for the next runs held the customer too: the next run
        # stages the batch again from its purged rows.
        for staged in tables:
            k = STAGED_TABLE.match(staged)
            if k and k.group(2) == src.name and int(k.group(3)) == batch:
                adapter.drop_table(staged)
        shown = record["name"] if record else f"batch {batch}"
        job.note(f"raw batch {batch} of source {src.name} ({shown})", n, table=name)
        if spans is not None:
            how = rewrite(record["archive_path"], record["name"], spans)
            if how != "missing":
                job.note(f"archived file {record['name']} of source {src.name}", len(spans), how=how)


def _events(adapter, job: Erasure) -> None:
    values = job.all_values
    if not values or not adapter.exists(EVENTS_TABLE):
        return
    ev = adapter.table(EVENTS_TABLE)
    # ``email`` is stored trimmed and lower-cased by the collector: compared as it is (no trim per row)
    emails = sorted(suppressed_event_values(job))
    conds = [ev.email.isin(emails) if c == "email" else text(ev[c]).isin(values)
             for c in EVENT_ID_COLUMNS if c in ev.columns]
    if conds:
        key = "message_id" if "message_id" in ev.columns else "log_offset"
        job.note("collected events", _delete(adapter, EVENTS_TABLE, ev.filter(any_of(conds).fill_null(False)), [key]),
                 table=EVENTS_TABLE)


def _segments_and_consent(adapter, job: Erasure) -> None:
    if not job.tessera_ids:
        return
    for name, where in ((MEMBERS, "segment members"), (LOG, "segment entries and exits"),
                        (CONSENT_HISTORY, "consent history")):
        if not adapter.exists(name):
            continue
        t = adapter.table(name)
        if TID in t.columns:
            job.note(where, _delete(adapter, name, t.filter(t[TID].isin(job.tessera_ids)), [TID]), table=name)


def suppressed_event_values(job: Erasure) -> set[str]:
    """The identifiers an event log scrubber looks for (the collector's e-mails are lower-cased)."""
    return set(job.all_values) | {v.lower() for v in job.all_values if "@" in v}
