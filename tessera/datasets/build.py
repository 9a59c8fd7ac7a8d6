"""Building a dataset: mapped source rows, relations to other datasets, identity and merge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt
import sqlglot.expressions as sqlglot_exp

from tessera.config.models import (
    ComputedColumnConfig,
    DatasetConfig,
    NormalizationRule,
    RelationConfig,
    WorkspaceConfig,
)
from tessera.engine.base import EngineAdapter, Patch
from tessera.engine.types import IBIS_TYPES, cast_text, type_name
from tessera.engine.duckdb import authoring_probe
from tessera.errors import EngineError, RunError, TesseraError
from tessera.datasets.incremental import (Changed, Current, Previous, affected, all_key_values, carriers,
                                          changed_by_batches, levels_of)
from tessera.identity.merge import MergeColumn, merge, merge_parts
from tessera.identity.resolve import (DEFAULT_BLOCKED, SHAREABLE, IdentityKey, Override, key_values, new_id,
                                     resolve)
from tessera.normalize.rules import apply_rules
from tessera.normalize.semantic import suggest_semantic
from tessera.sqlcheck import check_expression, order_computed

TID = "tessera_id"
# the share of deleted rows past which an incremental run copies the tables it would patch (the
# copy leaves the deleted rows behind)
DEAD_SHARE = 0.2
META = ["_tessera_record", "_tessera_source", "_tessera_batch", "_tessera_file", "_tessera_line",
        "_tessera_imported_at"]
#: what the lineage's and the unified table's text columns of every dataset hold (the engine picks their compression from
#: it: an eighth less CPU writing ten million records, see EngineAdapter.create_table_hinted)
LINEAGE_HINTS = {TID: "distinct", "_tessera_record": "distinct", "_tessera_source": "few", "_tessera_file": "few"}
UNIFIED_HINTS = {TID: "distinct", "tessera_sources": "few"}


@dataclass
class ColumnSpec:
    name: str
    type: str
    semantic: str | None
    merge: str
    rules: list[NormalizationRule]


@dataclass
class Built:
    """The tables a run built for one dataset (not yet published)."""

    name: str
    table: str  # the unified dataset
    records: str  # one row per source record, normalized, with its tessera_id (the lineage)
    shared: str | None
    columns: list[ColumnSpec]
    counts: dict = field(default_factory=dict)
    matches: str | None = None  # scored record pairs of probabilistic matching (merged or to review)
    # an incremental run on an engine that patches in place: the run's views (``table``, ``records``)
    # -> the tables of the last publication they become once ``patches`` are applied
    stored: dict[str, str] = field(default_factory=dict)
    patches: list[Patch] = field(default_factory=list)

    def target(self, name: str) -> str:
        """The table a name of this build is published as."""
        return self.stored.get(name, name)


def dataset_columns(ds: DatasetConfig, stage_types: dict[str, dict[str, str]]) -> list[ColumnSpec]:
    """The dataset's columns: declared ones, then any other mapped column, with type and meaning."""
    declared = {c.name: c for c in ds.columns}
    names = [c.name for c in ds.columns]
    for m in ds.mappings:
        names += [c for c in m.columns if c not in names]
    out = []
    for name in names:
        cfg = declared.get(name)
        ctype = cfg.type if cfg and cfg.type else None
        if ctype is None:
            for m in ds.mappings:
                if name in m.columns:
                    ctype = stage_types.get(m.source, {}).get(m.columns[name])
                    if ctype:
                        break
        semantic = (cfg.semantic if cfg and cfg.semantic else None) or suggest_semantic(name)
        out.append(ColumnSpec(name, ctype or "string", semantic, cfg.merge if cfg else "most_recent",
                              list(cfg.normalize) if cfg else []))
    return out


def relation_target(config: WorkspaceConfig, rel: RelationConfig) -> tuple[str, str, str]:
    """(kind 'source' or 'dataset', object name, target dataset) of a relation."""
    obj, _col = rel.to.split(".")
    if any(d.name == obj for d in config.datasets):
        return "dataset", obj, obj
    for d in config.datasets:
        if any(m.source == obj for m in d.mappings):
            return "source", obj, d.name
    raise KeyError(obj)  # validated earlier: cannot happen for a valid configuration


def link_name(config: WorkspaceConfig, rel: RelationConfig) -> str:
    return rel.name or f"tessera_{relation_target(config, rel)[2]}_id"


def dataset_dependencies(config: WorkspaceConfig) -> dict[str, set[str]]:
    """Each dataset's name -> the other datasets its relations point to (built before it)."""
    sources = {s.name: s for s in config.sources}
    deps = {}
    for d in config.datasets:
        deps[d.name] = set()
        for m in d.mappings:
            for rel in sources[m.source].relations:
                target = relation_target(config, rel)[2]
                if target != d.name:
                    deps[d.name].add(target)
    return deps


def dataset_order(config: WorkspaceConfig) -> list[DatasetConfig]:
    """Datasets in dependency order (a dataset after the datasets its relations point to)."""
    deps = dataset_dependencies(config)
    order, seen = [], set()

    def visit(name: str, stack: tuple) -> None:
        if name in seen:
            return
        for dep in sorted(deps[name]):
            if dep not in stack:
                visit(dep, stack + (name,))
        seen.add(name)
        order.append(name)

    for d in config.datasets:
        visit(d.name, ())
    by_name = {d.name: d for d in config.datasets}
    return [by_name[n] for n in order]


def computed_plan(ds: DatasetConfig, columns: set[str]) -> list[tuple[ComputedColumnConfig, object]]:
    """The computed columns of ``ds`` in dependency order, each with its checked expression."""
    by_name = {c.name: c for c in ds.computed}
    allowed = set(columns) | set(by_name)
    plan = []
    for name in order_computed({c.name: c.sql for c in ds.computed}, set(columns)):
        cfg = by_name[name]
        plan.append((cfg, check_expression(cfg.sql, allowed, where=f"dataset {ds.name}, computed column {name}")))
    return plan


def _portable_type(dtype: dt.DataType, where: str) -> dt.DataType:
    """The type a computed column is stored with, from the type DuckDB gives its expression."""
    if dtype.is_null() or dtype.is_string():
        return dt.string
    if dtype.is_integer():
        return dt.int64
    if dtype.is_floating():
        return dt.float64
    if dtype.is_decimal():
        return dt.Decimal(dtype.precision or 38, dtype.scale if dtype.scale is not None else 9)
    if dtype.is_boolean():
        return dt.boolean
    if dtype.is_date():
        return dt.date
    if dtype.is_timestamp():
        return dt.timestamp
    raise RunError(f"{where}: the expression gives values of type {dtype}, which a dataset column does not "
                   "hold (string, integer, float, decimal, boolean, date, timestamp); cast it, e.g. "
                   "CAST(... AS VARCHAR), or use date_diff for a number of days")


def add_computed(adapter: EngineAdapter, table: ibis.Table, ds: DatasetConfig,
                 types: dict[str, dt.DataType] | None = None) -> tuple[ibis.Table, dict[str, dt.DataType]]:
    """``table`` with the computed columns of ``ds``, and their types.

    A column with a declared ``type`` is cast to it (a value that does not fit gives NULL); the
    others take ``types`` (the types DuckDB gives the expressions, so that every engine stores the
    same types) or, without it, the portable type of what the engine gives. Columns are added level
    by level: those that use no other computed column first (in one query), then those that use
    them, each level seeing the cast values of the previous ones."""
    plan = computed_plan(ds, set(table.columns))
    names = [c.name for c in ds.computed]
    level: dict[str, int] = {}
    for cfg, expr in plan:
        used = {c.name for c in expr.find_all(sqlglot_exp.Column)} & set(names)
        level[cfg.name] = 1 + max((level[u] for u in used), default=-1)
    found: dict[str, dt.DataType] = {}
    for depth in range(max(level.values(), default=-1) + 1):
        batch = [(cfg, expr) for cfg, expr in plan if level[cfg.name] == depth]
        table = _add_sql(adapter, table, ds, batch)
        casts = {}
        for cfg, _ in batch:
            where = f"dataset {ds.name}, computed column {cfg.name}"
            value = table[cfg.name]
            if cfg.type:
                value = cast_text(value, cfg.type)
            else:
                target = types[cfg.name] if types and cfg.name in types else _portable_type(value.type(), where)
                if value.type() != target.copy(nullable=value.type().nullable):
                    value = value.cast(target)
            found[cfg.name] = value.type()
            casts[cfg.name] = value
        table = table.mutate(**casts)
    if names and list(table.columns[-len(names):]) != names:  # in the configuration's order
        table = table.select(*[c for c in table.columns if c not in names], *names)
    return table, found


def _add_sql(adapter: EngineAdapter, table: ibis.Table, ds: DatasetConfig, batch: list) -> ibis.Table:
    """``adapter.add_sql_columns`` for the rendered expressions of ``batch``; an expression the engine
    refuses fails the run with its column named."""

    def refused(cfg: ComputedColumnConfig, exc: Exception) -> RunError:
        text = str(exc).strip()
        first = " ".join(text.splitlines()[0].split()) if text else type(exc).__name__
        return RunError(f"dataset {ds.name}, computed column {cfg.name} ({cfg.sql}): {first}")

    try:
        return adapter.add_sql_columns(table, [(cfg.name, adapter.dialect.render(expr)) for cfg, expr in batch])
    except TesseraError:
        raise
    except Exception as exc:  # the engine refused an expression: find which one
        for cfg, expr in batch:
            try:
                adapter.add_sql_columns(table, [(cfg.name, adapter.dialect.render(expr))])
            except Exception as single:  # noqa: BLE001 - reported with its column
                raise refused(cfg, single) from single
        raise refused(batch[0][0], exc) from exc


def engine_text(exc: BaseException) -> str:
    """The engine's own words for a failure, on one line (without the SQL it was given)."""
    text = str(exc).split("\nSQL: ")[0].removeprefix("DuckDB refused a statement: ").strip()
    lines = [x for x in text.splitlines() if x.strip()]
    first = " ".join(lines[0].split()) if lines else type(exc).__name__
    return first[:400]


def value_error_hint(message: str, *, column: bool = True) -> str:
    """What to do when a user expression fails on some values (the engine's ``message``);
    ``column``: the expression is a computed column's (it has a ``type`` setting)."""
    text = message.lower()
    if "out of range" in text or "overflow" in text:
        return "a value is too large for its type: cast to a larger one (BIGINT, DOUBLE or DECIMAL(38, 2))"
    if "conversion" in text or "could not convert" in text or "invalid input syntax" in text:
        return ("a CAST meets a value that does not fit the type: "
                + ("remove the CAST and set the column's type (a value that does not fit then becomes empty), or "
                   if column else "")
                + "cast only the values that fit, e.g. CASE WHEN regexp_matches(x, '^[0-9]+$') THEN "
                  "CAST(x AS BIGINT) END")
    return ("fix the expression: tessera apply checks what an expression may use, not the values it meets "
            "when the run computes it")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


#: engine failures that are not about a user expression's values: no diagnosis, they are reported as they are
NOT_A_VALUE_ERROR = ("out of memory", "interrupt", "cancel", "could not allocate", "no space left")


def computed_failure(adapter: EngineAdapter, table: ibis.Table, ds: DatasetConfig, place: str,
                     types: dict[str, dt.DataType] | None, exc: BaseException) -> RunError | None:
    """The computed column of ``ds`` that the engine cannot compute on ``table``'s rows, as an error
    naming the dataset, the column, its place in the configuration (``place`` is the dataset's,
    e.g. ``datasets[0] (contacts)``) and the fix; None when none of them fails on its own.

    Each column is computed alone (with the columns it uses) and evaluated, in dependency order."""
    if not value_error(adapter, exc):
        return None
    try:  # the columns the computed ones are added to: when they fail, another expression is to blame
        adapter.to_arrow(table.aggregate(**{f"_n{i}": table[c].count() for i, c in enumerate(table.columns)}))
    except Exception:  # noqa: BLE001 - not a computed column's fault
        return None
    index = {c.name: i for i, c in enumerate(ds.computed)}
    plan = computed_plan(ds, set(table.columns))
    for k, (cfg, _expr) in enumerate(plan):
        upto = ds.model_copy(update={"computed": [c for c, _ in plan[:k + 1]]})
        try:
            t = add_computed(adapter, table, upto, types)[0]
            adapter.count(t.filter(t[cfg.name].notnull()))
        except Exception as single:  # noqa: BLE001 - this is the column to name
            if not value_error(adapter, single):
                return None
            return expression_failed(f"Dataset '{ds.name}', computed column '{cfg.name}'",
                                     f"{place}.computed[{index[cfg.name]}] ({cfg.name}).sql", cfg.sql, single)
    return None


def value_error(adapter: EngineAdapter, exc: BaseException) -> bool:
    """Whether ``exc`` may be an expression failing on some values: an engine error, not the engine
    stopped (memory, interrupt) nor one of Tessera's own errors."""
    if isinstance(exc, TesseraError) and not isinstance(exc, EngineError):
        return False
    return not adapter.stopped(exc) and not any(w in str(exc).lower() for w in NOT_A_VALUE_ERROR)


def expression_failed(what: str, place: str, sql: str, exc: BaseException, *,
                      tail: str = "The last published state is unchanged.") -> RunError:
    """The error of a user's expression that the engine could not compute on the run's rows."""
    message = engine_text(exc)
    return RunError(f"{what} ({place}: {sql}): the engine could not compute it on this run's rows: {message}. "
                    f"{_sentence(value_error_hint(message, column='computed column' in what))}. {tail}")


def first_failing(adapter: EngineAdapter, checks: list[tuple[str, str, str, ibis.Table, str]]) -> RunError | None:
    """The first of ``checks`` (what, place, SQL, table, column) whose column the engine cannot
    compute on the table's rows, as its error; None when each one works."""
    for what, place, sql, table, column in checks:
        try:
            adapter.count(table.filter(table[column].notnull()))
        except Exception as exc:  # noqa: BLE001 - the expression to name
            if value_error(adapter, exc):
                return expression_failed(what, place, sql, exc)
    return None


def create_computed(adapter: EngineAdapter, name: str, table: ibis.Table, with_computed: ibis.Table,
                    ds: DatasetConfig, place: str, types: dict[str, dt.DataType] | None = None, *,
                    temp: bool = False) -> ibis.Table:
    """``adapter.create_table(name, with_computed, temp=temp)``, where ``with_computed`` is ``table`` with
    the computed columns of ``ds``: an engine error in one of them names it (see :func:`computed_failure`)."""
    try:
        return adapter.create_table(name, with_computed, temp=temp)
    except Exception as exc:
        if with_computed is table or (isinstance(exc, TesseraError) and not isinstance(exc, EngineError)):
            raise
        failure = computed_failure(adapter, table, ds, place, types, exc)
        if failure is None:
            raise
        raise failure from exc


#: the semantic fields of the time of a dataset's rows, by preference
TIME_FIELDS = ("EventTime", "OrderDate")


def time_order(adapter: EngineAdapter, columns: list[ColumnSpec]) -> str | None:
    """The column a dataset of rows (events, orders: not deduplicated) is stored in the order of,
    or None: its time (an ``EventTime``, else ``OrderDate`` field), on an engine that skips the
    blocks out of a filter's bounds. Segments' behaviour conditions and dashboards read the rows
    of a time window: the engine then reads those days only (a 30-day window of a year of 10M
    events: a twelfth of its blocks), for a sort that costs about half as much again as the plain
    copy (CPU x1.5 at 10M events, printed by bench/bench_segments.py)."""
    if not adapter.prunes_by_order:
        return None
    by_field = {c.semantic: c.name for c in reversed(columns) if c.semantic}
    return next((by_field[f] for f in TIME_FIELDS if f in by_field), None)


def enriched(ds: DatasetConfig) -> bool:
    """The dataset gains columns in the enrichment step (its computed columns come after them)."""
    return bool(ds.aggregates or (ds.scores and (ds.scores.library or ds.scores.predictive)))


def duckdb_types(adapter: EngineAdapter, table: ibis.Table, ds: DatasetConfig) -> dict[str, dt.DataType] | None:
    """The types of the computed columns of ``ds`` as DuckDB (the authoring dialect) gives them, found
    on an empty in-memory table of ``table``'s schema: the reference every engine is cast to. None
    when ``adapter`` gives them by itself."""
    if adapter.authoring_types:
        return None
    with authoring_probe(table.schema()) as (probe, empty):
        _, types = add_computed(probe, empty, ds)
    return types


def _shared_reason(ds: DatasetConfig) -> str:
    """The reason of a value set aside by the shared-value threshold (see :func:`resolve`)."""
    threshold = ds.shared_value_threshold
    return f"shared by more than {threshold} records" if threshold is not None else ""


def _types(table: ibis.Table) -> list[tuple[str, dt.DataType]]:
    """The columns of ``table`` in order, with their types as a table stores them (nullable or not
    alike, timestamps of any precision alike)."""
    return [(name, dt.Timestamp(timezone=dtype.timezone) if dtype.is_timestamp() else dtype.copy(nullable=True))
            for name, dtype in table.schema().items()]


class DatasetBuilder:
    """Builds the datasets of one run, in dependency order, as work tables prefixed by ``tag``."""

    def __init__(self, adapter: EngineAdapter, config: WorkspaceConfig, stages: dict[str, str], tag: str,
                 stage_types: dict[str, dict[str, str]], overrides: dict[str, list[Override]] | None = None,
                 previous: dict[str, Previous] | None = None,
                 staged_batches: dict[str, dict[int, str]] | None = None, staged_rows: dict[str, int] | None = None):
        self.adapter = adapter
        self.overrides = overrides or {}
        # what the last run built under the same configuration: datasets it allows are resolved
        # incrementally (see tessera.datasets.incremental)
        self.previous = previous or {}
        # per source read from kept batches: batch id -> staged table, and the rows staged (what
        # tells the records an incremental run reads again, see changed_by_batches)
        # (filled as the run stages its sources, after the builder is made)
        self.staged_batches = staged_batches if staged_batches is not None else {}
        self.staged_rows = staged_rows if staged_rows is not None else {}
        self.config = config
        self.stages = stages
        self.tag = tag
        self.stage_types = stage_types
        self.sources = {s.name: s for s in config.sources}
        self.built: dict[str, Built] = {}
        # called with a deduplicated dataset's name once its lineage is written, before its unified
        # rows are merged: the datasets related to it read only the lineage (see _lookup) and may
        # be built from then on (the run's datasets built side by side)
        self.on_lineage: Callable[[str], None] | None = None

    # ---------------------------------------------------------------- relations
    def _lookup(self, rel: RelationConfig) -> tuple[ibis.Table, list[NormalizationRule]]:
        """(key -> tessera_id of the target dataset, rules to normalize the referencing value)."""
        kind, obj, target = relation_target(self.config, rel)
        col = rel.to.split(".")[1]
        built = self.built[target]
        lineage = self.adapter.table(built.records)
        if kind == "source":
            rows = self.adapter.table(self.stages[obj])
            rules = self.sources[obj].normalize.get(col, [])
            pairs = rows.select("_tessera_record", key=rows[col].cast("string")).join(
                lineage.select("_tessera_record", TID), "_tessera_record"
            )
        else:
            # the records table holds the column and the id: no join with itself
            spec = next(c for c in built.columns if c.name == col)
            rules = spec.rules
            pairs = lineage.select(key=lineage[col].cast("string"), **{TID: lineage[TID]})
        # Placeholder values ("undefined", "null", "0"...) and the target's blocked values link nothing.
        target_ds = next(d for d in self.config.datasets if d.name == target)
        blocked = sorted({b.strip().lower() for b in [*DEFAULT_BLOCKED, *target_ds.blocked_values]})
        pairs = pairs.filter(pairs.key.notnull() & (pairs.key.strip() != "") & ~pairs.key.strip().lower().isin(blocked))
        lookup = pairs.group_by("key").agg(tid=pairs[TID].min(), _last=pairs[TID].max())
        # A value that points at several customers cannot say which one: no link (the smallest
        # and largest ids differ; cheaper than counting the distinct ids).
        return lookup.filter(lookup.tid == lookup._last).select("key", "tid"), rules

    def _mapped(self, ds: DatasetConfig, columns: list[ColumnSpec], links: list[str],
                only: dict[str, ibis.Table] | None = None) -> ibis.Table:
        """The mapped rows of ``ds`` (when ``only`` is given, of its sources alone, each read from
        the rows given for it: the rules run on those rows only)."""
        key_columns = {k.column for k in ds.identity_keys} if ds.deduplicate else set()
        parts = []
        for m in ds.mappings:
            if only is not None and m.source not in only:
                continue
            t = only[m.source] if only is not None else self.adapter.table(self.stages[m.source])
            link_cols: dict[str, list[str]] = {}
            for i, rel in enumerate(self.sources[m.source].relations):
                lookup, rules = self._lookup(rel)
                ref = t[rel.column].cast("string")
                if rules:
                    ref = apply_rules(ref, rules, self.adapter.dialect)
                alias = f"_link{i}"
                t = t.mutate(**{f"{alias}_key": ref.cast("string")})
                t = t.left_join(lookup.rename(**{f"{alias}_key": "key", alias: "tid"}), f"{alias}_key")
                t = t.drop(*[c for c in t.columns if c.endswith("_right")])
                link_cols.setdefault(link_name(self.config, rel), []).append(alias)
            sel = {}
            for spec in columns:
                target = IBIS_TYPES[spec.type]
                if spec.name not in m.columns:
                    sel[spec.name] = ibis.null(target)
                    continue
                v = t[m.columns[spec.name]]
                if spec.rules:
                    v = apply_rules(v.cast("string") if not v.type().is_string() else v, spec.rules, self.adapter.dialect)
                if type_name(v.type()) != spec.type:
                    v = cast_text(v, spec.type) if v.type().is_string() else v.try_cast(target)
                if spec.name in key_columns and spec.type == "string":
                    v = v.strip()
                sel[spec.name] = v.cast(target)
            for name in links:
                aliases = link_cols.get(name, [])
                sel[name] = ibis.coalesce(*[t[a] for a in aliases]) if len(aliases) > 1 else (
                    t[aliases[0]] if aliases else ibis.null(dt.string))
            parts.append(t.select(*[t[c] for c in META if c in t.columns], **sel))
        out = parts[0]
        for p in parts[1:]:
            out = out.union(p, distinct=False)
        return out

    # ---------------------------------------------------------------- computed columns
    def _create(self, ds: DatasetConfig, name: str, table: ibis.Table, order_by: str | None = None, *,
                temp: bool = False, hints: dict[str, str] | None = None) -> ibis.Table:
        """The work table ``name`` of the unified ``table`` with the computed columns of ``ds`` (typed
        as DuckDB types them), stored in the order of column ``order_by`` when given (and the
        compression ``hints`` of its columns); an engine error in a computed column names it.
        ``temp``: a part copied into other tables before the run ends (see
        :meth:`EngineAdapter.create_table`)."""
        if not ds.computed or enriched(ds):
            # computed columns are added by the enrichment step, after the columns they may use
            table = table.order_by(order_by) if order_by else table
            return self.adapter.create_table_hinted(name, table, hints) if hints else \
                self.adapter.create_table(name, table, temp=temp)
        types = duckdb_types(self.adapter, table, ds)
        place = f"datasets[{self.config.datasets.index(ds)}] ({ds.name})"
        with_computed = add_computed(self.adapter, table, ds, types)[0]
        return create_computed(self.adapter, name, table,
                               with_computed.order_by(order_by) if order_by else with_computed, ds, place, types,
                               temp=temp)

    # ---------------------------------------------------------------- incremental
    def _incremental(self, ds: DatasetConfig, links: list[str]) -> bool:
        """The dataset can be resolved incrementally: no probabilistic matching, key limits, manual
        overrides, links to other datasets (their ids may move) or event sources (one batch)."""
        events = {c.name for c in self.config.connections if c.type == "http"}
        return (ds.matching is None and not links and not self.overrides.get(ds.name)
                and not any(k.limit for k in ds.identity_keys)
                and not any(self.sources[m.source].connection in events for m in ds.mappings))

    def _changed(self, ds: DatasetConfig, before: Previous, previous: ibis.Table, tag: str,
                 keys: list[IdentityKey]) -> Changed | None:
        """The records of ``ds`` read from batches the last run did not read, and their rows, when
        nothing else changed (see :func:`changed_by_batches`), else None."""
        sources = [m.source for m in ds.mappings]
        if before.stages is None or len(set(sources)) != len(sources) or set(before.stages) != set(sources) \
                or any(s not in self.staged_rows for s in sources):
            return None
        return changed_by_batches(self.adapter, previous, before.stages, self.staged_batches,
                                  sum(self.staged_rows[s] for s in sources), tag, keys)

    def _refused_before(self, ds: DatasetConfig, keys: list[IdentityKey], before: Previous) -> ibis.Table | None:
        """(level, value) of the values the guards refused in the last run."""
        if before.shared is None or not any(k.guarded for k in keys):
            return None
        old = self.adapter.table(before.shared)
        old = old.filter(old.reason != _shared_reason(ds))
        if self.adapter.count(old) == 0:
            return None  # (none: no record of the set is looked for outside it)
        level = ibis.cases(*[(old.key == k.column, ibis.literal(i, "int8")) for i, k in enumerate(keys)])
        return old.select(level=level, value=old.value)

    def _counted(self, current: Current, part: ibis.Table, records: ibis.Table, keys: list[IdentityKey],
                 ds: DatasetConfig, before: Previous, tag: str) -> ibis.Table | None:
        """``level, value`` for every record that carries a key value of ``part`` (the rows of the
        affected set, ``_tessera_record`` in ``records``): what the shared-value threshold counts.

        A value of the set that the last run did not set aside (shared beyond the threshold or
        refused by the guards) linked all its records then, so those of the last run are in the
        set, and the new or changed ones are in it (they are touched): only the values set aside
        may have records outside it, looked up in the last lineage. None when there are none
        (the set's own values are the count)."""
        kv = key_values(part, keys, ds.blocked_values).select("level", "value")
        if before.shared is None:
            aside = None
        else:
            old = self.adapter.table(before.shared)
            if self.adapter.count(old) == 0:
                return None  # no value was set aside
            level = ibis.cases(*[(old.key == k.column, ibis.literal(i, "int8")) for i, k in enumerate(keys)])
            aside = self.adapter.create_table(f"{tag}part_aside", old.select(level=level, value=old.value).semi_join(
                kv, ["level", "value"]).distinct(), temp=True)
            levels = levels_of(self.adapter, aside)
            if not levels:
                return None
        if aside is None:  # (every value of the set looked up)
            aside = self.adapter.create_table(f"{tag}part_aside", kv.distinct(), temp=True)
            levels = None
        outside = carriers(current.previous, aside, keys, levels).anti_join(records, "_tessera_record")
        return self.adapter.create_table(f"{tag}counted", kv.union(outside.select("level", "value"), distinct=False),
                                         temp=True)

    def _keep_shared(self, ds: DatasetConfig, keys: list[IdentityKey], before: Previous, shared_table: str,
                      part: ibis.Table) -> None:
        """Add to ``shared_table`` the values set aside in the last run (shared beyond the threshold or
        refused by the guards) that no record of the affected set carries: all their records are
        outside it, unchanged, so they are set aside as before (the affected set's own values were
        just judged again)."""
        if before.shared is None or self.adapter.count(self.adapter.table(before.shared)) == 0:
            return
        kv = all_key_values(part, keys, ds.blocked_values)
        key = ibis.cases(*[(kv.level == i, ibis.literal(k.column)) for i, k in enumerate(keys)])
        carried = kv.select(key=key, value=kv.value.cast("string")).distinct()
        old = self.adapter.table(before.shared)
        kept = old.anti_join(carried, ["key", "value"])
        self.adapter.append_query(shared_table, kept.select(*self.adapter.table(shared_table).columns))

    # ---------------------------------------------------------------- build
    def build(self, ds: DatasetConfig, *, previous_lineage: str | None, generation: int) -> Built:
        columns = dataset_columns(ds, self.stage_types)
        links = []
        for m in ds.mappings:
            for rel in self.sources[m.source].relations:
                name = link_name(self.config, rel)
                if name not in links:
                    links.append(name)
        tag = f"{self.tag}{ds.name}__"
        mapped = self._mapped(ds, columns, links)
        semantic = {c.name: c.semantic for c in columns}
        counts: dict = {}
        shared_table = None
        if not ds.deduplicate:
            # One row per source record: the records table is the dataset.
            rows = mapped.select(**{TID: new_id(mapped._tessera_record, 0)}, **{c: mapped[c] for c in mapped.columns})
            records = self._create(ds, f"{tag}records", rows, time_order(self.adapter, columns))
            n = self.adapter.count(records)
            counts.update(records=n, unified=n, duplicates_merged=0, rows=n)
            built = Built(ds.name, f"{tag}records", f"{tag}records", None, columns, counts)
            self.built[ds.name] = built
            return built
        keys = [IdentityKey(k.column, semantic.get(k.column), k.limit,
                            guarded=not k.allow_conflicts and (bool(k.requires_agreement)
                                                               or semantic.get(k.column) in SHAREABLE),
                            agreement=k.requires_agreement)
                for k in ds.identity_keys]
        plan = current = None
        stored: dict[str, str] = {}
        patches: list[Patch] = []
        before = self.previous.get(ds.name) if self._incremental(ds, links) else None
        if before is not None:
            prev_records = self.adapter.table(before.records)
            if _types(prev_records.drop(TID)) == _types(mapped):
                changed = self._changed(ds, before, prev_records, tag, keys)
                plan = affected(self.adapter, mapped, prev_records, keys, ds.blocked_values, tag,
                                refused=self._refused_before(ds, keys, before), changed=changed,
                                fresh_from=self._mapped(ds, columns, links, only=changed.sources)
                                if changed else None)
                if plan is not None and plan.count * 2 > plan.total:
                    plan = None  # most records are affected: a full build is as quick
        if plan is not None:
            current = plan.current
        part = plan.rows if plan else mapped
        staged = plan.rows if plan else self.adapter.create_table(f"{tag}staged", self.adapter.with_row_index(
            part, "_idx"), temp=True)
        evidence = {}
        for c in columns:
            if c.semantic in ("FirstName", "LastName", "Email", "BirthDate") and c.semantic not in evidence:
                evidence[c.semantic] = c.name
        # (an incremental run: the last ids of the affected set's records, all the resolution reads)
        prev = plan.lineage if plan else self.adapter.table(previous_lineage) if previous_lineage else None
        matched = None
        if ds.matching is not None:
            from tessera.identity.matching import match

            matched = match(self.adapter, staged, ds.matching, tag, evidence)
            counts.update(matched.counts)
        res = resolve(self.adapter, staged, keys, blocked=ds.blocked_values,
                      threshold=ds.shared_value_threshold, previous=prev, generation=generation, tag=tag,
                      evidence=evidence, links=matched.links if matched else None,
                      overrides=self.overrides.get(ds.name),
                      counted=self._counted(current, staged, plan.records, keys, ds, before, tag) if plan else None)
        counts.update(res.counts)
        shared_table = f"{tag}shared_values"
        self.adapter.create_table(shared_table, res.shared)
        joined = staged.join(res.lineage, "_idx")
        records = joined.select(TID, *[c for c in joined.columns if c not in (TID, "_idx", "_size")])
        merge_columns = [MergeColumn(c.name, c.merge) for c in columns] + [MergeColumn(name, "most_recent")
                                                                           for name in links]
        merged = merge(joined, merge_columns, date_column=ds.date_column, source_priority=ds.source_priority)
        if plan is not None:
            # The unified records the new records do not touch are taken as they were.
            kept_records = self.adapter.table(before.records).anti_join(plan.records, "_tessera_record")
            new_records = records.cast(kept_records.schema())
            records = kept_records.union(new_records, distinct=False)
            patching = self.adapter.patches_in_place and max(self.adapter.dead_share(before.records),
                                                             self.adapter.dead_share(before.data)) < DEAD_SHARE
            if patching:
                # (the lineage's new part stored first, with each record's unified record size: the
                # merge reads it, not the joins of the staged rows with their ids again)
                lineage_types = kept_records.schema()
                stored_part = self.adapter.create_table(f"{tag}records_part", joined.select(
                    *[joined[c].cast(t).name(c) for c, t in lineage_types.items()], "_size"), temp=True)
                records_part = stored_part.drop("_size")
                merged = merge(stored_part, merge_columns, date_column=ds.date_column,
                               source_priority=ds.source_priority)
            # (work tables: their rows are copied into the published tables, which a checkpoint then
            # writes; the parts themselves are never written to the file)
            part = self._create(ds, f"{tag}data_part", merged, temp=True)
            kept_data = self.adapter.table(before.data).anti_join(plan.old_ids, TID)
            self._keep_shared(ds, keys, before, shared_table, staged)
            counts["records"] = plan.total
            counts["resolved_again"] = plan.count
            if patching:
                # The last publication's tables are patched when this run publishes (the rows of
                # the affected unified records replaced); until then the run reads them through views.
                data_part = part.cast(kept_data.schema())
                self.adapter.create_view(f"{tag}records", kept_records.union(records_part, distinct=False))
                table = self.adapter.create_view(f"{tag}data", kept_data.union(data_part, distinct=False))
                stored = {f"{tag}records": before.records, f"{tag}data": before.data}
                patches = [Patch(before.records, "_tessera_record", plan.records, records_part),
                           Patch(before.data, TID, plan.old_ids, data_part)]
            else:
                self.adapter.create_table_hinted(f"{tag}records", records, LINEAGE_HINTS)
                with self.adapter.read_often():
                    table = self.adapter.create_table(f"{tag}data", kept_data.union(part.cast(kept_data.schema()),
                                                                                    distinct=False))
        else:
            lineage = self.adapter.create_table_hinted(f"{tag}records", records, LINEAGE_HINTS)
            if self.on_lineage is not None:
                self.built[ds.name] = Built(ds.name, f"{tag}data", f"{tag}records", shared_table, columns, counts)
                self.on_lineage(ds.name)
            # Merged from the lineage just written, not from the staged records joined with their
            # ids again: the ids of the unified records of more than one record (a fifth of them at
            # a million contacts) part the rows.
            several = res.lineage.filter(res.lineage._size > 1).select(TID).distinct()
            merged = merge_parts(lineage.anti_join(several, TID), lineage.semi_join(several, TID), merge_columns,
                                 date_column=ds.date_column, source_priority=ds.source_priority)
            with self.adapter.read_often():  # the published rows: pages, filters and segments read them
                table = self._create(ds, f"{tag}data", merged, hints=UNIFIED_HINTS)
        if plan is not None:
            # (the last unified table holds one row per unified record of its lineage: those kept
            # and the part merged again, counted without a pass over the kept ones)
            counts["rows"] = (self.adapter.count(self.adapter.table(before.data)) - self.adapter.count(plan.old_ids)
                              + self.adapter.count(part))
        else:
            counts["rows"] = self.adapter.count(table)
        if plan is not None:
            counts["unified"] = counts["rows"]
            counts["duplicates_merged"] = counts["records"] - counts["rows"]
            sv = self.adapter.table(shared_table)
            refused_by_guards = self.adapter.count(sv.filter(sv.reason != _shared_reason(ds)))
            counts["shared_values"] = self.adapter.count(sv) - refused_by_guards
            if "refused_by_guards" in counts:
                counts["refused_by_guards"] = refused_by_guards
        built = Built(ds.name, f"{tag}data", f"{tag}records", shared_table, columns, counts,
                      stored=stored, patches=patches)
        if matched is not None:
            built.matches = f"{tag}matches_public"
            m = self.adapter.table(matched.matches)
            self.adapter.create_table(built.matches, m.join(
                res.lineage.select(idx_l="_idx", tessera_id_l=TID), "idx_l").join(
                res.lineage.select(idx_r="_idx", tessera_id_r=TID), "idx_r").drop("idx_l", "idx_r"))
        self.built[ds.name] = built
        return built

