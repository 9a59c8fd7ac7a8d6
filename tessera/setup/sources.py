"""Sources of a folder: dated series, the entity of each source, its record keys, its relations."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import ibis

from tessera.config.models import NormalizationRule
from tessera.engine.dialects import dialect_for
from tessera.engine.sample import column_values
from tessera.normalize.rules import apply_rules
from tessera.normalize.semantic import tokens
from tessera.setup.columns import ID_FIELDS, ColumnPlan, pct
from tessera.setup.profile import FileProfile, Profiler, slug

ENTITIES = ("contacts", "orders", "order_items", "products", "stores", "events")
# a relation goes from a lower rank to a higher one (order lines -> orders -> contacts -> stores)
RANK = {"events": 0, "order_items": 1, "orders": 2, "contacts": 3, "products": 4, "stores": 4}
PERSONAL = {"Email", "Phone", "FirstName", "LastName", "FullName", "BirthDate", "Gender", "Address", "PostalCode",
            "EmailOptIn", "LoyaltyCard"}
FILE_HINTS = {
    "contacts": ["contact", "customer", "client", "cliente", "member", "membre", "user", "account", "compte", "crm",
                 "abonne", "subscriber", "socio"],
    "orders": ["order", "commande", "pedido", "ticket", "sale", "vente", "venta", "transaction", "purchase", "achat",
               "compra", "invoice", "facture", "factura"],
    "order_items": ["item", "line", "ligne", "linea", "detail", "article"],
    "products": ["product", "produit", "producto", "catalog", "catalogue", "catalogo", "sku", "article"],
    "stores": ["store", "magasin", "tienda", "shop", "boutique"],
    "events": ["event", "evenement", "evento", "track", "click", "pageview"],
}
_DATE_TOKEN = re.compile(r"(19|20)\d{2}[-_.]?\d{2}([-_.]?\d{2})?|\d{8}|\d{6}|\d+")


@dataclass
class SourcePlan:
    name: str
    files: list[FileProfile]
    pattern: str
    columns: dict[str, ColumnPlan] = field(default_factory=dict)
    entity: str = "custom"
    entity_evidence: str = ""
    record_keys: list[str] = field(default_factory=list)
    key_evidence: str = ""
    relations: list[dict] = field(default_factory=list)  # {column, to, evidence}
    # column -> (source, its record key, evidence): this contact source carries another one's ids
    same_ids: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)

    @property
    def first(self) -> FileProfile:
        return self.files[0]

    def semantic(self) -> dict[str, str]:
        return {c: p.semantic for c, p in self.columns.items() if p.semantic}

    def by_field(self, sem: str) -> list[str]:
        return [c for c, p in self.columns.items() if p.semantic == sem]


def series_key(rel: str) -> tuple | None:
    """(folder, extension, name with its dates and numbers taken out), or None for a name without any."""
    folder, _, name = rel.rpartition("/")
    stem, _, ext = name.rpartition(".")
    shape = _DATE_TOKEN.sub("#", stem)
    return (folder, ext.lower(), shape) if "#" in shape else None


def series(files: list[FileProfile]) -> list[list[FileProfile]]:
    """Files grouped into dated series: same folder, extension and columns, names equal once their
    dates and numbers are taken out (``contacts_2024-01.csv``, ``contacts_2024-02.csv``)."""
    groups: dict[tuple, list[FileProfile]] = {}
    for f in files:
        folder, _, name = f.rel.rpartition("/")
        stem, _, ext = name.rpartition(".")
        shape = _DATE_TOKEN.sub("#", stem)
        key = (folder, ext.lower(), shape if "#" in shape else name, tuple(f.columns) if not f.error else (f.rel,))
        groups.setdefault(key, []).append(f)
    return list(groups.values())


def pattern_of(group: list[FileProfile]) -> str:
    if len(group) == 1:
        return re.sub(r"([*?\[\]])", r"[\1]", group[0].rel)
    folder, _, name = group[0].rel.rpartition("/")
    stem, _, ext = name.rpartition(".")
    glob = re.sub(r"#+", "*", _DATE_TOKEN.sub("#", stem)) + "." + ext
    return f"{folder}/{glob}" if folder else glob


def source_name(group: list[FileProfile], taken: set[str]) -> str:
    folder, _, name = group[0].rel.rpartition("/")
    stem = name.rpartition(".")[0]
    if len(group) > 1:
        stem = _DATE_TOKEN.sub("", stem)
    base = slug(stem)
    parent = slug(folder.rpartition("/")[2]) if folder else ""
    if parent and not base.startswith(parent):
        base = f"{parent}_{base}"
    if base in ENTITIES:
        base += "_file"
    base = base[:56]
    out, i = base, 2
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def entity_of(src: SourcePlan) -> tuple[str, str]:
    """The entity of a source from its semantic fields, its record key and its file name."""
    fields = Counter(p.semantic for p in src.columns.values() if p.semantic)
    has = lambda *names: any(fields[n] for n in names)
    words = set(tokens(src.pattern.rpartition("/")[2].rpartition(".")[0]))
    words |= {w[:-1] for w in words if w.endswith("s")}
    hint = next((e for e, ws in FILE_HINTS.items() if any(w.startswith(x) for w in words for x in ws)), None)
    personal = sorted(f for f in fields if f in PERSONAL)
    found = ", ".join(f"{f} ({', '.join(src.by_field(f))})" for f in sorted(fields) if f != "Other")
    if has("EventName", "EventTime") and not has("OrderAmount"):
        return "events", f"event fields: {found}"
    if has("Quantity") or (has("OrderId") and has("ProductId") and not has("OrderDate")):
        return "order_items", f"order line fields: {found}"
    # A customer file may carry a total spent ("CA total"): an amount alone, beside two personal
    # fields or more, makes no order.
    if has("OrderDate") or (has("OrderId") and not personal) or (has("OrderAmount") and len(personal) < 2):
        return "orders", f"order fields: {found}"
    if len(personal) >= 2 or has("Email"):
        return "contacts", f"personal fields: {found}"
    if has("ProductId", "ProductName", "ProductCategory") and not personal:
        return "products", f"product fields: {found}"
    if has("StoreId", "StoreName"):
        return "stores", f"store fields: {found}"
    if hint:
        return hint, f"file name '{src.pattern}' (fields: {found or 'none recognized'})"
    return "custom", f"no entity recognized (fields: {found or 'none'})"


# ---------------------------------------------------------------------------- record keys

_LINE_WORDS = {"line", "ligne", "linea", "lineno", "position", "pos", "seq", "sequence", "rank", "row"}
_KEY_WORDS = ("id", "key", "code", "number", "num", "no", "ref", "numero", "codigo", "cle", "card", "carte")


def _key_rank(src: SourcePlan, col: str, index: int) -> tuple:
    sem = src.columns[col].semantic
    wanted = {"contacts": {"CustomerId", "LoyaltyCard"}, "orders": {"OrderId"}, "products": {"ProductId"},
              "stores": {"StoreId"}, "order_items": {"OrderId"}}.get(src.entity, set())
    words = tokens(col)
    return (0 if sem in wanted else 1 if sem in ID_FIELDS else 2 if any(w in _KEY_WORDS for w in words) else 3,
            1 if sem in ("Email", "Phone") else 0, index)


def record_keys(prof: Profiler, src: SourcePlan) -> None:
    """The column, or smallest combination, whose values are unique and never empty."""
    f = src.first
    rows = f.rows
    cols = list(src.columns)
    profiles = f.columns
    sample = f" in a sample of the first {rows:,} rows (about {f.rows_estimate:,} in the file)" if f.sampled else ""
    exact = [c for c in cols if profiles[c].filled == rows and profiles[c].distinct == rows and rows]
    # The entity's own id with a few repeated values is a better key than a unique e-mail, which
    # changes: the repeated lines are handled by on_duplicate_key (the last one is kept).
    own = [c for c in cols if rows and _key_rank(src, c, 0)[0] == 0 and profiles[c].filled >= 0.98 * rows
           and profiles[c].distinct >= 0.85 * rows]
    if exact and own and _key_rank(src, min(exact, key=lambda c: _key_rank(src, c, cols.index(c))), 0)[0] > 1:
        exact = []
    if exact:
        best = min(exact, key=lambda c: _key_rank(src, c, cols.index(c)))
        src.record_keys = [best]
        src.key_evidence = f"unique and present in {pct(rows, rows)} rows{sample}"
        if len(exact) > 1:
            src.key_evidence += f" (also unique: {', '.join(c for c in exact if c != best)})"
        return
    # nearly a key: the few empty or repeated values are rejected at import, with their line
    near = [c for c in cols if rows and min(profiles[c].filled, profiles[c].distinct) >= 0.98 * rows]
    near = [c for c in near if _key_rank(src, c, 0)[0] <= 1] or own
    if near:
        best = min(near, key=lambda c: _key_rank(src, c, cols.index(c)))
        p = profiles[best]
        empty, dup = rows - p.filled, p.filled - p.distinct
        src.record_keys = [best]
        src.key_evidence = (f"present in {pct(p.filled, rows)} rows, {p.distinct:,} distinct values{sample}")
        found = [f"empty in {empty:,} row(s)"] if empty else []
        found += [f"repeated in {dup:,} row(s)"] if dup else []
        src.doubts.append(f"source '{src.name}': record key '{best}' is {' and '.join(found)}: a row without it is "
                          "rejected with its line, and of the rows sharing one the last is kept, the others are "
                          "in `tessera rejects` (on_duplicate_key)")
        return
    t = prof.table(f.table)
    full = [c for c in cols if profiles[c].filled == rows and profiles[c].distinct > 1]
    full.sort(key=lambda c: _key_rank(src, c, cols.index(c)))
    candidates = full[:8]
    for i, a in enumerate(candidates):
        # a line number beside an id is the usual second part of an order line's key
        rest = sorted(candidates[i + 1:], key=lambda c: (0 if set(tokens(c)) & _LINE_WORDS else 1,
                                                          _key_rank(src, c, cols.index(c))))
        for b in rest:
            n = t.select(a, b).distinct().count().to_pyarrow().as_py()
            if n == rows:
                src.record_keys = [a, b]
                src.key_evidence = f"the pair is unique and present in {pct(rows, rows)} rows{sample}; no single column is"
                return
    # no key at all: every column together
    src.record_keys = list(cols[: min(len(cols), 8)])
    src.key_evidence = "no column or pair is unique"
    src.doubts.append(f"source '{src.name}': no column or pair of columns is unique and never empty; the first "
                      f"{len(src.record_keys)} columns together are the record key: choose the right one")


# ---------------------------------------------------------------------------- relations


def _signatures(examples: list[str]) -> set[str]:
    """Shapes of example values: digits as 9, letters as A ('CL100003' -> 'AA999999')."""
    return {re.sub(r"[A-Za-z]", "A", re.sub(r"[0-9]", "9", e)) for e in examples} or {""}


# the entity whose record key an id field of another source points at
_POINTS_AT = {"CustomerId": "contacts", "LoyaltyCard": "contacts", "OrderId": "orders", "ProductId": "products",
              "StoreId": "stores", "Store": "stores"}


def _rules(src: SourcePlan, col: str) -> list[NormalizationRule]:
    return [NormalizationRule.model_validate(r) for r in src.columns[col].rules
            if not (isinstance(r, dict) and "date" in r)]


def _values(prof: Profiler, src: SourcePlan, col: str, *, whole: bool = False) -> ibis.Table:
    """The distinct normalized values of a column: of the rows read, or of the whole file (``whole``,
    for a key that relations point at in a file profiled on a sample)."""
    if whole and (src.first.sampled or len(src.files) > 1):
        # every file of a series, each read whole
        parts = []
        for i, f in enumerate(src.files):
            target = f"_tessera_keys_{src.name}_{slug(col)}_{i}"
            column_values(prof.con, str(f.path), f.fmt, col, target, delimiter=f.delimiter)
            parts.append(prof.table(target))
        t, name = (parts[0] if len(parts) == 1 else parts[0].union(*parts[1:], distinct=True)), "v"
        if len(parts) == 1 and not _rules(src, col):
            return t  # already the distinct, trimmed, non-empty values
    else:
        t, name = prof.table(src.first.table), col
    v = t[name]
    rules = _rules(src, col)
    if rules:
        v = apply_rules(v, rules, dialect_for("duckdb"))
    v = v.cast("string").strip()
    values = t.select(v=v).filter(lambda x: x.v.notnull() & (x.v != "")).distinct()
    # kept in the engine: every comparison with this column reads it again
    name = f"_tessera_v_{src.name}_{col}_{int(whole)}"
    return prof.ibis.create_table(name, values, temp=True, overwrite=True)


def find_relations(prof: Profiler, plans: list[SourcePlan], contact_dataset: str | None) -> None:
    """Columns whose values are found in another source's record key or in the contacts' e-mails and
    phones, with the share found (computed in the engine on the distinct values)."""
    targets = []  # (source plan, column, 'to' text, kind)
    for s in plans:
        if len(s.record_keys) == 1:
            targets.append((s, s.record_keys[0], f"{s.name}.{s.record_keys[0]}", "key"))
        if s.entity == "contacts" and contact_dataset:
            for sem, col in (("Email", "email"), ("Phone", "phone")):
                for c in s.by_field(sem)[:1]:
                    targets.append((s, c, f"{contact_dataset}.{col}", sem))
    cache: dict = {}
    for s in plans:
        for col, cp in s.columns.items():
            # a source's own id points nowhere, except on events (whose rows repeat the user's id)
            if (s.record_keys == [col] and s.entity != "events") or cp.type not in ("string", "integer"):
                continue
            best = None
            tried = set()
            for t, tcol, to, kind in targets:
                if t is s or RANK.get(s.entity, 5) >= RANK.get(t.entity, 5) or to in tried:
                    continue
                tsem = t.columns[tcol].semantic
                same_name = slug(col) == slug(tcol) or slug(col).endswith("_" + slug(tcol))
                if kind in ("Email", "Phone"):
                    if cp.semantic != kind:
                        continue
                elif not (same_name or (cp.semantic and cp.semantic == tsem and cp.semantic in ID_FIELDS)
                          or t.entity == _POINTS_AT.get(cp.semantic)):
                    continue
                if kind == "key" and not (_signatures(s.first.columns[col].examples)
                                           & _signatures(t.first.columns[tcol].examples)):
                    continue  # 'W0000123' never is a 'CL100123': no need to read the values
                tried.add(to)
                if ("origin", s.name, col) not in cache:
                    cache[("origin", s.name, col)] = _values(prof, s, col)
                origin = cache[("origin", s.name, col)]
                if to not in cache:
                    # a dataset column gathers the values of every source that feeds it
                    feeding = [(t2, c2) for t2, c2, to2, _ in targets if to2 == to]
                    union = _values(prof, feeding[0][0], feeding[0][1], whole=True)
                    for t2, c2 in feeding[1:]:
                        union = union.union(_values(prof, t2, c2, whole=True), distinct=True)
                    cache[to] = union
                target = cache[to]
                n = origin.count().to_pyarrow().as_py()
                if not n:
                    continue
                found = origin.semi_join(target, "v").count().to_pyarrow().as_py()
                share = found / n
                if share >= 0.5 and (best is None or share > best[0]):
                    best = (share, to, found, n, t)
            if best:
                share, to, found, n, t = best
                ev = f"{share:.1%} of {s.name}.{col} found in {to} ({pct(found, n)} distinct values)"
                if s.first.sampled:
                    ev += f" (in the first {s.first.rows:,} rows)"
                s.relations.append({"column": col, "to": to, "evidence": ev})
                if share < 0.9:
                    s.doubts.append(f"relation {s.name}.{col} -> {to}: only {share:.1%} of the values are found")


def shared_ids(prof: Profiler, plans: list[SourcePlan]) -> None:
    """Contact sources that carry another contact source's ids (an e-shop export with the CRM
    number of its customers): the two columns become one identity key."""
    contacts = [s for s in plans if s.entity == "contacts"]
    for s in contacts:
        for col, cp in s.columns.items():
            if s.record_keys == [col] or cp.type != "string" or cp.semantic not in (None, "CustomerId"):
                continue
            for t in contacts:
                if t is s or len(t.record_keys) != 1:
                    continue
                tcol = t.record_keys[0]
                if not (_signatures(s.first.columns[col].examples) & _signatures(t.first.columns[tcol].examples)):
                    continue
                origin, target = _values(prof, s, col), _values(prof, t, tcol, whole=True)
                n = origin.count().to_pyarrow().as_py()
                found = origin.semi_join(target, "v").count().to_pyarrow().as_py() if n else 0
                if n and found / n >= 0.9:
                    s.same_ids[col] = (t.name, tcol, f"{found / n:.1%} of {s.name}.{col} found in {t.name}.{tcol} "
                                                     f"({pct(found, n)} distinct values)")
                    break
