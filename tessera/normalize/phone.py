"""Phone numbers to E.164 text, as one vectorized expression built from phonenumbers' metadata.

The SQL never calls Python per row. For each calling code, phonenumbers' region metadata gives
the national-number pattern (``general_desc``), the national (trunk) prefix and the
international dialling prefix; they become constant regular expressions and ``CASE`` branches:

* everything but digits is dropped; a ``+`` before the first digit, or the default region's
  international prefix (``00`` in most of Europe, ``011`` in North America) followed by a
  non-zero digit, marks an international number;
* international: the calling code is the 1-3 digit prefix (calling codes are prefix-free); the
  whole digit string must match one big alternation ``<code>(?:<pattern of that code>)`` over
  every calling code. A trunk prefix written after the code (``+33 (0)6 ...``,
  ``+44 0 20 ...``) is dropped when the number only matches without it;
* national: the default region's trunk prefix is dropped when the rest is a valid national
  number, else the digits must be a national number as they are, else they may start with the
  default calling code without the ``+`` (``33612345678``);
* anything else is NULL (too short, too long, ``0000000000``...).

The patterns are written for Java regular expressions; phonenumbers only uses the subset that
RE2 (DuckDB) also accepts, which :func:`_portable` checks.

:func:`e164_python` gives phonenumbers' own answer for a few values, e.g. the distinct values
the SQL returned NULL for; the caller decides whether to use it.
"""

from __future__ import annotations

import functools
import re

import ibis
import ibis.expr.types as ir
import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from tessera.errors import ConfigError

DEFAULT_COUNTRY = "FR"

_UNSUPPORTED = re.compile(r"\(\?[=!<]|[*+?}]\+|\\[1-9pPkQEbBAZzGhHvVRX]")


def _portable(pattern: str) -> str:
    """Return ``pattern`` if it means the same in RE2 and Java, else raise."""
    if _UNSUPPORTED.search(pattern):
        raise ValueError(f"phone pattern not portable between RE2 and Java: {pattern}")
    return pattern


def _metadata(region: str):
    return PhoneMetadata.metadata_for_region(region)


def _region(country: str) -> str:
    region = (country or "").strip().upper()
    if _metadata(region) is None:
        raise ConfigError(
            f"phone: '{country}' is not a country known to phonenumbers; use an ISO 3166-1 alpha-2 "
            "code such as FR, BE, GB, US"
        )
    return region


@functools.lru_cache(maxsize=None)
def calling_code_patterns() -> dict[str, str]:
    """Calling code -> alternation of the national-number patterns of every region using it."""
    out: dict[str, str] = {}
    for cc, regions in sorted(COUNTRY_CODE_TO_REGION_CODE.items()):
        patterns: list[str] = []
        for region in regions:
            md = PhoneMetadata.metadata_for_nongeo_region(cc) if region == "001" else _metadata(region)
            if md is None or md.general_desc is None or not md.general_desc.national_number_pattern:
                continue
            pattern = _portable(md.general_desc.national_number_pattern)
            if pattern not in patterns:
                patterns.append(pattern)
        if patterns:
            out[str(cc)] = "|".join(patterns)
    return out


@functools.lru_cache(maxsize=None)
def international_regex() -> str:
    """Full-match regex of '<calling code><national number>' for every calling code."""
    alternatives = "|".join(f"{cc}(?:{p})" for cc, p in calling_code_patterns().items())
    return f"^(?:{alternatives})$"


@functools.lru_cache(maxsize=None)
def international_trunk_regex() -> str:
    """Full-match regex of '<calling code><trunk prefix><national number>' (e.g. +33 0 6...)."""
    patterns = calling_code_patterns()
    alternatives = "|".join(
        f"{cc}{prefix}(?:{patterns[cc]})" for prefix, codes in _trunk_prefixes().items() for cc in codes
    )
    return f"^(?:{alternatives})$"


@functools.lru_cache(maxsize=None)
def _trunk_prefixes() -> dict[str, list[str]]:
    """Literal trunk prefix -> calling codes whose main region uses it ('0' -> ['33', '44', ...])."""
    out: dict[str, list[str]] = {}
    for cc, regions in sorted(COUNTRY_CODE_TO_REGION_CODE.items()):
        md = _metadata(regions[0]) if regions[0] != "001" else None
        prefix = md.national_prefix if md is not None else None
        if prefix and prefix.isdigit() and str(cc) in calling_code_patterns():
            out.setdefault(prefix, []).append(str(cc))
    return out


def _national_prefix_regex(md) -> str | None:
    """The region's trunk prefix as a regex, None when it has none."""
    npp = md.national_prefix_for_parsing
    if npp and "(" not in npp.replace("(?:", "") and not md.national_prefix_transform_rule:
        return _portable(npp)
    if md.national_prefix and md.national_prefix.isdigit():
        return md.national_prefix
    return None


def _international_prefix_regex(md) -> str | None:
    idd = md.international_prefix
    if idd:
        return _portable(idd)
    return None


def _full(expr: ir.StringValue, regex: str) -> ir.BooleanValue:
    return expr.re_search(regex)


def phone_e164(expr: ir.StringValue, country: str = DEFAULT_COUNTRY) -> ir.StringValue:
    """E.164 text (``+33612345678``) of each phone value, or NULL when it cannot be a number of
    ``country`` (numbers without an international prefix) or of its own calling code."""
    region = _region(country)
    md = _metadata(region)
    cc = str(md.country_code)
    national = calling_code_patterns()[cc]
    trunk = _national_prefix_regex(md)
    idd = _international_prefix_regex(md)
    null = ibis.null("string")

    dtype = expr.type()
    if dtype.is_floating() or dtype.is_decimal():  # a phone column read as numbers: 612345678.0
        expr = expr.cast("int64")
    text = expr.cast("string")
    digits = text.re_replace(r"[^0-9]+", "")
    has_plus = text.re_search(r"^[^0-9]*\+")

    # ---- international numbers: '+...' or '<idd>...'; calling codes never start with 0
    marked = ibis.ifelse(has_plus, "+", "") + digits
    intl_prefix = rf"\+|(?:{idd})" if idd else r"\+"
    intl = marked.re_extract(rf"^(?:{intl_prefix})([1-9][0-9]*)$", 1)  # digits after '+' or the idd

    # calling codes are prefix-free, so '<code>(?:<its pattern>)' alternatives never overlap
    with_trunk = []  # (regex of the codes followed by their trunk prefix, code length, prefix length)
    for prefix, codes in _trunk_prefixes().items():
        for n in sorted({len(c) for c in codes}):
            same_len = "|".join(c for c in codes if len(c) == n)
            with_trunk.append((f"^(?:{same_len}){prefix}", n, len(prefix)))
    intl_e164 = ibis.cases(
        (_full(intl, international_regex()), intl),
        (
            _full(intl, international_trunk_regex()),
            ibis.cases(
                *[(intl.re_search(rx), intl.substr(0, n) + intl.substr(n + k)) for rx, n, k in with_trunk],
                else_=null,
            ),
        ),
        else_=null,
    )

    # ---- national numbers of the default region. Preference, as phonenumbers: without the
    # trunk prefix, then as written, then after the calling code written without '+'.
    prefixes = [f"(?:{trunk})", "", f"{cc}(?:{trunk})?"] if trunk else ["", cc]
    nsn = digits.re_extract(rf"^(?:{'|'.join(prefixes)})({national})$", 1)

    return ibis.cases(
        (intl != "", "+" + intl_e164),
        (has_plus, null),
        (nsn != "", f"+{cc}" + nsn),
        else_=null,
    )


def e164_python(values: list[str], country: str = DEFAULT_COUNTRY) -> list[str | None]:
    """phonenumbers' own answer for each value: the E.164 text, or None when the value does not
    parse, is not a possible number, or does not match the national-number pattern of its
    calling code (the rule the SQL applies). Meant for a few distinct values, not for columns."""
    region = _region(country)
    patterns = {cc: re.compile(f"(?:{p})") for cc, p in calling_code_patterns().items()}
    out: list[str | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        try:
            number = phonenumbers.parse(str(value), region)
        except phonenumbers.NumberParseException:
            out.append(None)
            continue
        if not phonenumbers.is_possible_number(number):
            out.append(None)
            continue
        nsn = phonenumbers.national_significant_number(number)
        pattern = patterns.get(str(number.country_code))
        if pattern is None or not pattern.fullmatch(nsn):
            out.append(None)
            continue
        out.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return out
