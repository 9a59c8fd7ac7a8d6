"""The few column functions whose SQL differs between engines.

Everything else in Tessera is written once as portable Ibis expressions; the functions here
take the Ibis backend name (``con.name``: ``"duckdb"``, ``"pyspark"`` or ``"postgres"``) and emit
the engine's own function, so that every engine returns the same values for the same input.
:func:`postgres_regex` translates the RE2 patterns of Tessera into PostgreSQL's own dialect
(the PostgreSQL adapter applies it to every pattern when it compiles an expression).
"""

from __future__ import annotations

import datetime
import functools
import re
import unicodedata
from collections.abc import Callable

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir

from tessera.config.events import JSON_KEY
from tessera.errors import ConfigError, EngineError
from tessera.sqlcheck import check_replacement

SUPPORTED_BACKENDS = ("duckdb", "pyspark", "postgres")

# --------------------------------------------------------------------------- builtin functions
# Declared as builtin UDFs: Ibis emits the call as is, the engine resolves the name.


@ibis.udf.scalar.builtin(name="try_strptime")
def _duckdb_try_strptime(value: str, fmt: str) -> datetime.datetime:  # pragma: no cover - declaration
    """DuckDB: parse with a strftime format, NULL when the text does not fit."""


@ibis.udf.scalar.builtin(name="try_to_timestamp")
def _spark_try_to_timestamp(value: str, fmt: str) -> datetime.datetime:  # pragma: no cover - declaration
    """Spark: parse with a Java datetime pattern, NULL when the text does not fit."""


@ibis.udf.scalar.builtin(name="regexp_extract_all")
def _duckdb_regexp_extract_all(value: str, pattern: str) -> list[str]:  # pragma: no cover - declaration
    """DuckDB: every match of ``pattern`` in ``value``."""


@ibis.udf.scalar.builtin(name="initcap")
def _spark_initcap(value: str) -> str:  # pragma: no cover - declaration
    """Spark: lower-case, then upper-case the first letter after each space."""


@ibis.udf.scalar.builtin(name="regexp_split_to_array")
def _postgres_regexp_split_to_array(value: str, pattern: str) -> list[str]:  # pragma: no cover - declaration
    """PostgreSQL: the pieces of ``value`` between the matches of ``pattern`` (an ARE)."""


@ibis.udf.scalar.builtin(name="strip_accents")
def _duckdb_strip_accents(value: str) -> str:  # pragma: no cover - declaration
    """DuckDB: the text without its combining marks (é -> e)."""


@ibis.udf.scalar.builtin(name="json_extract_string")
def _duckdb_json_extract_string(value: str, path: str) -> str:  # pragma: no cover - declaration
    """DuckDB: the value at a JSONPath of a JSON text, as text (strings unquoted)."""


@ibis.udf.scalar.builtin(name="get_json_object")
def _spark_get_json_object(value: str, path: str) -> str:  # pragma: no cover - declaration
    """Spark: the value at a JSONPath of a JSON text, as text (strings unquoted)."""


@ibis.udf.scalar.builtin(name="try_element_at")
def _spark_try_element_at(mapping: dt.Map(dt.string, dt.string), key: str) -> str:  # pragma: no cover - declaration
    """Spark: the value of ``key`` in a map, NULL when the map has no such key."""


@ibis.udf.scalar.builtin(name="json_extract_path")
def _postgres_json_extract_path(value: dt.JSON, key: str) -> dt.JSON:  # pragma: no cover - declaration
    """PostgreSQL: the member ``key`` of a JSON object (or element of an array)."""


@ibis.udf.scalar.builtin(name="json_extract_path_text")
def _postgres_json_extract_path_text(value: dt.JSON, key: str) -> str:  # pragma: no cover - declaration
    """PostgreSQL: the member ``key`` of a JSON object (or element of an array), as text."""


def check_backend(backend: str, function: str) -> str:
    """Return ``backend`` if ``function`` is available on it, else raise :class:`EngineError`."""
    if backend not in SUPPORTED_BACKENDS:
        raise EngineError(
            f"the function '{function}' is not available on the engine '{backend}' "
            f"(supported engines: {', '.join(SUPPORTED_BACKENDS)})"
        )
    return backend


# --------------------------------------------------------------------------- dates

# strftime directive -> (Java pattern letters, regex of the accepted text); the second pair is
# used when the directive touches another one ("%Y%m%d"): two digits, no ambiguity.
_DIRECTIVES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "d": (("d", r"\d{1,2}"), ("dd", r"\d{2}")),
    "m": (("M", r"\d{1,2}"), ("MM", r"\d{2}")),
    "Y": (("yyyy", r"[1-9]\d{3}"), ("yyyy", r"[1-9]\d{3}")),
    "y": (("yy", r"\d{2}"), ("yy", r"\d{2}")),
    "H": (("H", r"\d{1,2}"), ("HH", r"\d{2}")),
    "M": (("m", r"\d{1,2}"), ("mm", r"\d{2}")),
    "S": (("s", r"\d{1,2}"), ("ss", r"\d{2}")),
}


_REGEX_SPECIAL = set("\\.^$|?*+()[]{}")


def _regex_literal(text: str) -> str:
    """``text`` as a regex literal that RE2 and Java read the same way."""
    return "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in text)


def _tokens(strftime_format: str) -> list[tuple[str, str, str]]:
    """Split a strftime format into ("literal", text, regex) and ("directive", java, regex)."""
    raw: list[tuple[str, str]] = []
    i = 0
    while i < len(strftime_format):
        ch = strftime_format[i]
        if ch == "%":
            if i + 1 >= len(strftime_format):
                raise ConfigError(f"date format '{strftime_format}' ends with a lone '%'")
            d = strftime_format[i + 1]
            if d == "%":
                raw.append(("literal", "%"))
            elif d in _DIRECTIVES:
                raw.append(("directive", d))
            else:
                raise ConfigError(
                    f"date format '{strftime_format}': '%{d}' is not supported; use "
                    + ", ".join(f"%{k}" for k in _DIRECTIVES)
                    + " and literal characters"
                )
            i += 2
        else:
            raw.append(("literal", ch))
            i += 1
    if not any(kind == "directive" for kind, _ in raw):
        raise ConfigError(f"date format '{strftime_format}' has no % directive")
    out: list[tuple[str, str, str]] = []
    for k, (kind, value) in enumerate(raw):
        if kind == "literal":
            out.append((kind, value, _regex_literal(value)))
            continue
        touching = any(0 <= j < len(raw) and raw[j][0] == "directive" for j in (k - 1, k + 1))
        java, regex = _DIRECTIVES[value][1 if touching else 0]
        out.append((kind, java, regex))
    return out


def strftime_to_java(strftime_format: str) -> str:
    """Translate a strftime format into a Java (Spark) datetime pattern.

    ``%d`` and ``%m`` become ``d`` and ``M`` (one or two digits, like strftime parsing), or
    ``dd`` and ``MM`` when they touch another directive (``%Y%m%d`` -> ``yyyyMMdd``);
    ``%Y`` -> ``yyyy``, ``%y`` -> ``yy``, ``%H`` -> ``H``, ``%M`` -> ``m``, ``%S`` -> ``s``.
    Literal text is quoted.
    """
    parts: list[str] = []
    literal = ""
    for kind, value, _ in _tokens(strftime_format):
        if kind == "literal":
            literal += value
            continue
        if literal:
            parts.append("'" + literal.replace("'", "''") + "'")
            literal = ""
        parts.append(value)
    if literal:
        parts.append("'" + literal.replace("'", "''") + "'")
    return "".join(parts)


def strftime_to_regex(strftime_format: str) -> str:
    """A regular expression (RE2 and Java) matching exactly the texts of that format's shape."""
    return "^" + "".join(regex for _, _, regex in _tokens(strftime_format)) + r"\z"


def _postgres_parse(expr: ir.StringValue, strftime_format: str) -> ir.DateValue:
    """PostgreSQL: the date of a text that has the format's shape, NULL when a field is out of range.

    PostgreSQL's own parsers raise on a wrong date (31/02): the fields are taken with the shape's
    groups and checked here, the way strptime checks them, before ``make_date`` runs."""
    tokens = _tokens(strftime_format)
    capture = "^" + "".join(f"({regex})" if kind == "directive" else regex for kind, _, regex in tokens) + r"\z"
    fields: dict[str, ir.IntegerValue] = {}
    group = 0
    for kind, java, _ in tokens:
        if kind != "directive":
            continue
        group += 1
        fields[java[-1]] = expr.re_extract(capture, group).cast("int64")
    if "y" in fields and "yyyy" not in [java for kind, java, _ in tokens]:
        two = fields["y"]
        year = ibis.ifelse(two <= 68, two + 2000, two + 1900)
    else:
        year = fields.get("y", ibis.literal(1900))
    month = fields.get("M", ibis.literal(1))
    day = fields.get("d", ibis.literal(1))
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days = ibis.cases(
        (month.isin([4, 6, 9, 11]), 30), (month == 2, ibis.ifelse(leap, 29, 28)), else_=31
    )
    valid = month.between(1, 12) & day.between(1, days)
    for letter, top in (("H", 23), ("m", 59), ("s", 59)):
        if letter in fields:
            valid &= fields[letter] <= top
    return ibis.ifelse(valid, ibis.date(year, month, day), ibis.null("date"))


def try_parse_date(expr: ir.StringValue, strftime_format: str, backend: str) -> ir.DateValue:
    """Parse ``expr`` with a strftime format; NULL when the value does not parse (never an error).

    The value must first have the shape of the format (one or two digits for day, month, hour,
    minute and second, four digits for ``%Y`` from 1000, two for ``%y``): both engines then agree
    on the rest (calendar checks such as 31/02 -> NULL). Two-digit years follow strftime: 00-68
    are 2000-2068, 69-99 are 1969-1999.
    """
    check_backend(backend, "try_parse_date")
    shape = strftime_to_regex(strftime_format)
    if backend == "duckdb":
        parsed = _duckdb_try_strptime(expr, strftime_format).cast("date")
    elif backend == "postgres":
        parsed = _postgres_parse(expr, strftime_format)
    else:
        parsed = _spark_try_to_timestamp(expr, strftime_to_java(strftime_format)).cast("date")
        if "%y" in strftime_format.replace("%%", ""):
            # Spark reads 'yy' as 2000-2099; align with strftime's 1969-2068 window
            parsed = ibis.ifelse(
                parsed.year() >= 2069,
                ibis.date(parsed.year() - 100, parsed.month(), parsed.day()),
                parsed,
            )
    return ibis.ifelse(expr.re_search(shape), parsed, ibis.null("date"))


# --------------------------------------------------------------------------- text

TITLE_SEPARATORS = (" ", "-", "'", "\u2019", ".")


def title_case(expr: ir.StringValue, backend: str) -> ir.StringValue:
    """Lower-case ``expr`` and upper-case the first letter of each word.

    Words are separated by a space, a hyphen, an apostrophe (straight or typographic) or a dot:
    "jean-pierre" -> "Jean-Pierre", "o'neil" -> "O'Neil", "MARIE  CLAIRE" -> "Marie  Claire".
    """
    check_backend(backend, "title_case")
    if backend == "duckdb":
        seps = "".join("\\-" if s == "-" else s for s in TITLE_SEPARATORS)  # a character class body
        pattern = f"[^{seps}]+|[{seps}]+"
        words = _duckdb_regexp_extract_all(expr.lower(), pattern)
        return words.map(lambda w: w.substr(0, 1).upper() + w.substr(1)).join("")
    if backend == "postgres":
        # the same words and separator runs as DuckDB's, cut at each boundary between the two
        seps = "".join(s for s in TITLE_SEPARATORS if s != "-") + "-"
        boundary = f"(?<=[{seps}])(?=[^{seps}])|(?<=[^{seps}])(?=[{seps}])"
        words = _postgres_regexp_split_to_array(expr.lower(), boundary)
        return words.map(lambda w: w.substr(0, 1).upper() + w.substr(1)).join("")
    # Spark's initcap only starts a word after a space: add one after every other separator,
    # capitalize, then take exactly those added spaces out again.
    value = expr
    others = [s for s in TITLE_SEPARATORS if s != " "]
    for sep in others:
        value = value.replace(sep, sep + " ")
    value = _spark_initcap(value)
    for sep in others:
        value = value.replace(sep + " ", sep)
    return value


@functools.lru_cache(maxsize=None)
def accent_table() -> tuple[str, str]:
    """(letters with accents, the same letters without) for every character of the Basic
    Multilingual Plane that decomposes into one ASCII letter or digit plus combining marks.

    The same mapping as DuckDB's ``strip_accents`` on those characters; Spark and PostgreSQL
    (whose ``unaccent`` is an extension, not always installed) use TRANSLATE with this table."""
    src, dst = [], []
    for cp in range(0x80, 0x10000):
        ch = chr(cp)
        base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        if base != ch and len(base) == 1 and base.isascii() and base.isalnum():
            src.append(ch)
            dst.append(base)
    return "".join(src), "".join(dst)


def strip_accents(expr: ir.StringValue, backend: str) -> ir.StringValue:
    """``expr`` with accented Latin letters replaced by their ASCII letter ("Côte" -> "Cote")."""
    check_backend(backend, "strip_accents")
    if backend == "duckdb":
        return _duckdb_strip_accents(expr)
    src, dst = accent_table()
    return expr.translate(src, dst)


# --------------------------------------------------------------------------- evaluate once


def lookup(key: ir.StringValue, items: list[tuple[str, str]], backend: str) -> ir.StringValue | None:
    """The value of ``key`` among ``items`` (key, value) in one expression of the engine, NULL for
    another key; None where the caller's own search is the better one. Spark: a map literal
    read once (its analysis and its interpreted evaluation cost far less than a deep CASE of a
    thousand keys)."""
    if backend != "pyspark" or not items:
        return None
    keys, values = zip(*items)
    return _spark_try_element_at(ibis.map(list(keys), list(values)), key)


def bind(expr: ir.Value, body: Callable[[ir.Value], ir.Value], backend: str) -> ir.Value:
    """``body(expr)``, with ``expr`` evaluated once per row even when ``body`` uses it many times.

    Without it every use of ``expr`` in ``body`` is a copy of the whole expression, and of every
    rule before it in a chain: a country lookup refers to its key a few hundred times, so
    ``[null_like, country]`` sent DuckDB a query holding hundreds of copies of the null-like
    test, which its optimizer did not finish planning in 15 minutes. Spark would exceed the
    64 KB limit of a generated Java method and PostgreSQL would evaluate ``expr`` again in every
    branch. A one-element array and a lambda bind the value to a variable instead. A bare column
    or a literal is cheap to repeat and is used as it is.
    """
    check_backend(backend, "bind")
    if is_bare(expr):
        return body(expr)
    return ibis.array([expr]).map(_lambda(body))[0]


def is_bare(expr: ir.Value) -> bool:
    """True for a column reference or a literal: repeating it costs nothing."""
    return isinstance(expr.op(), (ops.Field, ops.Literal))


_bound = iter(range(1, 1 << 62))


def _lambda(body: Callable[[ir.Value], ir.Value]) -> Callable[[ir.Value], ir.Value]:
    """``body`` as a one-argument function with a fresh parameter name: Ibis names the lambda's
    variable after it, and nested binds must not share one."""
    name = f"_v{next(_bound)}"
    return eval(f"lambda {name}: body({name})", {"body": body})  # noqa: S307 - a fixed template


# --------------------------------------------------------------------------- regular expressions


def regex_pattern(pattern: str, backend: str) -> str:
    """Adapt an RE2 pattern for the engine: Java spells named groups ``(?<name>...)``.

    PostgreSQL patterns stay RE2 here: the PostgreSQL adapter translates every pattern of an
    expression with :func:`postgres_regex` when it compiles it."""
    check_backend(backend, "regex_replace")
    if backend == "pyspark":
        return pattern.replace("(?P<", "(?<")
    return pattern


_PG_CLASSES = {"d": "0-9", "s": "\\t\\n\\f\\r ", "w": "0-9A-Za-z_"}
_PG_FLAGS = {"i": "i", "m": "w", "s": ""}  # RE2 flag -> ARE flag (dot-all is done on the dots)


def _pg_char(code: int) -> str:
    return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def postgres_regex(pattern: str) -> str:
    """Translate an RE2 pattern (as written for DuckDB) into a PostgreSQL ARE of the same meaning.

    ``\\z`` -> ``\\Z``; ``\\x{HHHH}`` and ``\\xHH`` -> ``\\uHHHH``; ``\\d``, ``\\s``, ``\\w`` and
    their negations -> the ASCII classes RE2 gives them; ``\\b`` -> ``\\y``; ``.`` -> ``[^\\n]`` (RE2's
    dot stops at a newline, PostgreSQL's does not) unless the pattern starts with ``(?s)``;
    named groups ``(?P<name>...)`` -> plain groups; leading flags ``(?i)``, ``(?m)``, ``(?s)``
    -> ARE flags. Alternatives still pick the longest match in PostgreSQL (POSIX rule) where
    RE2 takes the first one that matches: only groups inside a match can differ, never whether
    a text matches.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    dot_all = False
    lead = re.match(r"\(\?([a-zA-Z]+)\)", pattern)
    if lead and set(lead.group(1)) <= set(_PG_FLAGS):
        flags = "".join(_PG_FLAGS[f] for f in lead.group(1))
        dot_all = "s" in lead.group(1)
        if flags:
            out.append(f"(?{flags})")
        i = lead.end()
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "x":
                if pattern.startswith("{", i + 2):
                    end = pattern.index("}", i + 3)
                    code, i = int(pattern[i + 3 : end], 16), end + 1
                else:
                    code, i = int(pattern[i + 2 : i + 4], 16), i + 4
                out.append(_pg_char(code))
                continue
            i += 2
            if nxt == "z":
                out.append("\\Z")
            elif nxt in _PG_CLASSES:
                out.append(_PG_CLASSES[nxt] if in_class else f"[{_PG_CLASSES[nxt]}]")
            elif nxt.lower() in _PG_CLASSES and not in_class:
                out.append(f"[^{_PG_CLASSES[nxt.lower()]}]")
            elif nxt in "bB" and not in_class:
                out.append("\\y" if nxt == "b" else "\\Y")
            else:
                out.append(ch + nxt)
            continue
        if in_class:
            if pattern.startswith("[:", i):  # [[:alpha:]]
                end = pattern.index(":]", i) + 2
                out.append(pattern[i:end])
                i = end
                continue
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):  # a leading ] is a literal one
                out.append("\\]")
                i += 1
            continue
        if ch == "." and not dot_all:
            out.append("[^\\n]")
        elif pattern.startswith("(?P<", i):
            out.append("(")
            i = pattern.index(">", i) + 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def regex_replacement(replacement: str, backend: str) -> str:
    """Adapt an RE2 replacement (``\\1`` for a group, ``\\\\`` for a backslash) for the engine.

    DuckDB takes it as is; Java (Spark) spells groups ``$1`` and needs ``$`` and ``\\`` escaped;
    PostgreSQL takes it as is but spells the whole match ``\\&`` where RE2 writes ``\\0``.
    """
    check_backend(backend, "regex_replace")
    check_replacement(replacement)
    out: list[str] = []
    i = 0
    while i < len(replacement):
        ch = replacement[i]
        if ch == "\\":
            nxt = replacement[i + 1] if i + 1 < len(replacement) else ""
            if nxt.isdigit():
                if backend == "postgres" and nxt == "0":
                    out.append("\\&")
                else:
                    out.append(("$" if backend == "pyspark" else "\\") + nxt)
            else:  # a backslash: check_replacement allows nothing else
                out.append("\\\\")
            i += 2
            continue
        if ch == "$" and backend == "pyspark":
            out.append("\\$")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


# --------------------------------------------------------------------------- JSON



def json_text(expr: ir.StringValue, path: list[str], backend: str) -> ir.StringValue:
    """The value at ``path`` inside a JSON text, as text; NULL when it is missing or JSON null.

    ``path`` is a list of object keys (letters, digits, ``_`` and ``-``); a key made of digits
    also reads that element of an array (0 is the first). A string comes back without its
    quotes, an object or array as JSON text, a number or boolean as text (a number may be
    spelled differently by each engine, ``12.50`` or ``12.5``: give the column a numeric type).
    """
    check_backend(backend, "json_text")
    bad = [k for k in path if not JSON_KEY.match(k)]
    if not path or bad:
        raise ConfigError(f"JSON path {'.'.join(path)!r}: keys are letters, digits, '_' and '-' only")
    if backend == "postgres":
        value = expr.cast(dt.json)
        for key in path[:-1]:
            value = _postgres_json_extract_path(value, key)
        return _postgres_json_extract_path_text(value, path[-1])
    if backend == "duckdb":
        jsonpath = "$" + "".join(f"[{k}]" if k.isdigit() else f'."{k}"' for k in path)
        return _duckdb_json_extract_string(expr, jsonpath)
    jsonpath = "$" + "".join(f"[{k}]" if k.isdigit() else f"['{k}']" for k in path)
    return _spark_get_json_object(expr, jsonpath)


# --------------------------------------------------------------------------- string similarity


@ibis.udf.scalar.builtin(name="jaro_winkler_similarity")
def _duckdb_jaro_winkler(a: str, b: str) -> float:  # pragma: no cover - declaration
    """DuckDB: the Jaro-Winkler similarity of two strings (0..1)."""


JARO_WINKLER_BACKENDS = ("duckdb",)


def levenshtein(a: ir.StringValue, b: ir.StringValue, backend: str) -> ir.IntegerValue:
    """The edit distance of two strings: the same integer on every engine (PostgreSQL needs the
    ``fuzzystrmatch`` extension, which :meth:`EngineAdapter.prepare_functions` creates)."""
    check_backend(backend, "levenshtein")
    return a.levenshtein(b)


def jaro_winkler(a: ir.StringValue, b: ir.StringValue, backend: str) -> ir.FloatingValue:
    """The Jaro-Winkler similarity (0..1); only DuckDB has it built in."""
    check_backend(backend, "jaro_winkler")
    if backend not in JARO_WINKLER_BACKENDS:
        raise EngineError(
            f"the engine '{backend}' has no Jaro-Winkler similarity; use the comparison method 'name' or "
            "'levenshtein' (edit distances), which every engine computes the same way"
        )
    return _duckdb_jaro_winkler(a, b)
