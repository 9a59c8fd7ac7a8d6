"""Merge rules: how a unified record picks each column's value from its source records."""

from __future__ import annotations

from dataclasses import dataclass

import ibis

TID = "tessera_id"


@dataclass
class MergeColumn:
    name: str
    rule: str


def _most_frequent(rows: ibis.Table, col: str) -> ibis.Table:
    """Per unified record, the most frequent non-null value (ties: the most recent)."""
    counted = rows.filter(rows[col].notnull()).group_by([TID, col]).agg(n=ibis._.count(), r=ibis._["_rn"].min())
    key = counted.n.cast("int64") * 4294967296 - counted.r.cast("int64")
    return counted.group_by(TID).agg(**{col: counted[col].argmax(key)})


def merge(rows: ibis.Table, columns: list[MergeColumn], *, date_column: str | None,
          source_priority: list[str]) -> ibis.Table:
    """Collapse ``rows`` (one per source record, with ``tessera_id`` and the record count
    ``_size`` of its unified record) into one row per unified record.

    Most unified records hold one source record: those are projected as they are, and only the
    others are ranked and aggregated.
    """
    return merge_parts(rows.filter(rows._size == 1), rows.filter(rows._size > 1), columns,
                       date_column=date_column, source_priority=source_priority)


def merge_parts(single: ibis.Table, several: ibis.Table, columns: list[MergeColumn], *, date_column: str | None,
                source_priority: list[str]) -> ibis.Table:
    """:func:`merge` of the rows already parted: ``single`` those of unified records of one source
    record, ``several`` the others (neither needs ``_size``)."""
    merged = _merge_groups(several, columns, date_column=date_column, source_priority=source_priority)
    values = {}
    for c in columns:
        v = single[c.name]
        values[c.name] = v.cast("string") if c.rule == "concat_unique" else v
    alone = single.select(
        TID, **values,
        tessera_record_count=ibis.literal(1, "int64"),
        tessera_sources=single._tessera_source,
        tessera_first_seen=single._tessera_imported_at,
        tessera_last_seen=single._tessera_imported_at,
    )
    return alone.union(merged.cast(alone.schema()), distinct=False)


def _merge_groups(rows: ibis.Table, columns: list[MergeColumn], *, date_column: str | None,
                  source_priority: list[str]) -> ibis.Table:
    """Recency is the record date column when set and filled, else the import time; ties are
    broken by record id so that every engine picks the same value."""
    when = rows["_tessera_imported_at"]
    if date_column:
        when = rows[date_column].cast("timestamp").coalesce(when)
    # _rn = 0 is the most recent record of its unified record.
    recent = ibis.window(group_by=TID, order_by=[ibis.desc(when), ibis.desc(rows["_tessera_record"])])
    rows = rows.mutate(_rn=ibis.row_number().over(recent))
    if any(c.rule == "source_priority" for c in columns):
        prio = ibis.cases(
            *[(rows["_tessera_source"] == s, i) for i, s in enumerate(source_priority)],
            else_=len(source_priority),
        ) if source_priority else ibis.literal(0)
        rows = rows.mutate(_p=ibis.row_number().over(group_by=TID, order_by=[prio, rows["_rn"]]))

    aggs = {}
    frequent = []
    latest = []
    for c in columns:
        v = rows[c.name]
        if c.rule in ("most_recent", "non_null_most_recent"):
            # The default never replaces a value with nothing: an empty value of a newer record
            # says "not given", not "erased".
            aggs[c.name] = v.argmin(rows._rn, where=v.notnull())
        elif c.rule == "most_recent_or_null":
            latest.append(c.name)
        elif c.rule == "first":
            aggs[c.name] = v.argmax(rows._rn, where=v.notnull())
        elif c.rule == "first_or_null":
            aggs[c.name] = v.argmax(rows._rn)
        elif c.rule == "max":
            aggs[c.name] = v.max()
        elif c.rule == "min":
            aggs[c.name] = v.min()
        elif c.rule == "source_priority":
            aggs[c.name] = v.argmin(rows._p, where=v.notnull())
        elif c.rule == "concat_unique":
            aggs[c.name] = v.cast("string").collect(distinct=True).sort().join(", ").nullif("")
        elif c.rule == "most_frequent":
            frequent.append(c.name)
        else:  # pragma: no cover - the configuration model forbids other values
            raise ValueError(c.rule)
    aggs["tessera_record_count"] = rows._tessera_record.count().cast("int64")
    aggs["tessera_sources"] = rows._tessera_source.collect(distinct=True).sort().join(", ")
    aggs["tessera_first_seen"] = rows._tessera_imported_at.min()
    aggs["tessera_last_seen"] = rows._tessera_imported_at.max()
    merged = rows.group_by(TID).agg(**aggs)
    if latest:
        newest = rows.filter(rows._rn == 0).select(TID, *latest)
        merged = merged.join(newest, TID)
    for col in frequent:
        merged = merged.left_join(_most_frequent(rows, col), TID).drop(f"{TID}_right")
    order = [TID, *[c.name for c in columns], "tessera_record_count", "tessera_sources",
             "tessera_first_seen", "tessera_last_seen"]
    return merged.select(*order)
