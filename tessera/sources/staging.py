"""Staging of one source: its raw batches, normalized, typed, checked and keyed.

A staged row is a good row of the latest batch that carries its record key. Rows that fail a
check (missing record key, duplicate record key inside one batch, a value that does not fit
the column's type) are returned as rejects with their file, line and reason. Of the lines of
one file that share a record key, the source's ``on_duplicate_key`` keeps the last (default), the
first or none; the others are rejected with the line that was kept. A source's
``filter`` (a SQL condition over its typed, normalized columns) keeps only the rows it matches:
the others are neither staged nor rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import ibis
import ibis.expr.datatypes as dt

from tessera.config.models import SourceConfig
from tessera.engine.base import Compiled
from tessera.engine.dialects import Dialect
from tessera.engine.types import cast_text
from tessera.errors import ConfigError
from tessera.normalize.rules import apply_rules
from tessera.sqlcheck import check_expression, filter_columns, filter_sql

META = ["_tessera_batch", "_tessera_file", "_tessera_line"]
REJECT_COLUMNS = ["source", "file", "line", "column_name", "reason", "raw", "batch"]


@dataclass
class Batch:
    table: str
    batch: int
    imported_at: str | ibis.Value  # ISO timestamp (or a text parameter: see typed_rows)


def nested_path(column: str, known) -> tuple[str, list[str]] | None:
    """(column, path) when ``column`` is a path into a known column's JSON (``customer.address.city``
    -> ``customer``, ``[address, city]``), else None."""
    parts = column.split(".")
    for i in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:i])
        if head in known:
            return head, parts[i:]
    return None


def union_batches(tables: list[ibis.Table], columns: list[str]) -> ibis.Table:
    """Union raw batches that may not share every column (a missing column reads as NULL)."""
    parts = []
    for t in tables:
        have = set(t.columns)
        parts.append(
            t.select(
                *[t[c].cast("string").name(c) if c in have else ibis.null(dt.string).name(c) for c in columns],
                *[t[m] for m in META],
            )
        )
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


def record_id(source: str, keys: list[ibis.Value]) -> ibis.Value:
    parts = [k.cast("string").fill_null("") for k in keys]
    joined = parts[0]
    for p in parts[1:]:
        joined = joined.concat("|", p)
    return ibis.literal(source + ":").concat(joined)


def latest_versions(rows: ibis.Table) -> ibis.Table:
    """Of the rows of several batches, the latest version of each record: a record key imported
    again in a later batch is an update."""
    latest = rows.group_by("_tessera_record").agg(_tessera_batch=rows._tessera_batch.max())
    return rows.semi_join(latest, ["_tessera_record", "_tessera_batch"])


def latest_of(batches: list[ibis.Table], most: int = 8) -> ibis.Table:
    """:func:`latest_versions` of the rows of ``batches`` (each one batch's staged rows, one row per
    record, oldest first): every row of the newest batch, then the rows of each older batch whose
    record no newer batch has. Each step looks up the records of the newer batches, usually few
    beside the first: no grouping of every row. Past ``most`` batches, :func:`latest_versions`."""
    if len(batches) == 1 or len(batches) > most:
        return latest_versions(union_all(batches)) if len(batches) > 1 else batches[0]
    out, newer = batches[-1], batches[-1].select("_tessera_record")
    for t in reversed(batches[:-1]):
        out = out.union(t.anti_join(newer, "_tessera_record"), distinct=False)
        newer = newer.union(t.select("_tessera_record"), distinct=False)
    return out


def union_all(tables: list[ibis.Table]) -> ibis.Table:
    out = tables[0]
    for t in tables[1:]:
        out = out.union(t, distinct=False)
    return out


@dataclass
class _Typed:
    rows: ibis.Table | None  # the typed rows: the staged columns, then _reason, _column (and _tessera_dup)
    raw_lines: ibis.Table  # _tessera_batch, _tessera_line, _raw: the raw text of each line
    wanted: list[str]  # the staged columns of the source


def typed_rows(src: SourceConfig, batch: Batch, table: ibis.Table, schema: list[tuple[str, str]], *,
               dialect: Dialect, extra_columns: list[str] = (), extra_identifiers: list[str] = (),
               flagged: bool = False) -> ibis.Table:
    """The typed rows :func:`stage` stores of one batch (with ``materialize``; ``flagged``: with
    ``any_true``), of a source without a ``filter``. ``table`` may be a placeholder of the raw batch
    and ``batch.imported_at`` a text parameter: the same query for every batch of the source, compiled
    once."""
    if src.filter:
        raise ValueError("a source's filter is read against its batch: its typed rows are built per batch")
    return _typed(src, [batch], [table], schema, dialect=dialect, extra_columns=extra_columns,
                  extra_identifiers=extra_identifiers, add_sql_columns=None, flagged=flagged).rows


def _typed(src: SourceConfig, batches: list[Batch], tables: list[ibis.Table], schema: list[tuple[str, str]], *,
           dialect: Dialect, extra_columns, extra_identifiers, add_sql_columns, flagged: bool,
           rows_needed: bool = True) -> _Typed:
    all_cols = [c for c, _ in schema]
    wanted = list(src.columns) if src.columns else list(all_cols)
    used = [*src.record_keys, *extra_columns, *(r.column for r in src.relations)]
    if src.filter:
        # Columns the filter reads are staged too, so that it sees their typed, normalized values.
        used += sorted(c for c in filter_columns(src.filter) if c in all_cols)
    for c in used:
        if c not in wanted:
            wanted.append(c)
    inferred = dict(schema)
    identifiers = {*src.record_keys, *(r.column for r in src.relations), *extra_identifiers}
    # A column written as a path (customer.email) reads a nested object of the column it starts with.
    nested = {c: nested_path(c, inferred) for c in wanted if c not in inferred}
    nested = {c: p for c, p in nested.items() if p}
    heads = [p[0] for p in nested.values() if p[0] not in wanted]
    raw = union_batches(tables, [c for c in [*wanted, *dict.fromkeys(heads)] if c in inferred] or wanted)

    def when(b: Batch) -> ibis.Value:
        at = b.imported_at
        return (at if isinstance(at, ibis.Value) else ibis.literal(at)).cast("timestamp")

    # Few batches per source: the import time is a CASE, not a join.
    imported_at = when(batches[0]) if len(batches) == 1 else ibis.cases(
        *[(raw._tessera_batch == b.batch, when(b)) for b in batches], else_=ibis.null(dt.timestamp))
    raw = raw.mutate(_tessera_imported_at=imported_at)

    texts = [raw[c].fill_null("") if c in raw.columns else ibis.literal("") for c in wanted]
    # One flat join of every column (concat_ws): a chain of concats is as deep as the file is wide,
    # past Python's recursion limit and the engines' expression depth for thousands of columns.
    # Groups of at most 90 arguments: PostgreSQL takes at most 100 per function call.
    while len(texts) > 1:
        texts = [ibis.literal(";").join(texts[i:i + 90]) if len(texts[i:i + 90]) > 1 else texts[i]
                 for i in range(0, len(texts), 90)]
    raw_text = texts[0]
    # The raw text is only needed for rejected rows: joined back on (batch, line) for them alone.
    raw_lines = raw.select("_tessera_batch", "_tessera_line", _raw=raw_text)
    if not rows_needed:  # (the typed rows are written already: see stage's typed)
        return _Typed(None, raw_lines, wanted)

    typed = {}
    checks = {}
    bad_type = []  # (column, type, flag column, original text column)
    for c in wanted:
        if c in nested:
            value = dialect.json_text(raw[nested[c][0]], nested[c][1])
        else:
            value = raw[c] if c in raw.columns else ibis.null(dt.string)
        rules = src.normalize.get(c, [])
        if rules:
            value = apply_rules(value, rules, dialect)
        target = src.types.get(c) or (None if rules and not value.type().is_string() else inferred.get(c, "string"))
        if c in identifiers and c not in src.types:
            target = "string"  # identifiers are text: "007" and "7" are different keys
        if target is not None and target != "string":
            cast = cast_text(value, target, decimal_comma=src.csv.decimal_comma)
            original = value.cast("string").strip()
            i = len(bad_type)
            bad_type.append((c, target, f"_bad{i}", f"_orig{i}"))
            checks[f"_bad{i}"] = original.notnull() & (original != "") & cast.isnull()
            checks[f"_orig{i}"] = original
            value = cast
        typed[c] = value.name(c)

    rows = raw.mutate(**checks, **typed)
    if src.filter:
        rows = _keep_matching(rows, src, set(wanted), dialect, add_sql_columns)
    key_cols = [rows[k] for k in src.record_keys]
    missing_key = ibis.or_(*[k.isnull() | (k.cast("string").strip() == "") for k in key_cols])
    rows = rows.mutate(_tessera_record=record_id(src.name, key_cols))

    # One flat CASE (the first failing check wins): nested ifelse calls would be as deep as the
    # number of typed columns, past Python's recursion limit for a wide file.
    keys_txt = ", ".join(src.record_keys)
    reason_cases = [(missing_key, ibis.literal(f"record key ({keys_txt}) is empty"))]
    column_cases = [(missing_key, ibis.literal(src.record_keys[0]))]
    for c, target, flag, orig in bad_type:
        reason_cases.append((rows[flag], ibis.literal("value '").concat(rows[orig], f"' is not a valid {target}")))
        column_cases.append((rows[flag], ibis.literal(c)))
    reason = ibis.cases(*reason_cases, else_=ibis.null(dt.string))
    column = ibis.cases(*column_cases, else_=ibis.null(dt.string))
    rows = rows.mutate(_reason=reason, _column=column)
    # The typed rows in the layout of the staged rows, then what the rejects read (the checks'
    # flags and original texts are folded into the reason): an engine may keep the stored typed
    # rows as the staged rows themselves, its reasons' columns dropped (see the pipeline).
    rows = rows.select("_tessera_record", *META, "_tessera_imported_at", *wanted,
                       ibis.literal(src.name).name("_tessera_source"), "_reason", "_column")
    if flagged:
        good_row = rows._reason.isnull()
        n_good = good_row.ifelse(1, 0).sum().over(ibis.window(group_by=[rows._tessera_batch, rows._tessera_record]))
        rows = rows.mutate(_tessera_dup=good_row & (n_good > 1))
    return _Typed(rows, raw_lines, wanted)


def stage(
    src: SourceConfig,
    batches: list[Batch],
    tables: list[ibis.Table],
    schema: list[tuple[str, str]],
    *,
    dialect: Dialect,
    extra_columns: list[str] = (),
    extra_identifiers: list[str] = (),
    materialize=None,
    any_rows: Callable[[ibis.Table], bool] | None = None,
    any_true: Callable[[ibis.Table, str], bool] | None = None,
    add_sql_columns: Callable[[ibis.Table, list[tuple[str, str]]], ibis.Table] | None = None,
    typed: Compiled | None = None,
) -> tuple[ibis.Table, ibis.Table]:
    """Return (staged rows, rejects) of a source as Ibis expressions.

    Args:
        src: the source configuration.
        batches: the raw batches to read, with their import time.
        tables: the raw batch tables (same order as ``batches``).
        schema: the source's columns and inferred types, in file order.
        dialect: the engine's dialect (``adapter.dialect``), for the few functions that differ.
        extra_columns: columns needed by relations or mappings even if not selected.
        extra_identifiers: columns other sources point at with relations (kept as text).
        materialize: stores an intermediate table in the engine and returns it (optional).
        any_rows: whether a table has rows (optional, with ``materialize``): when the stored rows
            have no duplicate record key, the staged rows are the good rows as they are (no
            anti-join, no ranking).
        any_true: whether a stored table has a row where a boolean column is true (optional, with
            ``materialize``, instead of ``any_rows``): the typed rows are stored with a flag of the
            good rows whose record key another good row of the batch has (``_tessera_dup``), and
            whether there are any is asked of it (an engine that keeps statistics of its files
            answers without a query).
        add_sql_columns: the engine's :meth:`~tessera.engine.base.EngineAdapter.add_sql_columns`,
            needed when the source has a ``filter``.
        typed: the typed rows' query of the one batch, written already (with ``materialize``: a
            :class:`~tessera.engine.base.Compiled` text of :func:`typed_rows`), passed to
            ``materialize`` instead of an expression built here.
    """
    flagged = materialize is not None and any_true is not None
    parts = _typed(src, batches, tables, schema, dialect=dialect, extra_columns=extra_columns,
                   extra_identifiers=extra_identifiers, add_sql_columns=add_sql_columns, flagged=flagged,
                   rows_needed=typed is None)
    rows, raw_lines, wanted = parts.rows if typed is None else typed, parts.raw_lines, parts.wanted
    keys_txt = ", ".join(src.record_keys)
    if materialize is not None:
        # Normalization trees are large: compile them once, then work on the typed table.
        rows = materialize(rows)

    def as_rejects(t: ibis.Table) -> ibis.Table:
        t = t.join(raw_lines, ["_tessera_batch", "_tessera_line"])
        return t.select(
            source=ibis.literal(src.name),
            file=t._tessera_file,
            line=t._tessera_line.cast("int64"),
            column_name=t._column,
            reason=t._reason,
            raw=t._raw,
            batch=t._tessera_batch.cast("int64"),
        )

    ok = rows.filter(rows._reason.isnull())
    # Duplicate keys are rare: find them with a grouped count, and rank only their rows.
    keyed = ["_tessera_batch", "_tessera_record"]
    dup_keys = ok.group_by(keyed).agg(_n=ibis._.count()).filter(ibis._["_n"] > 1).select(*keyed)
    if flagged:
        no_duplicates = not any_true(rows, "_tessera_dup")
    else:
        no_duplicates = materialize is not None and any_rows is not None and not any_rows(dup_keys)
    if no_duplicates:
        good = latest_versions(ok) if len(batches) > 1 else ok
        return _staged(src, good, wanted), as_rejects(rows.filter(rows._reason.notnull()))
    suspects = ok.semi_join(dup_keys, keyed)
    policy = src.on_duplicate_key
    line = suspects._tessera_line
    w = ibis.window(group_by=[suspects[k] for k in keyed],
                    order_by=[ibis.desc(line) if policy == "last" else line])
    whole = ibis.window(group_by=[suspects[k] for k in keyed])
    ranked = suspects.mutate(
        _dup=ibis.row_number().over(w),
        _kept_line=(line.max() if policy == "last" else line.min()).over(whole),
        _n_lines=line.count().over(whole),
    )
    head = f"duplicate record key ({keys_txt}) in the same file"
    if policy == "reject":
        dup = ranked.mutate(
            _reason=ibis.literal(f"{head}: on ").concat(
                ranked._n_lines.cast("string"), " lines, none was kept (on_duplicate_key: reject); first at line ",
                ranked._tessera_line.min().over(whole).cast("string")),
            _column=ibis.literal(src.record_keys[0]),
        )
        kept = ranked.filter(ibis.literal(False))
    else:
        dup = ranked.filter(ranked._dup > 0).mutate(
            _reason=ibis.literal(f"{head}: line ").concat(
                ranked._kept_line.cast("string"), f" was kept (on_duplicate_key: {policy})"),
            _column=ibis.literal(src.record_keys[0]),
        )
        kept = ranked.filter(ranked._dup == 0)
    good = ok.anti_join(dup_keys, keyed).union(kept.drop("_dup", "_kept_line", "_n_lines"), distinct=False)
    if len(batches) > 1:
        good = latest_versions(good)
    rejects = as_rejects(rows.filter(rows._reason.notnull())).union(as_rejects(dup), distinct=False)
    return _staged(src, good, wanted), rejects


def _staged(src: SourceConfig, good: ibis.Table, wanted: list[str]) -> ibis.Table:
    """The staged columns of the good rows."""
    return good.select("_tessera_record", *META, "_tessera_imported_at", *wanted, "_tessera_source")


def _keep_matching(rows: ibis.Table, src: SourceConfig, columns: set[str], dialect: Dialect, add_sql_columns
                   ) -> ibis.Table:
    """The rows of ``rows`` for which the source's filter is true (not false, not NULL)."""
    if add_sql_columns is None:  # pragma: no cover - the pipeline always passes it
        raise ValueError("a source with a filter needs add_sql_columns")
    expr = check_expression(filter_sql(src.filter), columns, where=f"source '{src.name}' filter")
    rows = add_sql_columns(rows, [("_tessera_keep", dialect.render(expr))])
    kind = rows.schema()["_tessera_keep"]
    if not (kind.is_boolean() or kind.is_null()):
        raise ConfigError(f"source '{src.name}' filter: '{src.filter}' gives {kind} values, not true/false; "
                          "write a condition, e.g. user_id is not null or email is not null")
    keep = rows._tessera_keep.cast("boolean") if kind.is_null() else rows._tessera_keep
    return rows.filter(keep).drop("_tessera_keep")
