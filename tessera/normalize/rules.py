"""Normalization rules as Ibis expressions.

:func:`apply_rules` turns a column expression and its list of :class:`NormalizationRule` into one
expression that the engine evaluates in bulk (DuckDB or Spark SQL, compiled by Ibis). No rule
calls Python per row, and every rule returns the same values on both engines.

Rules, applied in the order given:

``trim``
    strip leading and trailing white space, including non-breaking and other Unicode spaces.
``lower`` / ``upper`` / ``title``
    change case; ``title`` upper-cases the first letter after a space, hyphen, apostrophe or dot
    and lower-cases the rest ("jean-pierre" -> "Jean-Pierre", "o'neil" -> "O'Neil").
``replace: {find, with}``
    replace every occurrence of a literal text.
``regex_replace: {pattern, with}``
    replace every match of an RE2 regular expression; ``with`` may use ``\\1``..``\\9``.
``null_like: true | [values]``
    NULL when the value, trimmed, equals one of the values (case-insensitive);
    ``true`` uses :data:`NULL_LIKE_DEFAULT`.
``email``
    trim, lower-case, remove white space, drop a leading ``mailto:``; empty -> NULL. Invalid
    addresses are kept: :func:`email_is_valid` tells them apart (identity keys skip them).
``phone: {country: FR}``
    E.164 text ("+33612345678") or NULL; see :mod:`tessera.normalize.phone`.
``date: true | {dayfirst: bool} | {format: "%d/%m/%Y"}``
    a DATE, or NULL when the text is not a date (31/02/2020, 0000-00-00...). Without a format
    the shape is detected: YYYY-MM-DD (also ISO timestamps: the date part is kept),
    YYYY/MM/DD, DD/MM/YYYY (dayfirst) or MM/DD/YYYY (default), DD-MM-YYYY, DD.MM.YYYY,
    YYYYMMDD. A time written after the date ("31/12/2020 23:59") is ignored. Years run from
    1000 to 9999. A ``date`` rule is the last of its list, since its result is not text.
``country``
    ISO 3166-1 alpha-2 code from a country name (English, French, Spanish), an alpha-2 or
    alpha-3 code or a common alias ("UK", "USA", "Holland"), in any case and with or without
    accents; unknown -> NULL.
"""

from __future__ import annotations

import functools
import gettext

import ibis
import ibis.expr.datashape as ds
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pycountry

from tessera.config.models import NULL_LIKE_DEFAULT, NormalizationRule
from tessera.engine.dialects import Dialect
from tessera.engine.functions import accent_table
from tessera.errors import ConfigError
from tessera.normalize.phone import DEFAULT_COUNTRY, phone_e164

__all__ = [
    "NULL_LIKE_DEFAULT",
    "apply_rules",
    "apply_rule",
    "country_code",
    "email_is_valid",
    "normalize_email",
    "null_like",
    "parse_date",
    "trim",
]

# --------------------------------------------------------------------------- white space

# Written with escapes that RE2 and Java read the same way (Java's \s and \v differ from RE2's).
_WS = (
    r"[ \t\n\r\f\x0B\x{0085}\x{00A0}\x{1680}\x{2000}-\x{200B}\x{2028}\x{2029}\x{202F}\x{205F}"
    r"\x{3000}\x{FEFF}]"
)
_PY_WS = (
    " \t\n\r\f\x0b\x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200C))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)  # the same characters, for Python's str.strip


def trim(expr: ir.StringValue) -> ir.StringValue:
    """Strip leading and trailing white space, non-breaking spaces included."""
    return expr.re_replace(rf"^{_WS}+|{_WS}+\z", "")


# --------------------------------------------------------------------------- null-like


def null_like(expr: ir.StringValue, values: list[str] | None = None) -> ir.StringValue:
    """NULL where the trimmed value equals one of ``values`` (case-insensitive)."""
    values = NULL_LIKE_DEFAULT if values is None else values
    keys = sorted({str(v).strip(_PY_WS).upper() for v in values})
    if not keys:
        return expr
    return ibis.ifelse(trim(expr).upper().isin(keys), ibis.null("string"), expr)


# --------------------------------------------------------------------------- email

_EMAIL_LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_EMAIL_DOMAIN = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
EMAIL_REGEX = rf"(?i)^{_EMAIL_LOCAL}@{_EMAIL_DOMAIN}\z"


def normalize_email(expr: ir.StringValue) -> ir.StringValue:
    """Lower-case, without any white space nor a leading ``mailto:``; empty -> NULL."""
    value = expr.lower().re_replace(rf"^{_WS}*mailto:|{_WS}+", "")
    return value.nullif("")


def email_is_valid(expr: ir.StringValue) -> ir.BooleanValue:
    """True when ``expr`` (a normalized email) is syntactically an address: ``local@domain.tld``
    with the characters RFC 5322 allows unquoted, and a domain of DNS labels. NULL -> False."""
    return expr.notnull() & expr.re_search(EMAIL_REGEX).fill_null(False)


# --------------------------------------------------------------------------- dates

_TIME_SUFFIX = r"[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?: ?(?:Z|[+-]\d{2}(?::?\d{2})?))?\z"
_DATE_SHAPES_FIXED = [
    (r"^\d{4}-\d{1,2}-\d{1,2}\z", "%Y-%m-%d"),
    (r"^\d{4}/\d{1,2}/\d{1,2}\z", "%Y/%m/%d"),
    (r"^\d{1,2}-\d{1,2}-\d{4}\z", "%d-%m-%Y"),
    (r"^\d{1,2}\.\d{1,2}\.\d{4}\z", "%d.%m.%Y"),
    (r"^\d{8}\z", "%Y%m%d"),
]
_SLASH_DMY = r"^\d{1,2}/\d{1,2}/\d{4}\z"


def parse_date(expr: ir.StringValue, spec: dict | bool | None, dialect: Dialect) -> ir.DateValue:
    """The ``date`` rule: a DATE, or NULL when the text is not a valid date."""
    options = {} if spec in (None, True) else dict(spec)
    unknown = set(options) - {"format", "dayfirst"}
    if unknown:
        raise ConfigError(f"date rule: unknown option(s) {sorted(unknown)}; use format or dayfirst")
    value = trim(expr)
    if options.get("format"):
        return dialect.try_parse_date(value, str(options["format"]))
    dayfirst = bool(options.get("dayfirst", False))
    day = value.re_replace(_TIME_SUFFIX, "")
    shapes = list(_DATE_SHAPES_FIXED)
    shapes.insert(2, (_SLASH_DMY, "%d/%m/%Y" if dayfirst else "%m/%d/%Y"))
    return ibis.cases(
        *[(day.re_search(shape), dialect.try_parse_date(day, fmt)) for shape, fmt in shapes],
        else_=ibis.null("date"),
    )


# --------------------------------------------------------------------------- countries


def _py_key(text: str) -> str:
    """Python twin of :func:`_sql_key`."""
    src, dst = accent_table()
    t = text.translate(str.maketrans(src, dst))
    return "".join(ch for ch in t if ch.isascii() and ch.isalnum()).upper()


def _sql_key(expr: ir.StringValue, dialect: Dialect) -> ir.StringValue:
    """Upper-case ASCII letters and digits of ``expr``: "Côte d'Ivoire" -> "COTEDIVOIRE"."""
    # other characters go before upper-casing, which is not the same everywhere for them (ß)
    return dialect.strip_accents(expr).re_replace(r"[^A-Za-z0-9]+", "").upper()


# Common names and aliases the ISO lists and their translations do not carry.
COUNTRY_ALIASES: dict[str, str] = {
    "UK": "GB", "U.K.": "GB", "Great Britain": "GB", "Grande-Bretagne": "GB", "Gran Bretaña": "GB",
    "England": "GB", "Angleterre": "GB", "Inglaterra": "GB", "Scotland": "GB", "Écosse": "GB",
    "Escocia": "GB", "Wales": "GB", "Pays de Galles": "GB", "Gales": "GB", "Northern Ireland": "GB",
    "Irlande du Nord": "GB", "Irlanda del Norte": "GB", "Britain": "GB",
    "USA": "US", "U.S.A.": "US", "America": "US", "Amérique": "US", "EEUU": "US", "EE.UU.": "US",
    "Etats-Unis d'Amérique": "US", "United States of America": "US",
    "Holland": "NL", "Hollande": "NL", "Holanda": "NL", "The Netherlands": "NL", "Nederland": "NL",
    "South Korea": "KR", "Corée du Sud": "KR", "Corea del Sur": "KR", "Korea": "KR",
    "North Korea": "KP", "Corée du Nord": "KP", "Corea del Norte": "KP",
    "Russia": "RU", "Russie": "RU", "Rusia": "RU",
    "Czech Republic": "CZ", "République tchèque": "CZ", "República Checa": "CZ",
    "Ivory Coast": "CI", "Costa de Marfil": "CI",
    "Vietnam": "VN", "Iran": "IR", "Syria": "SY", "Syrie": "SY", "Siria": "SY",
    "Bolivia": "BO", "Bolivie": "BO", "Venezuela": "VE", "Taiwan": "TW", "Taïwan": "TW", "Laos": "LA",
    "Moldova": "MD", "Moldavie": "MD", "Moldavia": "MD", "Tanzania": "TZ", "Tanzanie": "TZ",
    "Macedonia": "MK", "Macédoine": "MK", "Vatican": "VA", "Vaticano": "VA", "Cité du Vatican": "VA",
    "Brunei": "BN", "Cape Verde": "CV", "Swaziland": "SZ", "Burma": "MM",
    "Turkey": "TR", "Turkiye": "TR", "Palestine": "PS", "Palestina": "PS",
    "Deutschland": "DE", "Schweiz": "CH", "Svizzera": "CH", "Österreich": "AT", "België": "BE",
    "Eire": "IE", "Polska": "PL", "Sverige": "SE", "Danmark": "DK", "Norge": "NO", "Suomi": "FI",
    "Italia": "IT", "Brasil": "BR", "UAE": "AE", "EAU": "AE", "RDC": "CD", "RD Congo": "CD",
    "Congo-Kinshasa": "CD", "Congo-Brazzaville": "CG", "Guyane": "GF", "La Réunion": "RE",
    "Micronesia": "FM", "Micronésie": "FM", "Saint-Martin": "MF",
}


@functools.lru_cache(maxsize=None)
def country_keys() -> dict[str, str]:
    """Normalized key (upper-case ASCII letters and digits) -> ISO 3166-1 alpha-2 code."""
    translations = []
    for lang in ("fr", "es"):
        try:
            translations.append(gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang]))
        except OSError:  # pragma: no cover - pycountry without its locales
            pass
    primary: dict[str, set[str]] = {}
    derived: dict[str, set[str]] = {}

    def add(table: dict[str, set[str]], text: str | None, code: str) -> None:
        key = _py_key(text or "")
        if key:
            table.setdefault(key, set()).add(code)

    for c in pycountry.countries:
        code = c.alpha_2
        add(primary, code, code)
        add(primary, c.alpha_3, code)
        names = [c.name, getattr(c, "official_name", None), getattr(c, "common_name", None)]
        names += [t.gettext(n) for t in translations for n in names if n]
        for name in names:
            if not name:
                continue
            add(primary, name, code)
            # "Korea, Republic of" -> "Korea" and "Republic of Korea"; "Cocos (Keeling) Islands" -> "Cocos Islands"
            if "(" in name:
                add(derived, name.split("(")[0], code)
                add(derived, name.split("(")[0] + name.split(")")[-1], code)
            if "," in name:
                head, _, tail = name.partition(",")
                add(derived, head, code)
                add(derived, f"{tail} {head}", code)
    keys = {k: next(iter(v)) for k, v in derived.items() if len(v) == 1}
    keys.update({k: next(iter(v)) for k, v in primary.items() if len(v) == 1})
    keys.update({_py_key(k): v for k, v in COUNTRY_ALIASES.items()})
    return dict(sorted(keys.items()))


def _lookup(key: ir.StringValue, items: list[tuple[str, str]], fanout: int = 4) -> ir.StringValue:
    """Search sorted ``items`` with nested CASEs of ``fanout`` ranges: a few comparisons per row
    instead of one per key. (Flat CASEs at every level also let Spark split its generated code
    into small methods.)"""
    if len(items) <= 8:
        return key.cases(*items, else_=ibis.null("string"))
    size = -(-len(items) // fanout)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    branches = [(key < chunks[i + 1][0][0], _lookup(key, chunk, fanout)) for i, chunk in enumerate(chunks[:-1])]
    return ibis.cases(*branches, else_=_lookup(key, chunks[-1], fanout))


def country_code(expr: ir.StringValue, dialect: Dialect) -> ir.StringValue:
    """ISO 3166-1 alpha-2 code of a country name or code, NULL when unknown."""
    key = _sql_key(expr, dialect)
    found = dialect.lookup(key, list(country_keys().items()))
    if found is not None:
        return found
    # The lookup's only free name is the lambda's own variable, so one expression serves every
    # column: building it takes about a second.
    return ibis.array([key]).map(_country_lookup)[0]


@functools.lru_cache(maxsize=1)
def _country_lookup_expr() -> ir.StringValue:
    param = ops.Argument(name="_country_key", shape=ds.columnar, dtype=dt.string).to_expr()
    return _lookup(param, list(country_keys().items()))


def _country_lookup(_country_key: ir.StringValue) -> ir.StringValue:
    return _country_lookup_expr()


# --------------------------------------------------------------------------- genders

# Words and titles (English, French, Spanish, German) for each code: F, M, and X for any other
# gender. Compared as upper-case ASCII letters and digits, so "Mme", "MME." and "mme" are one key.
GENDER_WORDS: dict[str, list[str]] = {
    "F": ["F", "Female", "Woman", "Women", "Girl", "Mrs", "Ms", "Miss", "Madam", "Femme", "Féminin",
          "Madame", "Mme", "Mlle", "Mademoiselle", "Mujer", "Femenino", "Señora", "Sra", "Señorita",
          "Srta", "Dña", "Doña", "Frau", "Weiblich", "W"],
    "M": ["M", "Male", "Man", "Men", "Boy", "Mr", "Mister", "Sir", "Homme", "Masculin", "Monsieur", "H",
          "Hombre", "Masculino", "Señor", "Sr", "Don", "Herr", "Männlich"],
    "X": ["X", "Other", "Non-binary", "NB", "Autre", "Non binaire", "Otro", "Otra",
          "No binario", "Divers", "Diverse"],
}


@functools.lru_cache(maxsize=1)
def gender_keys() -> dict[str, str]:
    """Normalized key (upper-case ASCII letters and digits) -> F, M or X."""
    return dict(sorted((_py_key(word), code) for code, words in GENDER_WORDS.items() for word in words))


def gender_code(expr: ir.StringValue, dialect: Dialect) -> ir.StringValue:
    """F, M or X from a gender word or a title of address (Mme, M., Sr, Herr...); NULL when the
    value is none of them."""
    key = _sql_key(expr, dialect)
    found = dialect.lookup(key, list(gender_keys().items()))
    if found is not None:
        return found
    return dialect.bind(key, lambda key: _lookup(key, list(gender_keys().items())))


def is_gender(expr: ir.StringValue, dialect: Dialect) -> ir.BooleanValue:
    """True for a value that the ``gender`` rule recognizes."""
    return _sql_key(expr, dialect).isin(list(gender_keys()))


# --------------------------------------------------------------------------- rules


def apply_rule(expr: ir.Value, rule: NormalizationRule, dialect: Dialect) -> ir.Value:
    """One rule on a string expression."""
    kind = rule.kind
    if kind == "trim":
        return trim(expr)
    if kind == "lower":
        return expr.lower()
    if kind == "upper":
        return expr.upper()
    if kind == "title":
        return dialect.title_case(expr)
    if kind == "replace":
        find, with_ = rule.replace["find"], rule.replace["with"]
        if find == "":
            raise ConfigError("replace: 'find' must not be empty")
        return expr.replace(find, with_)
    if kind == "regex_replace":
        pattern, with_ = rule.regex_replace["pattern"], rule.regex_replace["with"]
        if pattern == "":
            raise ConfigError("regex_replace: 'pattern' must not be empty")
        return expr.re_replace(dialect.regex_pattern(pattern), dialect.regex_replacement(with_))
    if kind == "null_like":
        return null_like(expr, None if rule.null_like is True else list(rule.null_like))
    if kind == "email":
        return normalize_email(expr)
    if kind == "phone":
        options = {} if rule.phone is True else dict(rule.phone)
        unknown = set(options) - {"country"}
        if unknown:
            raise ConfigError(f"phone rule: unknown option(s) {sorted(unknown)}; use country")
        return phone_e164(expr, options.get("country") or DEFAULT_COUNTRY)
    if kind == "date":
        return parse_date(expr, rule.date, dialect)
    if kind == "country":
        return country_code(expr, dialect)
    if kind == "gender":
        return gender_code(expr, dialect)
    raise ConfigError(f"unknown normalization rule '{kind}'")  # pragma: no cover - model forbids it


def apply_rules(expr: ir.Value, rules: list[NormalizationRule], dialect: Dialect) -> ir.Value:
    """Apply ``rules`` in order to ``expr``, with the functions of the engine's ``dialect``
    (``adapter.dialect``). Returns a string expression, or a date one
    when the last rule is ``date``. A non-text column is first cast to text (a date column with
    only a ``date`` rule is cast to DATE)."""
    rules = [r if isinstance(r, NormalizationRule) else NormalizationRule.model_validate(r) for r in rules]
    if not rules:
        return expr
    kinds = [r.kind for r in rules]
    if "date" in kinds[:-1]:
        raise ConfigError(
            f"normalization rules {kinds}: 'date' must be the last rule, its result is a date, not text"
        )
    dtype = expr.type()
    if not dtype.is_string():
        if kinds == ["date"] and (dtype.is_date() or dtype.is_timestamp()):
            return expr.cast("date")
        if kinds[0] == "phone" and (dtype.is_floating() or dtype.is_decimal()):
            expr = expr.cast("int64")  # phone numbers read as numbers: 612345678.0
        expr = expr.cast("string")
    for rule in rules:
        if rule.kind in _READS_INPUT_MANY_TIMES:
            expr = dialect.bind(expr, lambda value, rule=rule: apply_rule(value, rule, dialect))
        else:
            expr = apply_rule(expr, rule, dialect)
    return expr


# Rules whose expression refers to its input more than once: after another rule, their input is
# bound to a variable so that the chain is not copied into each reference (see bind).
_READS_INPUT_MANY_TIMES = {"null_like", "phone", "date", "country"}
