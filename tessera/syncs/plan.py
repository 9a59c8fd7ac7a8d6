"""The plan of a sync: which records to insert, update or delete at the destination.

Everything here is an Ibis expression run by the warehouse engine; no Python loop ever sees the
rows. The steps, for one sync:

1. **Rows to send** (:func:`rows_to_send`): the published dataset, filtered by the sync's
   ``filter`` (a SQL condition checked and rendered like computed columns), kept only where the
   contact opted in to every channel the destination connection ``requires_consent`` for, and
   mapped to the destination's fields (``fields``: destination field -> dataset column; when
   unset, every column but the records' lineage columns ``_tessera_*``; the key always sent).
   Rows without a key are left out. Each row gets its key as text (``_tessera_key``) and a row
   hash (``_tessera_hash``, :func:`row_hash`): the md5 of the field names and values, joined by
   U+001F, NULL written U+001E. A key shared by several rows is sent once (:func:`deduplicate`).
2. **State** (:func:`load_state`): the table ``_tessera_sync_<name>`` in the warehouse holds,
   per key sent to the destination: ``key``, ``hash`` (the version the destination holds;
   NULL when it never received the record), ``status`` (``ok`` or ``failed``: a change for it
   failed and is retried), ``error``, ``attempts`` (failed attempts in a row), ``sent_at`` and
   ``pending`` (the operation that failed).
3. **Plan** (:func:`classify`): a full outer join of the rows' keys and hashes with the state
   gives one operation per key (the destination fields are joined back for the changes only,
   :func:`changes`):

   =============  ===========================================================================
   ``insert``     the key is not in the state, or the destination never received it (a failed
                  insert is retried)
   ``update``     ``upsert``/``mirror``: the row hash differs from the hash the destination holds
   ``delete``     ``mirror``: the key left the rows (dataset, filter or consent) and the
                  destination holds it; any mode: the customer was erased (``pending`` is
                  ``erase``, :mod:`tessera.syncs.erased`)
   ``unchanged``  same hash, or ``insert`` mode (which never updates)
   ``keep``       ``insert``/``upsert``: the key left the rows; the destination keeps it, the
                  state too (it is not sent again if it comes back unchanged)
   ``drop``       the key left the rows and the destination never received it: forgotten
   =============  ===========================================================================

4. **New state** (:func:`with_outcome`, :func:`next_state`), once the changes are sent: sent
   keys take their new hash, failed keys keep the hash the destination holds with their error
   (so they are sent again next run), deleted and dropped keys leave the state.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt

from tessera.config.models import SyncConfig
from tessera.engine.types import TRUE_WORDS
from tessera.errors import ConfigError, SyncError
from tessera.sqlcheck import check_expression

PREFIX = "_tessera_sync_"
# Columns the plan adds beside the destination fields (a destination field may not start with _tessera_).
KEY = "_tessera_key"
HASH = "_tessera_hash"
OP = "_tessera_op"
RETRY = "_tessera_retry"
# The state's columns, as the plan names them after the join.
S = "_tessera_s_"
STATE_COLUMNS = ("key", "hash", "status", "error", "attempts", "sent_at", "pending")
STATE_SCHEMA = ibis.schema({
    "key": dt.string, "hash": dt.string, "status": dt.string, "error": dt.string, "attempts": dt.int64,
    "sent_at": dt.timestamp, "pending": dt.string,
})
CHANGES = ("insert", "update", "delete")
ERASE = "erase"  # the state's ``pending`` of a key whose customer was erased: deleted at the next run
OPT_IN_FIELDS = {"email": "EmailOptIn", "sms": "SmsOptIn", "phone": "PhoneOptIn", "ads": "AdsOptIn"}


MAX_NAME = 63  # the longest table name every engine takes (PostgreSQL)


def _table_name(name: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    return name[: MAX_NAME - 9] + "_" + hashlib.md5(name.encode()).hexdigest()[:8]


def state_table_name(sync: str) -> str:
    """The warehouse table of the sync's state: ``_tessera_sync_<name>``."""
    return _table_name(f"{PREFIX}{sync}")


def work_table_name(sync: str, what: str) -> str:
    """A work table of one sync run (``plan``, ``failed``), dropped at the end of the run."""
    return _table_name(f"_tessera_syncw_{sync}__{what}")


@dataclass
class Prepared:
    """A sync resolved against the published dataset: what to send and how."""

    sync: SyncConfig
    fields: dict[str, str]  # destination field -> dataset column, in order (the key included)
    key_field: str  # the destination field that holds the key
    consent: dict[str, str]  # channel -> opt-in column
    rows: ibis.Table  # _tessera_key, then the destination fields
    field_types: dict[str, dt.DataType]  # destination field -> type
    notes: list[str] = field(default_factory=list)

    def hashed(self) -> ibis.Table:
        """``_tessera_key`` and ``_tessera_hash`` of the rows (the hash of the fields sorted by name)."""
        return self.rows.select(KEY, **{HASH: row_hash(self.rows, sorted(self.fields))})

    @property
    def destination_identity(self) -> str:
        """What makes the state meaningful: the destination and the key. When it changes, the
        state is reset and every record is sent as new."""
        s = self.sync
        spec = {"connection": s.connection, "table": s.table, "folder": s.folder, "key": s.key,
                "key_field": self.key_field}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def content_identity(self) -> str:
        """What the rows are made of (dataset, fields, filter, consent, mode): informative only,
        since a change of fields changes every row hash by itself."""
        s = self.sync
        spec = {"dataset": s.dataset, "fields": self.fields, "filter": s.filter, "consent": self.consent,
                "mode": s.mode}
        if s.segment:
            spec["segment"] = s.segment
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _where(sync: SyncConfig) -> str:
    return f"sync '{sync.name}'"


# --------------------------------------------------------------------------- rows to send


def resolve_fields(sync: SyncConfig, columns: list[str], dataset: str) -> tuple[dict[str, str], str]:
    """The destination fields (destination -> dataset column, the key included) and the key's field."""
    where = _where(sync)
    if sync.key not in columns:
        raise SyncError(f"{where}: key '{sync.key}' is not a column of the published dataset '{dataset}' "
                        f"(columns: {', '.join(columns)}); fix key, or run the pipeline if the column is new")
    if sync.fields is None:
        # every column, except the lineage columns of the records (_tessera_record, _tessera_batch...)
        fields = {c: c for c in columns if not c.startswith("_tessera_") or c == sync.key}
        if sync.key not in fields:
            fields = {sync.key: sync.key, **fields}
    else:
        fields = dict(sync.fields)
        for dest, col in fields.items():
            if col not in columns:
                raise SyncError(f"{where}: fields.{dest}: '{col}' is not a column of the published dataset "
                                f"'{dataset}'; fix the mapping, or run the pipeline (tessera run) if the column is new")
        if sync.key not in fields.values():
            if sync.key in fields:
                raise SyncError(f"{where}: fields.{sync.key} maps the destination field '{sync.key}' to "
                                f"'{fields[sync.key]}', but the key column '{sync.key}' is always sent under its "
                                f"own name: map it explicitly, e.g. fields: {{id: {sync.key}}}")
            fields = {sync.key: sync.key, **fields}
    for dest in fields:
        if dest.startswith("_tessera_"):
            raise SyncError(f"{where}: fields.{dest}: destination fields starting with _tessera_ are reserved; "
                            "give the field another name")
    key_field = next(d for d, c in fields.items() if c == sync.key)
    return fields, key_field


def consent_columns(ws, sync: SyncConfig, conn, columns: list[str]) -> dict[str, str]:
    """The opt-in column of each channel the destination requires consent for.

    ``consent_columns`` of the sync first; else the dataset column whose semantic field is
    EmailOptIn/SmsOptIn (declared first, then suggested from its name)."""
    needed = list(getattr(conn, "requires_consent", []) or [])
    if not needed:
        return {}
    out: dict[str, str] = {}
    described = None
    for channel in needed:
        col = sync.consent_columns.get(channel)
        if col is None:
            semantic = OPT_IN_FIELDS[channel]
            if described is None:
                described = ws.describe(sync.dataset)
            found = [d for d in described if d["semantic"] == semantic and d["column"] in columns]
            declared = [d for d in found if d.get("semantic_from") == "declared"]
            found = declared or found
            if not found:
                raise SyncError(
                    f"{_where(sync)}: connection '{conn.name}' requires {channel} consent, but dataset "
                    f"'{sync.dataset}' has no {semantic} column; declare one (datasets[].columns: "
                    f"{{name: <opt-in column>, semantic: {semantic}}}) or set consent_columns: "
                    f"{{{channel}: <column>}} on the sync")
            if len(found) > 1:
                raise SyncError(
                    f"{_where(sync)}: connection '{conn.name}' requires {channel} consent and dataset "
                    f"'{sync.dataset}' has several {semantic} columns ({', '.join(d['column'] for d in found)}); "
                    f"choose one with consent_columns: {{{channel}: <column>}}")
            col = found[0]["column"]
        if col not in columns:
            raise SyncError(f"{_where(sync)}: consent_columns.{channel}: '{col}' is not a column of the published "
                            f"dataset '{sync.dataset}'")
        out[channel] = col
    return out


def _opted_in(value: ibis.Value, sync: SyncConfig, channel: str, column: str) -> ibis.BooleanValue:
    """True where the opt-in column says yes (NULL and anything else: no)."""
    dtype = value.type()
    if dtype.is_boolean():
        return value.fill_null(False)
    if dtype.is_string():
        return value.strip().lower().isin(TRUE_WORDS).fill_null(False)
    if dtype.is_numeric():
        return (value == 1).fill_null(False)
    raise SyncError(f"{_where(sync)}: the {channel} opt-in column '{column}' holds {dtype} values; an opt-in is "
                    "a boolean (true/false, yes/no, 1/0): declare it with type: boolean")


def _text(value: ibis.Value) -> ibis.StringValue:
    return value if value.type().is_string() else value.cast("string")


FIELD_SEPARATOR = "\x1f"  # the unit separator: between the fields of the hashed text
NULL_MARK = "\x1e"  # the record separator: a NULL value


def row_hash(table: ibis.Table, fields: list[str]) -> ibis.StringValue:
    """md5 of the field names and values, joined by U+001F, NULL written U+001E (control
    characters that text fields do not hold), each value as the engine writes it as text."""
    parts = [ibis.literal(",".join(fields))] + [_text(table[name]).fill_null(NULL_MARK) for name in fields]
    return ibis.literal(FIELD_SEPARATOR).join(parts).hexdigest("md5")


def _portable(value: ibis.Value) -> ibis.Value:
    """Arrays, structs, maps, JSON and binary values are sent as text (every destination takes it)."""
    dtype = value.type()
    if dtype.is_string() or dtype.is_numeric() or dtype.is_boolean() or dtype.is_date() or dtype.is_timestamp() \
            or dtype.is_time():
        return value
    return value.cast("string")


def rows_to_send(ws, sync: SyncConfig, conn) -> Prepared:
    """The rows ``sync`` sends: dataset, filter, consent, fields and the key as text."""
    adapter = ws.adapter
    table = ws.table(sync.dataset)
    columns = list(table.columns)
    fields, key_field = resolve_fields(sync, columns, sync.dataset)
    consent = consent_columns(ws, sync, conn, columns)
    notes: list[str] = []
    if sync.filter:
        try:
            expr = check_expression(sync.filter, set(columns), where=f"{_where(sync)}, filter")
        except ConfigError as exc:
            raise SyncError("; ".join(exc.problems)) from None
        keep = "_tessera_keep"
        table = adapter.add_sql_columns(table, [(keep, adapter.dialect.render(expr))])
        if not table[keep].type().is_boolean():
            raise SyncError(f"{_where(sync)}: filter '{sync.filter}' gives {table[keep].type()} values, not true or "
                            "false; write a condition, e.g. country = 'FR'")
        table = table.filter(table[keep].fill_null(False)).drop(keep)
    if sync.segment:
        table = _segment_members(ws, sync, table)
    current = getattr(ws, "consent_granted", None)
    for channel, col in consent.items():
        # the current consent of the history (sources and events) when there is one, else the column
        granted = current(sync.dataset, channel) if current is not None and "tessera_id" in table.columns else None
        if granted is not None:
            table = table.semi_join(granted, table.tessera_id.cast("string") == granted._tessera_consent_id)
        else:
            table = table.filter(_opted_in(table[col], sync, channel, col))
    table = table.filter(table[sync.key].notnull())
    mapped = table.select(
        **{KEY: _text(table[sync.key])},
        **{dest: _portable(table[col]) for dest, col in fields.items()},
    )
    types = {dest: mapped[dest].type() for dest in fields}
    return Prepared(sync, fields, key_field, consent, mapped, types, notes)


def _segment_members(ws, sync: SyncConfig, table: ibis.Table) -> ibis.Table:
    """The rows of ``table`` whose record is a member of the sync's segment (as of its last refresh)."""
    from tessera.segments import MEMBERS

    segment = next((s for s in ws.config.segments if s.name == sync.segment), None)
    if segment is None:
        raise SyncError(f"{_where(sync)}: unknown segment '{sync.segment}'; declare it under segments: and apply")
    if not ws.adapter.exists(MEMBERS) or "tessera_id" not in table.columns:
        raise SyncError(f"{_where(sync)}: segment '{sync.segment}' has no members yet; run the pipeline "
                        "(tessera run) to compute them")
    members = ws.adapter.table(MEMBERS)
    members = members.filter(members.segment == sync.segment).select(_tessera_member=members.tessera_id)
    return table.semi_join(members, table.tessera_id.cast("string") == members._tessera_member)


def duplicate_keys(adapter, plan: ibis.Table) -> int:
    """Rows sharing their key with another row, counted on a materialized plan."""
    rows = plan.filter(plan[HASH].notnull())
    counts = adapter.to_arrow(rows.aggregate(n=rows.count(), keys=rows[KEY].nunique())).to_pylist()[0]
    return int(counts["n"] or 0) - int(counts["keys"] or 0)


def deduplicate(prepared: Prepared, duplicates: int) -> None:
    """Keep one row per key (the one whose hash comes first), with a note."""
    prepared.notes.append(
        f"{duplicates} row(s) share their key '{prepared.sync.key}' with another row: one row per key is sent "
        "(the key should identify one record; use tessera_id or a unique column)")
    rows = prepared.rows.mutate(_tessera_rank_hash=row_hash(prepared.rows, sorted(prepared.fields)))
    ranked = rows.mutate(_tessera_rank=ibis.row_number().over(group_by=rows[KEY], order_by=rows._tessera_rank_hash))
    prepared.rows = ranked.filter(ranked._tessera_rank == 0).drop("_tessera_rank", "_tessera_rank_hash")


# --------------------------------------------------------------------------- state


def load_state(adapter, sync: str) -> ibis.Table | None:
    """The state of ``sync`` (its columns prefixed with ``_tessera_s_``), None when it has none yet."""
    name = state_table_name(sync)
    if not adapter.exists(name):
        return None
    state = adapter.table(name)
    return state.select(**{f"{S}{c}": state[c] for c in STATE_COLUMNS})


def create_empty_state(adapter, sync: str) -> None:
    import pyarrow as pa

    adapter.create_table(state_table_name(sync), pa.Table.from_pylist([], schema=STATE_SCHEMA.to_pyarrow()))


def classify(prepared: Prepared, state: ibis.Table) -> ibis.Table:
    """The plan: the full outer join of the rows' keys and hashes with the state, with the
    operation of each key (``_tessera_op``) and whether it retries a failed change
    (``_tessera_retry``). One row per key; the destination fields are joined back when sending."""
    mode = prepared.sync.mode
    rows = prepared.hashed()
    joined = rows.outer_join(state, rows[KEY] == state[f"{S}key"])
    present = joined[KEY].notnull()
    known = joined[f"{S}key"].notnull()
    delivered = joined[f"{S}hash"].notnull()
    differs = joined[HASH] != joined[f"{S}hash"]
    branches = [(present & (~known | ~delivered), "insert")]
    if mode != "insert":
        branches.append((present & differs, "update"))
    branches.append((present, "unchanged"))
    branches.append((~delivered, "drop"))
    # an erased customer is deleted at the destination whatever the mode (tessera.syncs.erased)
    branches.append(((joined[f"{S}pending"] == ERASE).fill_null(False), "delete"))
    branches.append((ibis.literal(mode == "mirror"), "delete"))
    joined = joined.mutate(**{OP: ibis.cases(*branches, else_="keep")})
    return joined.mutate(**{
        RETRY: joined[OP].isin(CHANGES) & (joined[f"{S}status"] == "failed").fill_null(False),
        KEY: ibis.coalesce(joined[KEY], joined[f"{S}key"]),
    })


def changes(prepared: Prepared, plan: ibis.Table) -> ibis.Table:
    """The changes to send: ``_tessera_op``, ``_tessera_key`` and the destination fields (a
    deleted record has its key field only, from the key the state holds)."""
    todo = plan.filter(plan[OP].isin(CHANGES)).select(OP, KEY)
    rows = prepared.rows.rename(_tessera_row_key=KEY)
    joined = todo.left_join(rows, todo[KEY] == rows._tessera_row_key)
    key_type = prepared.field_types[prepared.key_field]
    stored = joined[KEY] if key_type.is_string() else joined[KEY].try_cast(key_type)
    fields = {f: joined[f] for f in prepared.fields}
    fields[prepared.key_field] = ibis.coalesce(joined[prepared.key_field], stored)
    return joined.select(OP, KEY, **fields)


def plan_counts(adapter, classified: ibis.Table) -> dict[str, int]:
    """Records per operation, and ``retried``: changes that failed last time."""
    counts = adapter.to_arrow(
        classified.group_by(classified[OP]).agg(n=classified.count(), retried=classified[RETRY].ifelse(1, 0).sum())
    ).to_pylist()
    out = {op: 0 for op in (*CHANGES, "unchanged", "keep", "drop")}
    out["retried"] = 0
    for row in counts:
        out[row[OP]] = int(row["n"])
        out["retried"] += int(row["retried"] or 0)
    return out


def plan_text(counts: dict[str, int]) -> str:
    text = (f"{counts.get('insert', 0)} new, {counts.get('update', 0)} updated, {counts.get('delete', 0)} deleted, "
            f"{counts.get('unchanged', 0)} unchanged")
    if counts.get("retried"):
        text += f" ({counts['retried']} retried after failing)"
    return text


# --------------------------------------------------------------------------- after sending


def with_outcome(plan: ibis.Table, failed: ibis.Table, all_failed: str | None = None) -> ibis.Table:
    """The plan with ``_tessera_failed`` and ``_tessera_error`` of each change.

    ``failed`` lists the records not delivered (``_tessera_key``, ``_tessera_error``): refused by
    the destination, or not sent because it went down. ``all_failed``: every change failed
    with this error (the destination could not be opened, the file could not be uploaded)."""
    f = failed.rename(_tessera_f_key=KEY, _tessera_f_error="_tessera_error")
    out = plan.left_join(f, plan[KEY] == f._tessera_f_key)
    refused = out._tessera_f_error.notnull()
    error = out._tessera_f_error
    if all_failed is not None:
        refused = ibis.literal(True)
        error = ibis.coalesce(error, ibis.literal(all_failed))
    failed_flag = out[OP].isin(CHANGES) & refused
    return out.mutate(_tessera_failed=failed_flag, _tessera_error=failed_flag.ifelse(error, ibis.null(dt.string)))


def outcome_counts(adapter, outcome: ibis.Table) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """(inserted, updated, deleted, failed, unchanged, retried) and the most frequent errors."""
    rows = adapter.to_arrow(
        outcome.group_by([outcome[OP], outcome._tessera_failed]).agg(
            n=outcome.count(), retried=outcome[RETRY].ifelse(1, 0).sum())
    ).to_pylist()
    counts = {"inserted": 0, "updated": 0, "deleted": 0, "failed": 0, "unchanged": 0, "retried": 0}
    names = {"insert": "inserted", "update": "updated", "delete": "deleted"}
    for r in rows:
        n = int(r["n"])
        if r[OP] in names:
            if r["_tessera_failed"]:
                counts["failed"] += n
            else:
                counts[names[r[OP]]] += n
                counts["retried"] += int(r["retried"] or 0)
        elif r[OP] == "unchanged":
            counts["unchanged"] += n
    errors: list[tuple[str, int]] = []
    if counts["failed"]:
        refused = outcome.filter(outcome._tessera_failed)
        top = refused.group_by("_tessera_error").agg(n=refused.count()).order_by(ibis.desc("n")).limit(10)
        errors = [(r["_tessera_error"], int(r["n"])) for r in adapter.to_arrow(top).to_pylist()]
    return counts, errors


def next_state(outcome: ibis.Table, now: datetime) -> ibis.Table:
    """The state after the run (see the module's documentation)."""
    gone = (outcome[OP] == "drop") | ((outcome[OP] == "delete") & ~outcome._tessera_failed)
    out = outcome.filter(~gone)
    op, failed, sent = out[OP], out._tessera_failed, out[OP].isin(("insert", "update")) & ~out._tessera_failed
    return out.select(
        key=ibis.coalesce(out[KEY], out[f"{S}key"]),
        hash=sent.ifelse(out[HASH], out[f"{S}hash"]),
        status=failed.ifelse(ibis.literal("failed"), ibis.literal("ok")),
        error=failed.ifelse(out._tessera_error, ibis.null(dt.string)),
        attempts=failed.ifelse(out[f"{S}attempts"].fill_null(0) + 1, ibis.literal(0, dt.int64)).cast("int64"),
        sent_at=sent.ifelse(ibis.literal(now, dt.timestamp), out[f"{S}sent_at"]),
        pending=failed.ifelse(ibis.cases((out[f"{S}pending"] == ERASE, ibis.literal(ERASE)), else_=op),
                              ibis.null(dt.string)),
    )


def state_dirty(counts: dict[str, int], adapter, state: ibis.Table) -> bool:
    """Whether the state changes although nothing is sent (keys to forget, failures to clear)."""
    if counts.get("drop"):
        return True
    return bool(adapter.count(state.filter(state[f"{S}status"] == "failed")))
