"""The SQL of a checked user expression (:func:`tessera.sqlcheck.check_expression`) for each engine.

A user expression is written in DuckDB's dialect; :func:`render` rewrites the functions whose
meaning differs between DuckDB, Spark and PostgreSQL so that every engine returns the same
values (the age in years, date differences, integer casts, regular expressions, division by
zero...), then writes it with sqlglot in the engine's dialect.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import ErrorLevel, SqlglotError

from tessera.engine.functions import postgres_regex, regex_pattern, regex_replacement
from tessera.errors import EngineError
from tessera.sqlcheck.check import (
    _INTEGER_TYPES,
    _PART_FUNCTIONS,
    _classes,
    _first_line,
    _is_age,
    _snippet,
    _string_literal,
    _unit,
)

#: Ibis backend name -> sqlglot dialect
DIALECTS = {"duckdb": "duckdb", "pyspark": "spark", "spark": "spark", "postgres": "postgres"}


def _template(sql: str, dialect: str, **values: exp.Expression) -> exp.Expression:
    """Parse ``sql`` in ``dialect`` and put copies of ``values`` in place of the ``__name__`` columns."""
    tree = sqlglot.parse_one(sql, read=dialect)
    for col in list(tree.find_all(exp.Column)):
        key = str(col.name).strip("_")
        if str(col.name).startswith("__") and key in values:
            col.replace(values[key].copy())
    return tree


def _bigint(node: exp.Expression) -> exp.Expression:
    return exp.Cast(this=node, to=exp.DataType.build("BIGINT"))


def _part(part: str, value: exp.Expression) -> exp.Expression:
    """``CAST(EXTRACT(part FROM value) AS BIGINT)``: PostgreSQL's EXTRACT is a numeric."""
    return _bigint(exp.Extract(this=exp.var(part), expression=value.copy()))


def _age_years(age: exp.Anonymous) -> exp.Expression:
    """Whole years from ``start`` to ``end`` (``age(end, start)``, ``age(start)`` up to today), by date:
    one more year on each birthday; the day after the 28th of February for the 29th."""
    args = age.expressions
    end, start = (args[0], args[1]) if len(args) == 2 else (exp.CurrentDate(), args[0])
    years = exp.Sub(this=_part("YEAR", end), expression=_part("YEAR", start))
    before = exp.LT(
        this=exp.Add(this=exp.Mul(this=_part("MONTH", end), expression=exp.Literal.number(100)),
                     expression=_part("DAY", end)),
        expression=exp.Add(this=exp.Mul(this=_part("MONTH", start), expression=exp.Literal.number(100)),
                           expression=_part("DAY", start)),
    )
    birthday_ahead = exp.Case(ifs=[exp.If(this=before, true=exp.Literal.number(1))], default=exp.Literal.number(0))
    return exp.Paren(this=exp.Sub(this=years, expression=birthday_ahead))


def _date_diff(node: exp.DateDiff, dialect: str) -> exp.Expression:
    """Part boundaries crossed from ``start`` to ``end``, as DuckDB's date_diff counts them."""
    unit = _unit(node.args.get("unit")) or "DAY"
    end, start = node.this, node.expression
    if dialect == "duckdb":
        node.set("unit", exp.var(unit))
        return node
    if unit == "YEAR":
        return exp.Paren(this=exp.Sub(this=_part("YEAR", end), expression=_part("YEAR", start)))
    if unit == "MONTH":
        years = exp.Sub(this=_part("YEAR", end), expression=_part("YEAR", start))
        months = exp.Sub(this=_part("MONTH", end), expression=_part("MONTH", start))
        return exp.Paren(this=exp.Add(this=exp.Mul(this=exp.Paren(this=years), expression=exp.Literal.number(12)),
                                      expression=months))
    if dialect == "spark":
        return _template("DATEDIFF(CAST(__e__ AS DATE), CAST(__s__ AS DATE))", "spark", e=end, s=start)
    return _bigint(_template("CAST(__e__ AS DATE) - CAST(__s__ AS DATE)", "postgres", e=end, s=start))


def _regex(text: str, dialect: str) -> str:
    if dialect == "postgres":
        return postgres_regex(text)
    if dialect == "spark":
        return regex_pattern(text, "pyspark")
    return text


def _rewrite(node: exp.Expression, dialect: str) -> exp.Expression:
    """One node of a checked expression, written so that ``dialect`` gives DuckDB's result."""
    if isinstance(node, exp.Extract) and _is_age(node.expression):
        return _age_years(node.expression)
    if isinstance(node, exp.Anonymous) and str(node.name).lower() == "date_part":
        part, value = node.expressions
        if _is_age(value):
            return _age_years(value)
        return _part(_unit(part), value)
    if isinstance(node, exp.Extract):
        return _part(_unit(node.this), node.expression)
    part = _PART_FUNCTIONS.get(type(node).__name__)
    if part:
        return _part(part, node.this)
    if isinstance(node, (exp.Div, exp.Mod)):
        # a division by zero is NULL everywhere (DuckDB gives infinity, Spark and PostgreSQL raise)
        node.set("expression", exp.Nullif(this=node.expression, expression=exp.Literal.number(0)))
        return node
    if isinstance(node, exp.DateDiff):
        return _date_diff(node, dialect)
    if isinstance(node, (exp.TimestampTrunc, *_classes("DateTrunc"))):
        node.set("unit", exp.var(_unit(node.args["unit"])))
        if dialect == "postgres":  # date_trunc of a DATE would be a timestamp with time zone
            node.set("this", exp.Cast(this=node.this, to=exp.DataType.build("TIMESTAMP")))
        return node
    if isinstance(node, exp.Interval):
        node.set("unit", exp.var(_unit(node.args["unit"])))
        return node
    if isinstance(node, exp.Cast) and dialect == "spark" and node.to.this in _INTEGER_TYPES:
        # Spark truncates a fraction where DuckDB and PostgreSQL round it: a double to even, a
        # decimal half away from zero
        node.set("this", _template(
            "CASE WHEN TYPEOF(__x__) IN ('double', 'float') THEN CAST(BROUND(CAST(__x__ AS DOUBLE)) AS DECIMAL(38, 9)) "
            "WHEN TYPEOF(__x__) LIKE 'decimal%' THEN ROUND(CAST(__x__ AS DECIMAL(38, 9))) "
            "ELSE ROUND(CAST(__x__ AS DECIMAL(38, 9))) END", "spark", x=node.this))
        return node
    if isinstance(node, exp.Upper) and dialect == "spark":  # Java upper-cases the sharp s to "SS"
        node.set("this", exp.Replace(this=node.this, expression=exp.Literal.string("\u00df"),
                                     replacement=exp.Literal.string("\u1e9e")))
        return node
    if isinstance(node, exp.EndsWith) and dialect == "postgres":
        return _template("RIGHT(__a__, LENGTH(__b__)) = __b__", "postgres", a=node.this, b=node.expression)
    if isinstance(node, exp.DateFromParts) and dialect == "postgres":  # make_date takes integers
        for key in ("year", "month", "day"):
            node.set(key, exp.Cast(this=node.args[key], to=exp.DataType.build("INT")))
        return node
    if isinstance(node, exp.RegexpLike):
        node.set("expression", exp.Literal.string(_regex(_string_literal(node.expression), dialect)))
        return node
    if isinstance(node, exp.RegexpReplace):
        node.set("expression", exp.Literal.string(_regex(_string_literal(node.expression), dialect)))
        backend = {"spark": "pyspark"}.get(dialect, dialect)
        node.set("replacement", exp.Literal.string(regex_replacement(_string_literal(node.args["replacement"]),
                                                                     backend)))
        return node
    if isinstance(node, exp.RegexpExtract):
        return _regexp_extract(node, dialect)
    if isinstance(node, exp.Contains) and dialect == "postgres":
        return _template("STRPOS(__a__, __b__) > 0", "postgres", a=node.this, b=node.expression)
    if isinstance(node, exp.Round) and dialect == "postgres":
        # PostgreSQL rounds a double precision to even and has no round(double, digits)
        number = exp.Cast(this=node.this, to=exp.DataType.build("DECIMAL"))
        node.set("this", number)
        return exp.Cast(this=node, to=exp.DataType.build("DOUBLE"))
    return node


def _regexp_extract(node: exp.RegexpExtract, dialect: str) -> exp.Expression:
    pattern = _string_literal(node.expression)
    group = int(str(node.args["group"].this)) if node.args.get("group") is not None else 0
    if dialect == "duckdb":
        return node
    if dialect == "spark":
        return exp.RegexpExtract(this=node.this, expression=exp.Literal.string(_regex(pattern, dialect)),
                                 group=exp.Literal.number(group))
    # PostgreSQL: regexp_match gives the groups; group 0 (the whole match) is one more group around it.
    translated = postgres_regex(pattern)
    flags = ""
    lead = re.match(r"\(\?[a-z]+\)", translated)
    if lead:
        flags, translated = lead.group(0), translated[lead.end():]
    wrapped = f"{flags}({translated})"
    match = _template("REGEXP_MATCH(__a__, __p__)", "postgres", a=node.this, p=exp.Literal.string(wrapped))
    # sqlglot numbers array items from 0 and writes PostgreSQL's 1-based index
    found = exp.Bracket(this=exp.Paren(this=match), expressions=[exp.Literal.number(group)])
    return _template("COALESCE(__f__, CASE WHEN __a__ IS NULL THEN NULL ELSE '' END)", "postgres",
                     f=found, a=node.this)


def _bottom_up(node: exp.Expression, fn: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _bottom_up(value, fn))
        elif isinstance(value, list):
            node.set(key, [_bottom_up(v, fn) if isinstance(v, exp.Expression) else v for v in value])
    return fn(node)


def dialect_of(backend: str) -> str:
    try:
        return DIALECTS[backend]
    except KeyError:
        raise EngineError(f"computed columns are not available on the engine '{backend}' "
                          f"(engines: {', '.join(sorted(set(DIALECTS) - {'spark'}))})") from None


def render(expr: exp.Expression, backend: str) -> str:
    """The SQL of a checked expression (see :func:`check_expression`) for ``backend``
    (``duckdb``, ``pyspark`` or ``spark``, ``postgres``)."""
    dialect = dialect_of(backend)
    tree = _bottom_up(expr.copy(), lambda n: _rewrite(n, dialect))
    try:
        return tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise EngineError(f"the computed column {_snippet(expr)} cannot be written for {backend}: "
                          f"{_first_line(exc)}") from None
