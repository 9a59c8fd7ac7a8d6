"""Datasets per entity, mapped from every source by semantic field; identity keys, merge rules,
shared values and the scores that the semantic fields allow."""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis

from tessera.config.models import NormalizationRule
from tessera.engine.dialects import dialect_for
from tessera.enrich.scores import EVENT_SCORES, LIBRARY, missing_fields
from tessera.normalize.rules import apply_rules
from tessera.normalize.semantic import tokens
from tessera.setup.columns import pct
from tessera.setup.profile import Profiler, slug
from tessera.setup.sources import SourcePlan

DUCKDB = dialect_for("duckdb")  # files are profiled with DuckDB, whatever the warehouse

CANON = {
    "Email": "email", "Phone": "phone", "FirstName": "first_name", "LastName": "last_name", "FullName": "full_name",
    "BirthDate": "birth_date", "Gender": "gender", "Address": "address", "PostalCode": "postal_code", "City": "city",
    "Country": "country", "EmailOptIn": "email_optin", "SmsOptIn": "sms_optin", "CreatedAt": "created_at",
    "UpdatedAt": "updated_at", "LoyaltyCard": "loyalty_card", "OrderId": "order_id", "OrderDate": "order_date",
    "OrderAmount": "amount", "DiscountAmount": "discount", "Store": "store", "StoreId": "store_id",
    "Channel": "channel", "ProductId": "product_id", "ProductName": "product_name", "ProductCategory": "category",
    "Quantity": "quantity", "UnitPrice": "unit_price", "StoreName": "store_name", "AnonymousId": "anonymous_id",
    "EventName": "event", "EventTime": "event_time", "EventType": "event_type", "CustomerId": "customer_id",
}
MERGE = {
    "Email": "non_null_most_recent", "Phone": "non_null_most_recent", "FirstName": "most_frequent",
    "LastName": "most_frequent", "FullName": "most_frequent", "Country": "most_frequent",
    "LoyaltyCard": "concat_unique", "CustomerId": "concat_unique", "CreatedAt": "min", "UpdatedAt": "max",
    "EmailOptIn": "most_recent", "SmsOptIn": "most_recent",
}
_NAME_WORDS = {"name", "nom", "nombre", "libelle", "designation", "label", "title", "titre"}
_PLACEHOLDER_LOCAL = {"test", "none", "noreply", "no_reply", "no-reply", "nobody", "aucun", "example", "x", "xx",
                      "xxx", "a", "na", "null", "email", "mail", "inconnu", "nomail"}


@dataclass
class DatasetPlan:
    name: str
    entity: str
    sources: list[SourcePlan]
    columns: list[dict] = field(default_factory=list)  # name, semantic, type, merge, evidence
    mappings: dict[str, dict[str, str]] = field(default_factory=dict)
    identity_keys: list[dict] = field(default_factory=list)
    identity_evidence: dict[str, str] = field(default_factory=dict)
    shared_value_threshold: int | None = None
    threshold_evidence: str = ""
    blocked_values: list[str] = field(default_factory=list)
    date_column: str | None = None
    scores: dict | None = None
    scores_evidence: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)


def _entity_semantic(entity: str, col: str, sem: str | None) -> str | None:
    """Fields whose meaning depends on the entity: a product's 'name' is its ProductName, an order's
    store id is the order's Store."""
    words = set(tokens(col))
    if entity == "products" and (sem in ("FirstName", "LastName", "FullName") or (sem is None and words & _NAME_WORDS)):
        return "ProductName"
    if entity == "stores" and (sem in ("FirstName", "LastName", "FullName") or (sem is None and words & _NAME_WORDS)):
        return "StoreName"
    if entity == "orders" and sem == "StoreId":
        return "Store"
    if entity == "contacts" and sem == "OrderAmount":
        return "Other"  # a customer's total spent: the scores read amounts from orders
    return sem


def _merged_type(types: list[str]) -> str:
    kinds = set(types)
    if len(kinds) == 1:
        return types[0]
    if kinds <= {"date", "timestamp"}:
        return "timestamp"
    if kinds <= {"integer", "float", "decimal"}:
        return "float"
    return "string"


def build_dataset(name: str, entity: str, sources: list[SourcePlan]) -> DatasetPlan:
    ds = DatasetPlan(name, entity, sources)
    cols: dict[str, dict] = {}
    for s in sources:
        mapping: dict[str, str] = {}
        for col, cp in s.columns.items():
            sem = _entity_semantic(entity, col, cp.semantic)
            if sem != cp.semantic and sem:
                cp.semantic, cp.semantic_evidence = sem, f"column '{col}' of a {entity} source"
            if entity == "orders" and sem is None and cp.date_kind and not s.by_field("OrderDate"):
                sem = cp.semantic = "OrderDate"
                cp.semantic_evidence = "the only date of an orders source"
            if entity == "contacts" and col in s.same_ids:
                owner, key, why = s.same_ids[col]
                sem = cp.semantic = "CustomerId"
                cp.semantic_evidence = why
                target = slug(f"{owner}_{key}")
            elif sem == "CustomerId" and entity == "contacts":
                target = slug(f"{s.name}_{col}") if col in s.record_keys else slug(col)
            elif sem and sem != "Other" and sem in CANON:
                target = CANON[sem]
            else:
                target = slug(col)
            if target in mapping or target.startswith("tessera_"):
                target = slug(f"{target}_{col}")
            mapping[target] = col
            staged = cp.type if cp.type in ("string", "integer", "float", "decimal", "boolean", "date", "timestamp") \
                else "string"
            entry = cols.setdefault(target, {"name": target, "semantic": sem or "Other", "types": [],
                                             "from": [], "evidence": cp.semantic_evidence})
            entry["types"].append(staged)
            entry["from"].append(f"{s.name}.{col}")
        ds.mappings[s.name] = mapping
    for c in cols.values():
        kind = _merged_type(c["types"])
        merge = MERGE.get(c["semantic"], "non_null_most_recent") if entity == "contacts" else None
        col = {"name": c["name"], "type": kind, "semantic": c["semantic"]}
        if merge:
            col["merge"] = merge
        ds.columns.append({**col, "evidence": f"from {', '.join(c['from'])}"
                           + (f" ({c['evidence']})" if c["evidence"] else "")})
    if entity == "contacts":
        dated = {c["name"] for c in ds.columns if c["type"] in ("date", "timestamp")}
        ds.date_column = "updated_at" if "updated_at" in dated else None
    return ds


# ---------------------------------------------------------------------------- identity


def _raw(prof: Profiler, s: SourcePlan, col: str) -> ibis.Table:
    t = prof.table(s.first.profiled)
    return t.select(v=t[col].cast("string"))


def _normalized(union: ibis.Table, rules: list) -> ibis.Table:
    """The values of every source normalized at once (one compiled rule, whatever the sources)."""
    rules = [NormalizationRule.model_validate(r) for r in rules if not (isinstance(r, dict) and "null_like" in r)]
    v = apply_rules(union.v, rules, DUCKDB) if rules else union.v
    v = v.cast("string").strip()
    return union.select(v=v).filter(lambda x: x.v.notnull() & (x.v != ""))


def plan_identity(prof: Profiler, ds: DatasetPlan) -> None:
    """Identity keys (e-mails, phones, loyalty cards and ids shared across sources) and the
    threshold above which a value is shared (a household landline, a placeholder), from the data."""
    names = {c["name"]: c for c in ds.columns}
    keys = []
    for col, sem, limit in (("email", "Email", None), ("phone", "Phone", None), ("loyalty_card", "LoyaltyCard", 1)):
        if col in names:
            keys.append((col, sem, limit))
    for c in ds.columns:  # other e-mail and phone columns
        if c["semantic"] in ("Email", "Phone") and c["name"] not in ("email", "phone"):
            keys.append((c["name"], c["semantic"], None))
    # customer ids that several sources carry are shared ids
    for c in ds.columns:
        if c["semantic"] == "CustomerId" and sum(1 for m in ds.mappings.values() if c["name"] in m) > 1:
            keys.append((c["name"], "CustomerId", 1))
    n_sources = len(ds.sources)
    limit_shared = 2 * n_sources
    shared_found = []
    blocked = set()
    for col, sem, limit in keys:
        feeding = [s for s in ds.sources if col in ds.mappings[s.name]]
        parts = [_raw(prof, s, ds.mappings[s.name][col]) for s in feeding]
        union = parts[0]
        for p in parts[1:]:
            union = union.union(p, distinct=False)
        union = _normalized(union, feeding[0].columns[ds.mappings[feeding[0].name][col]].rules)
        counts = union.group_by("v").agg(n=union.count())
        stats = counts.aggregate(values=counts.count(), multi=(counts.n > 1).cast("int64").sum(),
                                 top=counts.n.max()).to_pyarrow().to_pylist()[0]
        heavy = counts.filter(counts.n > limit_shared).order_by(ibis.desc("n")).limit(20).to_pyarrow().to_pylist()
        entry = {"column": col}
        if limit:
            entry["limit"] = limit
        ds.identity_keys.append(entry)
        ev = (f"{sem} in {len(parts)} source(s): {stats['values'] or 0:,} distinct values, "
              f"{stats['multi'] or 0:,} carried by several records")
        if sem == "CustomerId":
            ev = "ids shared across sources: " + ev
        if limit:
            ev += f"; at most {limit} per customer"
        ds.identity_evidence[col] = ev
        for h in heavy:
            shared_found.append((col, h["v"], h["n"]))
            if _placeholder(sem, h["v"]):
                blocked.add(h["v"])
    if shared_found:
        ds.shared_value_threshold = limit_shared
        listed = ", ".join(f"{v} ({n} records)" for _, v, n in shared_found[:6])
        ds.threshold_evidence = (f"{len(shared_found)} value(s) carried by more than {limit_shared} records "
                                 f"(2 per source, {n_sources} sources): {listed}")
        ds.doubts.append(f"dataset '{ds.name}': {len(shared_found)} identity value(s) are carried by more than "
                         f"{limit_shared} records (households, switchboards or placeholders): set aside as shared "
                         "values, never merged on")
    ds.blocked_values = sorted(blocked)


def _placeholder(sem: str, value: str) -> bool:
    if sem == "Email":
        return value.split("@")[0] in _PLACEHOLDER_LOCAL
    digits = "".join(ch for ch in value if ch.isdigit())
    return bool(digits) and len(set(digits[-8:])) <= 1


# ---------------------------------------------------------------------------- scores


def plan_scores(contacts: DatasetPlan, orders: DatasetPlan | None, items: DatasetPlan | None,
                products: DatasetPlan | None, relations_ok: bool) -> None:
    if orders is None or not relations_ok:
        if orders is not None:
            contacts.scores_evidence.append("no relation from the orders to the contacts: no scores")
        return
    of = {c["semantic"] for c in orders.columns}
    itf = {c["semantic"] for c in items.columns} if items else set()
    if items and products and "ProductCategory" not in itf and any(
            c["semantic"] == "ProductCategory" for c in products.columns):
        itf.add("ProductCategory")  # order lines get it from the products they point at
    library, skipped = [], []
    for name in LIBRARY:
        if name in EVENT_SCORES:
            continue
        missing = missing_fields(name, of, itf)
        if missing:
            skipped.append(f"{name} (needs {', '.join(missing)})")
        else:
            library.append(name)
    if not library:
        contacts.scores_evidence.append("the orders lack OrderDate and OrderAmount: no scores")
        return
    contacts.scores = {"library": library}
    contacts.scores_evidence.append("allowed by the fields of orders (" + ", ".join(sorted(of - {"Other"}))
                                    + (") and order items (" + ", ".join(sorted(itf - {"Other"})) if items else "")
                                    + ")")
    if skipped:
        contacts.scores_evidence.append("not proposed: " + "; ".join(skipped))
    if {"OrderDate", "OrderAmount"} <= of:
        contacts.scores["predictive"] = True
        contacts.scores_evidence.append("predictive: OrderDate and OrderAmount give MBG/NBD + Gamma-Gamma")


def key_coverage(prof: Profiler, ds: DatasetPlan) -> str:
    """How many records of the dataset carry at least one identity key (for the evidence)."""
    total = sum(s.first.rows for s in ds.sources)
    carried = 0
    keys = {k["column"] for k in ds.identity_keys}
    for s in ds.sources:
        cols = [m for c, m in ds.mappings[s.name].items() if c in keys]
        if not cols:
            continue
        t = prof.table(s.first.table)
        cond = ibis.or_(*[t[c].notnull() & (t[c].strip() != "") for c in cols])
        carried += t.filter(cond).count().to_pyarrow().as_py()
    return f"{pct(carried, total)} records carry an identity key"
