"""Which values identify a customer, normalized as the pipeline normalizes them.

A source column is an *identifier* when a dataset maps it into one of its identity keys, or
when a relation of the source points at an identifier of another source or dataset
(``orders.customer_email -> crm.email``). Its value is compared once normalized as at import:
the source's rules of the column, then the dataset column's rules (or, for a relation, the rules
of the column it points at), then trimmed, exactly the text the identity graph compares.

Collected events are identified by their id columns (``user_id``, ``anonymous_id``,
``previous_id``) and their ``email`` (already trimmed and lower-cased by the collector).
Everything here is an Ibis expression: the engine computes it over whole tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt

from tessera.config.models import DatasetConfig, NormalizationRule, SourceConfig, WorkspaceConfig
from tessera.engine.dialects import Dialect
from tessera.normalize.rules import apply_rules
from tessera.sources.staging import nested_path

#: the id columns of collected events that name a person (``group_id`` names a company)
EVENT_ID_COLUMNS = ("user_id", "anonymous_id", "previous_id", "email")


@dataclass
class Identifier:
    """One identifier column of a source, with the rule lists that normalize its raw text."""

    column: str  # the source column (or a JSON path into one: customer.email)
    kind: str  # the dataset column it feeds (email, customer_id...), for receipts and listings
    rules: list[list[NormalizationRule]] = field(default_factory=list)


def deduplicated(config: WorkspaceConfig) -> list[DatasetConfig]:
    """The customer datasets: deduplicated datasets with identity keys."""
    return [d for d in config.datasets if d.deduplicate and d.identity_keys]


def _dataset_rules(ds: DatasetConfig, column: str) -> list[NormalizationRule]:
    spec = next((c for c in ds.columns if c.name == column), None)
    return list(spec.normalize) if spec is not None else []


def source_identifiers(config: WorkspaceConfig, src: SourceConfig) -> list[Identifier]:
    """The identifier columns of ``src`` (see the module's documentation), each once."""
    sources = {s.name: s for s in config.sources}
    out: dict[str, Identifier] = {}
    for ds in deduplicated(config):
        keys = {k.column for k in ds.identity_keys}
        for m in ds.mappings:
            if m.source != src.name:
                continue
            for dcol, scol in m.columns.items():
                if dcol in keys and scol not in out:
                    out[scol] = Identifier(scol, dcol, [src.normalize.get(scol, []), _dataset_rules(ds, dcol)])
    for rel in src.relations:
        obj, col = rel.to.split(".", 1)
        target_ds = next((d for d in deduplicated(config) if d.name == obj), None)
        if target_ds is not None:
            if any(k.column == col for k in target_ds.identity_keys) and rel.column not in out:
                out[rel.column] = Identifier(rel.column, col, [src.normalize.get(rel.column, []),
                                                               _dataset_rules(target_ds, col)])
            continue
        target = sources.get(obj)
        if target is None or target.name == src.name:
            continue
        if any(i.column == col for i in source_identifiers(config, target)) and rel.column not in out:
            # the referencing value is normalized with the rules of the column it points at
            out[rel.column] = Identifier(rel.column, col, [target.normalize.get(col, [])])
    return list(out.values())


def key_rule_sets(config: WorkspaceConfig, ds: DatasetConfig, column: str) -> list[list[NormalizationRule]]:
    """The rule lists a value of identity key ``column`` may have gone through, one per source."""
    sources = {s.name: s for s in config.sources}
    out = []
    for m in ds.mappings:
        if column in m.columns and m.source in sources:
            rules = [*sources[m.source].normalize.get(m.columns[column], []), *_dataset_rules(ds, column)]
            if rules and rules not in out:
                out.append(rules)
    return out


def text(value: ibis.Value) -> ibis.StringValue:
    """The compared text of a value: as text, trimmed, NULL when empty."""
    v = value if value.type().is_string() else value.cast("string")
    return v.strip().nullif("")


def raw_value(table: ibis.Table, ident: Identifier, dialect: Dialect) -> ibis.StringValue | None:
    """``ident`` in a raw batch (all text columns) through its normalization rules, None when the
    batch does not have the column; :func:`text` of it is the compared value (applied once the
    value is materialized: normalization expressions are large, and nesting them grows them)."""
    if ident.column in table.columns:
        v = table[ident.column].cast("string")
    else:
        nested = nested_path(ident.column, table.columns)
        if nested is None:
            return None
        v = dialect.json_text(table[nested[0]], nested[1])
    for rules in ident.rules:
        if rules:
            v = apply_rules(v if v.type().is_string() else v.cast("string"), rules, dialect)
    return v if v.type().is_string() else v.cast("string")


def identifier_table(adapter, config: WorkspaceConfig, src: SourceConfig, table: ibis.Table,
                     work: str) -> tuple[ibis.Table | None, list[str]]:
    """A work table ``work`` (temporary: the caller drops it) of the raw batch's
    ``_tessera_line`` and its identifiers normalized by their rules (columns ``_tessera_i<n>``),
    and the names of those columns; (None, []) when the batch has no identifier column."""
    exprs = {}
    for j, ident in enumerate(source_identifiers(config, src)):
        v = raw_value(table, ident, adapter.dialect)
        if v is not None:
            exprs[f"_tessera_i{j}"] = v
    if not exprs:
        return None, []
    out = adapter.create_table(work, table.select(_tessera_line=table._tessera_line.cast("int64"), **exprs),
                               temp=True)
    return out, list(exprs)


def digest(value: ibis.Value, salt: str) -> ibis.StringValue:
    """The salted SHA-256 (hex) of a normalized identifier (already :func:`text`), by the engine."""
    return ibis.literal(salt, dt.string).concat(value).hexdigest("sha256")


def any_of(conditions: list[ibis.BooleanValue]) -> ibis.BooleanValue:
    if not conditions:
        return ibis.literal(False)
    out = conditions[0]
    for c in conditions[1:]:
        out = out | c
    return out
