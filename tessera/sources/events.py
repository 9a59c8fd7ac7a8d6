"""Event sources: a source on an ``http`` connection reads the events that connection collected.

The collection API (:mod:`tessera.collect`) appends every accepted event to the warehouse table
``_tessera_events``, one row per event, with the name of the ``http`` connection whose write key
sent it. An event source needs no import: each run stages the events of its connection.

Its columns are the event columns (:data:`EVENT_COLUMNS`) and any JSON path inside the JSON
columns, written with dots: ``traits.first_name``, ``properties.revenue``, ``context.page.url``
read that value as text (a number or boolean too: give such a column a type in ``types``).

Before the usual staging (:func:`tessera.sources.staging.stage`: normalization, types, record
keys, the source's ``filter``, rejects), the events are prepared in the engine:

- ids that are placeholders, not people (the built-in blocked values: ``anonymous``, ``null``,
  ``0``, ``undefined``...; any case, any spaces around) read as empty in ``user_id``,
  ``anonymous_id``, ``previous_id``, ``group_id`` and ``email``, so they never link an event to
  anyone;
- an ``alias`` event without an anonymous id takes its ``previous_id`` as ``anonymous_id``: fed
  into an identity graph keyed on ``anonymous_id`` and ``user_id``, it links the two;
- events that share a record key keep the latest one (event time, then receipt time, then message
  id): with ``record_keys: [message_id]`` a message delivered twice is staged once;
- the import time of a staged event (``tessera_first_seen``/``tessera_last_seen``, the recency of
  the ``most_recent`` merge rule without a ``date_column``) is its ``received_at``.

A rejected event is reported with the file ``events:<connection>`` and its position among the
events staged in that run; its ``raw`` text holds its columns (the message id first when the
source selects no ``columns``).
"""

from __future__ import annotations

from typing import Callable

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from tessera.config.events import EVENT_COLUMNS, ID_COLUMNS, OPTIONAL_COLUMNS, column_problem
from tessera.config.models import DEFAULT_BLOCKED, SourceConfig
from tessera.engine.base import EngineAdapter
from tessera.errors import RunError
from tessera.sources.staging import Batch, stage
from tessera.sqlcheck import filter_columns

EVENTS_TABLE = "_tessera_events"

def used_columns(src: SourceConfig, extra: list[str] = ()) -> list[str]:
    """Every column name the configuration reads from an event source, in a stable order."""
    names = [*(src.columns or []), *src.record_keys, *(r.column for r in src.relations), *extra,
             *src.normalize, *src.types]
    if src.filter:
        names += sorted(filter_columns(src.filter))
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def _placeholder(value: ibis.Value) -> ibis.Value:
    """NULL for an empty or placeholder id (the identity graph's built-in blocked values)."""
    blocked = sorted({b.strip().lower() for b in DEFAULT_BLOCKED} | {""})
    text = value.cast("string")
    return text.strip().lower().isin(blocked).ifelse(ibis.null(dt.string), text)


def _empty_events() -> pa.Table:
    kinds = {"string": pa.string(), "timestamp": pa.timestamp("us")}
    return pa.table({c: pa.array([], kinds[t]) for c, t in EVENT_COLUMNS.items()})


def event_rows(adapter: EngineAdapter, src: SourceConfig, columns: list[str], *, tag: str) -> ibis.Table:
    """The events of the source's connection as text columns ``columns`` (event columns and JSON
    paths), with the meta columns of a raw batch (batch 0, file ``events:<connection>``, line).

    The result is stored as a work table of the run, so that lines stay the same everywhere it is read.
    """
    if adapter.exists(EVENTS_TABLE):
        ev = adapter.table(EVENTS_TABLE)
        missing = [c for c in EVENT_COLUMNS if c not in ev.columns and c not in OPTIONAL_COLUMNS]
        if missing:
            raise RunError(f"Source '{src.name}': the events table {EVENTS_TABLE} has no column(s) "
                           f"{', '.join(missing)}; it was written by another version of Tessera.")
    else:  # no event collected yet on any connection: the source stages nothing
        ev = adapter.create_table(f"{tag}events_none", _empty_events(), temp=True)
    ev = ev.filter(ev["connection"] == src.connection)
    ev = ev.mutate(**{c: ibis.null(dt.string) for c in OPTIONAL_COLUMNS if c not in ev.columns})
    ids = {c: _placeholder(ev[c]) for c in ID_COLUMNS}
    # An alias links previousId to userId: its previous id is the anonymous id it replaces.
    ids["anonymous_id"] = ((ev["type"] == "alias") & ids["anonymous_id"].isnull()).ifelse(
        ids["previous_id"], ids["anonymous_id"])
    values: dict[str, ibis.Value] = {}
    for c in columns:
        if c in ids:
            values[c] = ids[c]
        elif c in EVENT_COLUMNS:
            values[c] = ev[c].cast("string")
        else:
            root, *path = c.split(".")
            values[c] = adapter.dialect.json_text(ev[root].cast("string"), path)
    t = ev.select(**values, _when=ev["timestamp"].cast("timestamp"),
                  _received=ev["received_at"].cast("timestamp"), _mid=ev["message_id"].cast("string"))
    t = _latest_per_key(t, src.record_keys)
    t = adapter.with_row_index(t.drop("_when", "_received", "_mid"), "_tessera_line")
    # Engines number rows as 32 or 64-bit integers; lines are 64-bit (a cast literal keeps its type).
    t = t.mutate(_tessera_line=t._tessera_line + ibis.literal(1).cast("int64"),
                 _tessera_batch=ibis.literal(0).cast("int64"),
                 _tessera_file=ibis.literal(f"events:{src.connection}"))
    return adapter.create_table(f"{tag}events_{src.name}", t, temp=True)


def _latest_per_key(t: ibis.Table, keys: list[str]) -> ibis.Table:
    """One event per record key value (the latest); events with an empty key are all kept (and
    rejected by staging). Duplicates are rare: only their keys are ranked."""
    filled = ibis.and_(*[t[k].notnull() & (t[k] != "") for k in keys])
    dup_keys = t.filter(filled).group_by(keys).agg(_n=ibis._.count()).filter(ibis._["_n"] > 1).select(*keys)
    suspects = t.semi_join(dup_keys, keys)
    order = [ibis.desc(suspects._when), ibis.desc(suspects._received), ibis.desc(suspects._mid)]
    ranked = suspects.mutate(_r=ibis.row_number().over(group_by=[suspects[k] for k in keys], order_by=order))
    latest = ranked.filter(ranked._r == 0).drop("_r")
    return t.anti_join(dup_keys, keys).union(latest, distinct=False)


def stage_events(adapter: EngineAdapter, src: SourceConfig, *, extra_columns: list[str] = (),
                 extra_identifiers: list[str] = (), tag: str,
                 materialize: Callable[[ibis.Table], ibis.Table] | None = None) -> tuple[ibis.Table, ibis.Table]:
    """(staged rows, rejects) of an event source, shaped like :func:`tessera.sources.staging.stage`'s.

    Args:
        adapter: the engine.
        src: the source (on an ``http`` connection).
        extra_columns: columns mappings and relations of the configuration read from it.
        extra_identifiers: its columns other sources' relations point at.
        tag: the run's prefix for work tables.
        materialize: stores the typed rows in the engine (see :func:`stage`).
    """
    needed = used_columns(src, [*extra_columns, *extra_identifiers])
    problems = [p for p in (column_problem(c) for c in needed) if p]
    if problems:
        raise RunError(f"Source '{src.name}' (events of connection '{src.connection}'): " + "; ".join(problems))
    columns = list(EVENT_COLUMNS) + [c for c in needed if c not in EVENT_COLUMNS]
    raw = event_rows(adapter, src, columns, tag=tag)
    schema = [(c, EVENT_COLUMNS.get(c, "string")) for c in columns]
    # received_at is staged to become each event's import time (see the module's docstring).
    staged, rejects = stage(src, [Batch(EVENTS_TABLE, 0, "1970-01-01 00:00:00")], [raw], schema,
                            dialect=adapter.dialect, extra_columns=[*extra_columns, "received_at"],
                            extra_identifiers=extra_identifiers, materialize=materialize,
                            add_sql_columns=adapter.add_sql_columns)
    staged = staged.mutate(_tessera_imported_at=staged["received_at"].cast("timestamp"))
    if src.columns is not None and "received_at" not in needed:
        staged = staged.drop("received_at")
    return staged, rejects
