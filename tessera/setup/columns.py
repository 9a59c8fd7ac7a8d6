"""What a column is, from its name and its values: semantic field, type, normalization rules.

Every decision returns its evidence (the figures it rests on) and, when the figures do not
settle it, a doubt that the proposal writes into the file and prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tessera.normalize.semantic import suggest_semantic
from tessera.setup.profile import ColumnProfile, FileProfile

ID_FIELDS = {"CustomerId", "OrderId", "ProductId", "StoreId", "LoyaltyCard", "AnonymousId"}
DATE_FIELDS = {"BirthDate", "OrderDate", "CreatedAt", "UpdatedAt", "EventTime"}
TEXT_ID_FIELDS = ID_FIELDS | {"Phone", "PostalCode", "Store"}
NAME_FIELDS = {"FirstName", "LastName", "FullName", "City"}


def pct(n: int, total: int) -> str:
    return f"{n:,} of {total:,}"


@dataclass
class ColumnPlan:
    name: str
    semantic: str | None = None
    semantic_evidence: str = ""
    type: str = "string"  # the staged type
    declared_type: str | None = None  # written to the source's types
    rules: list = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)
    date_kind: str | None = None  # "date" or "timestamp" once staged


def is_date_like(p: ColumnProfile) -> bool:
    return p.profiled > 0 and (p.shapes["iso_date"] + p.shapes["iso_ts"] + p.shapes["dmy"]) >= 0.9 * p.profiled


def semantic_field(p: ColumnProfile) -> tuple[str | None, str]:
    """The semantic field of a column and why: its name first, checked against its values."""
    by_name = suggest_semantic(p.name, p.type)
    n = p.profiled
    if n and p.share("email") >= 0.8:
        return "Email", f"{pct(p.shapes['email'], n)} values are e-mail addresses"
    if by_name == "Email" and n:
        return None, f"named like an e-mail but only {pct(p.shapes['email'], n)} values are e-mail addresses"
    if by_name == "Phone" and n and p.share("phone") < 0.5:
        return None, f"named like a phone but only {pct(p.shapes['phone'], n)} values look like phone numbers"
    if by_name in DATE_FIELDS and n and not is_date_like(p):
        return None, f"named like a date but only {pct(p.shapes['iso_date'] + p.shapes['iso_ts'] + p.shapes['dmy'], n)} values are dates"
    if by_name:
        return by_name, f"column name '{p.name}'"
    if n and p.share("phone") >= 0.8 and p.share("lead0") >= 0.5 and not is_date_like(p):
        return "Phone", f"{pct(p.shapes['phone'], n)} values look like phone numbers (leading 0 or +)"
    return None, ""


def date_rule(p: ColumnProfile, hint_dayfirst: bool | None) -> tuple[dict | None, str, str | None, str]:
    """(date rule, evidence, doubt, staged kind) for a text column of day/month/year dates."""
    n = p.shapes["dmy"]
    first, second = p.shapes["first_gt12"], p.shapes["second_gt12"]
    only_dates = p.shapes["dmy_date"] == n
    doubt = None
    if first and not second:
        dayfirst, why = True, f"{first:,} values have a first part above 12: day first"
    elif second and not first:
        dayfirst, why = False, f"{second:,} values have a second part above 12: month first"
    elif first and second:
        dayfirst = first >= second
        why = f"{first:,} values have a day above 12 first, {second:,} second: mixed orders"
        doubt = f"column '{p.name}' mixes day-first and month-first dates ({first:,} vs {second:,}); check the export"
    else:
        dayfirst = True if hint_dayfirst is None else hint_dayfirst
        why = "no value has a part above 12"
        doubt = (f"column '{p.name}': no date tells day-first from month-first (no part above 12); "
                 f"{'day' if dayfirst else 'month'} first assumed")
    if p.shapes.get("iso_date"):  # some values are written year-month-day: the rule reads both
        why = (f"{pct(n, p.profiled)} values are day/month/year dates and {p.shapes['iso_date']:,} "
               f"year-month-day; {why}")
        return {"date": {"dayfirst": dayfirst}}, why, doubt, "date"
    if only_dates:
        fmt = "%d/%m/%Y" if dayfirst else "%m/%d/%Y"
        sep = _separator(p)
        fmt = fmt.replace("/", sep)
        return {"date": {"format": fmt}}, f"{pct(n, p.profiled)} values are dates; {why}", doubt, "date"
    why = f"{pct(n, p.profiled)} values are dates with a time; {why} (the date is kept)"
    return {"date": {"dayfirst": dayfirst}}, why, doubt, "date"


def _separator(p: ColumnProfile) -> str:
    for ex in p.examples:
        for sep in "/.-":
            if sep in ex:
                return sep
    return "/"


def plan_column(fp: FileProfile, p: ColumnProfile, *, country: str, hint_dayfirst: bool | None) -> ColumnPlan:
    """Semantic field, type and source normalization rules of one column."""
    plan = ColumnPlan(p.name, type=p.type)
    if p.profiled and p.share("nested") >= 0.5:
        plan.evidence.append(f"{pct(p.shapes['nested'], p.profiled)} values are nested records (JSON)")
        plan.doubts.append(f"file '{fp.rel}': column '{p.name}' holds nested records (JSON lists or objects, e.g. "
                           f"{p.examples[0] if p.examples else ''}); it is kept as JSON text: its records are not "
                           "a source of their own")
        return plan
    plan.semantic, plan.semantic_evidence = semantic_field(p)
    sem, n = plan.semantic, p.profiled
    nulls = {v: c for v, c in p.nulls.items()}
    if n == 0:
        plan.evidence.append("always empty")
        return plan
    if sem in TEXT_ID_FIELDS and p.type != "string":
        plan.declared_type, plan.type = "string", "string"
        plan.evidence.append(f"kept as text: {sem} values are identifiers")
    if sem in ("EmailOptIn", "SmsOptIn") and (p.shapes["bool"] + p.shapes["zero_one"]) >= 0.95 * n \
            and p.type != "boolean":
        plan.declared_type, plan.type = "boolean", "boolean"
        plan.evidence.append(f"{pct(p.shapes['bool'] + p.shapes['zero_one'], n)} values are yes/no or 0/1")
    if sem in ("OrderAmount", "DiscountAmount", "UnitPrice", "Quantity") and p.type == "string" \
            and (p.shapes["dec_point"] + p.shapes["int"] + p.shapes["dec_comma"]) >= 0.95 * n:
        plan.declared_type = plan.type = "integer" if sem == "Quantity" else "float"
        bad = n - p.shapes["dec_point"] - p.shapes["int"] - p.shapes["dec_comma"]
        plan.evidence.append(f"numbers in {pct(n - bad, n)} values" + (f"; {bad:,} other value(s) will be "
                                                                         "rejected with their line" if bad else ""))
    if fp.decimal_comma and p.type == "string" and sem is None \
            and (p.shapes["dec_comma"] + p.shapes["int"]) >= 0.95 * n and p.shapes["dec_comma"]:
        plan.declared_type = plan.type = "float"
        plan.evidence.append(f"numbers with a decimal comma in {pct(p.shapes['dec_comma'] + p.shapes['int'], n)} values")
    rules: list = []
    junk = [v for v in nulls if v.strip()]
    if sem == "Email":
        if junk:
            rules.append({"null_like": sorted(junk)})
        rules.append("email")
        plan.evidence.append(f"e-mail rule: {pct(p.shapes['email'], n)} values are addresses"
                             + (f", {sum(nulls.values()):,} placeholder value(s) {sorted(junk)} emptied" if junk else ""))
    elif sem == "Phone":
        if junk:
            rules.append({"null_like": sorted(junk)})
        rules.append({"phone": {"country": country}})
        plan.evidence.append(f"phone to E.164 with default country {country}"
                             + (f"; placeholder value(s) {sorted(junk)} present {sum(nulls.values()):,} time(s), "
                                "emptied" if junk else ""))
    elif sem == "Country" and p.shapes["letters"] >= 0.8 * n:
        rules.append("country")
        plan.evidence.append(f"country codes from names and codes (e.g. {', '.join(p.examples[:3])})")
    elif sem == "Gender" and p.shapes.get("gender", 0) >= 0.8 * n:
        rules.append("gender")
        plan.evidence.append(f"genders and titles to F, M or X: {pct(p.shapes['gender'], n)} values "
                             f"(e.g. {', '.join(p.examples[:3])})")
    elif p.type == "string" and n and p.shapes["dmy"] and p.shapes["dmy"] + p.shapes.get("iso_date", 0) >= 0.9 * n:
        rule, why, doubt, kind = date_rule(p, hint_dayfirst)
        if junk:
            rules.append({"null_like": sorted(junk)})
        rules.append(rule)
        plan.evidence.append(why)
        plan.date_kind = kind
        plan.type = kind
        if doubt:
            plan.doubts.append(doubt)
        if sem is None:
            plan.semantic_evidence = "dates"
    elif sem in NAME_FIELDS and p.shapes["letters"]:
        upper, lower = p.shapes["upper"], p.shapes.get("lower", 0)
        if junk:
            rules.append({"null_like": sorted(junk)})
        if upper or lower:
            rules += ["trim", "title"]
            cases = [f"{pct(upper, n)} values in capitals"] if upper else []
            cases += [f"{pct(lower, n)} in lower case"] if lower else []
            plan.evidence.append(f"{' and '.join(cases)}: trimmed and title-cased")
        else:
            rules.append("trim")
    elif junk and p.type == "string":
        rules.append({"null_like": sorted(junk)})
        plan.evidence.append("placeholder value(s) present: "
                             + ", ".join(f"'{v}' x{c:,}" for v, c in sorted(nulls.items())))
    plan.rules = rules
    if p.type in ("date", "timestamp"):
        plan.date_kind = p.type
    return plan
