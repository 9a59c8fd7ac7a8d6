"""Computed columns: SQL expressions over the columns of one dataset.

A computed column is one SQL expression written in DuckDB's dialect (the authoring dialect,
whatever the engine), e.g. ``concat(first_name, ' ', last_name)``,
``EXTRACT(YEAR FROM age(birth_date))`` or ``CASE WHEN age < 30 THEN 'young' ELSE 'other' END``.

:func:`check_expression` parses it with sqlglot and checks it against an allow-list: only the
dataset's columns, literals, the operators and the scalar functions listed below. Anything else
is refused with a message that names the offending part: statements (``SELECT``, ``COPY``,
``ATTACH``, ``PRAGMA``, ``SET``...), several statements, subqueries, table references and joins,
table functions, file and network readers (``read_csv``, ``read_parquet``, ``glob``...),
settings and environment (``current_setting``, ``getenv``), aggregates (``sum``, ``count``...),
window functions (``... OVER (...)``), ``*``, parameters (``?``, ``$1``) and unknown columns
(with the closest names). :func:`render` writes the checked expression for the engine,
rewriting the functions whose meaning differs between DuckDB, Spark and PostgreSQL so that every
engine returns the same values. :func:`order_computed` orders computed columns that use one
another and refuses cycles.

Supported (every engine returns the same values):

- operators: ``+ - * / %`` (a division or modulo by zero gives NULL), comparisons, ``AND OR
  NOT``, ``||`` (NULL when a side is NULL), ``IS [NOT] NULL``, ``IS [NOT] DISTINCT FROM``,
  ``[NOT] IN (values)``, ``BETWEEN``, ``[NOT] LIKE``, ``ILIKE``, ``CASE``, ``CAST(x AS type)``
  and ``x::type`` (type: VARCHAR, INTEGER, BIGINT, SMALLINT, DOUBLE, FLOAT, DECIMAL(p, s),
  BOOLEAN, DATE, TIMESTAMP; a number cast to an integer is rounded half away from zero), typed
  literals (``DATE '2024-01-31'``), ``x +/- INTERVAL n unit`` (unit: year, month, week, day,
  hour, minute; the result is a timestamp);
- conditional: ``if(c, a, b)``, ``coalesce``/``ifnull``, ``nullif``, ``least``, ``greatest``;
- text: ``concat`` (NULL counts as ''), ``concat_ws``, ``length``, ``lower``, ``upper``,
  ``trim``, ``ltrim``, ``rtrim``, ``substr``/``substring``, ``left``, ``right``, ``replace``,
  ``translate``, ``lpad``, ``rpad``, ``split_part``, ``starts_with``, ``ends_with``,
  ``contains``, ``strpos``/``instr``/``position``, ``reverse``, ``repeat``, ``ascii``, ``chr``,
  ``md5``, ``regexp_matches(x, pattern)``, ``regexp_replace(x, pattern, replacement, 'g')``,
  ``regexp_extract(x, pattern[, group])`` (patterns are RE2 literals, translated for Spark and
  PostgreSQL; ``regexp_replace`` replaces every match and says so with ``'g'``);
- numbers: ``abs``, ``round``, ``floor``, ``ceil``, ``sign``, ``sqrt``, ``power``, ``exp``,
  ``ln``, ``log10``, ``mod``;
- dates: ``current_date``/``today()`` (the engine's current date), ``year``, ``quarter``,
  ``month``, ``week`` (ISO), ``day``, ``hour``, ``minute``, ``EXTRACT(part FROM x)`` and
  ``date_part('part', x)`` with those parts, ``date_trunc('part', x)``, ``date_diff('day' |
  'month' | 'year', start, end)``/``datediff`` (part boundaries crossed, as DuckDB counts
  them), ``strftime(x, format)`` (``%Y %y %m %d %H %M %S`` and punctuation), ``make_date``,
  ``last_day``, ``EXTRACT(YEAR FROM age(x))``, ``date_part('year', age(x))`` and ``age(end,
  start)`` in the same forms: the age in whole years, a birthday counting from its date.

A computed column's type is the type DuckDB gives the expression (integers as BIGINT, floats as
DOUBLE), cast the same way on every engine, or its declared ``type``.

Known differences: ``sqrt``, ``power``, ``exp``, ``ln`` and ``log10`` may differ in the last
digit of a double; a text with a fraction cast to an integer (``CAST('2.5' AS INTEGER)``) is
rounded by DuckDB and Spark and refused by PostgreSQL; ``current_date`` is the date in the
engine's time zone.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
from collections.abc import Iterator

import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.tokens import TokenType

from tessera.errors import ConfigError

AUTHORING_DIALECT = "duckdb"


def _classes(*names: str) -> tuple[type, ...]:
    """The sqlglot classes of these names that this sqlglot version has."""
    return tuple(getattr(exp, n) for n in names if isinstance(getattr(exp, n, None), type))


# --------------------------------------------------------------------------- allow-list

#: function name shown to users -> the sqlglot nodes it parses into
SUPPORTED_FUNCTIONS: dict[str, tuple[type, ...]] = {
    # conditional
    "if": _classes("If"),
    "coalesce": _classes("Coalesce"),
    "nullif": _classes("Nullif"),
    "least": _classes("Least"),
    "greatest": _classes("Greatest"),
    # text
    "concat": _classes("Concat"),
    "concat_ws": _classes("ConcatWs"),
    "length": _classes("Length"),
    "lower": _classes("Lower"),
    "upper": _classes("Upper"),
    "trim": _classes("Trim"),
    "substr": _classes("Substring"),
    "left": _classes("Left"),
    "right": _classes("Right"),
    "replace": _classes("Replace"),
    "translate": _classes("Translate"),
    "lpad": _classes("Pad"),
    "split_part": _classes("SplitPart"),
    "starts_with": _classes("StartsWith"),
    "ends_with": _classes("EndsWith"),
    "contains": _classes("Contains"),
    "strpos": _classes("StrPosition"),
    "reverse": _classes("Reverse"),
    "repeat": _classes("Repeat"),
    "ascii": _classes("Ascii"),
    "chr": _classes("Chr"),
    "md5": _classes("MD5"),
    "regexp_matches": _classes("RegexpLike"),
    "regexp_replace": _classes("RegexpReplace"),
    "regexp_extract": _classes("RegexpExtract"),
    # numbers
    "abs": _classes("Abs"),
    "round": _classes("Round"),
    "floor": _classes("Floor"),
    "ceil": _classes("Ceil"),
    "sign": _classes("Sign"),
    "sqrt": _classes("Sqrt"),
    "power": _classes("Pow"),
    "exp": _classes("Exp"),
    "ln": _classes("Ln"),
    "log10": _classes("Log"),
    # dates
    "current_date": _classes("CurrentDate"),
    "year": _classes("Year"),
    "quarter": _classes("Quarter"),
    "month": _classes("Month"),
    "week": _classes("Week", "WeekOfYear"),
    "day": _classes("Day", "DayOfMonth"),
    "hour": _classes("Hour"),
    "minute": _classes("Minute"),
    "extract": _classes("Extract"),
    "date_trunc": _classes("TimestampTrunc", "DateTrunc"),
    "date_diff": _classes("DateDiff"),
    "strftime": _classes("TimeToStr"),
    "make_date": _classes("DateFromParts"),
    "last_day": _classes("LastDay"),
    # casts
    "cast": _classes("Cast"),
}
#: functions sqlglot does not know, handled here by name
SPECIAL_FUNCTIONS = ("age", "date_part")
SUPPORTED_NAMES = sorted(set(SUPPORTED_FUNCTIONS) | set(SPECIAL_FUNCTIONS) | {
    "ifnull", "substring", "rpad", "ltrim", "rtrim", "instr", "position", "ceiling", "mod", "today",
    "datediff"})
_FUNCTION_CLASSES = tuple(c for classes in SUPPORTED_FUNCTIONS.values() for c in classes)

#: operators, literals and the other nodes an expression is made of
_OPERATORS = _classes(
    "Column", "Literal", "Boolean", "Null", "Paren", "Neg", "Not", "And", "Or", "Add", "Sub", "Mul", "Div",
    "Mod", "EQ", "NEQ", "GT", "GTE", "LT", "LTE", "NullSafeEQ", "NullSafeNEQ", "Is", "In", "Between", "Like",
    "ILike", "DPipe", "Case", "Interval", "DataType", "DataTypeParam",
)

#: names of the functions that read files, the network or other databases
FILE_FUNCTIONS = frozenset({
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
    "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto", "read_ndjson_objects",
    "read_text", "read_blob", "read_xlsx", "glob", "sniff_csv", "parquet_metadata", "parquet_schema",
    "parquet_file_metadata", "parquet_kv_metadata", "delta_scan", "iceberg_scan", "iceberg_metadata",
    "iceberg_snapshots", "st_read", "sqlite_scan", "sqlite_attach", "postgres_scan", "postgres_attach",
    "postgres_query", "postgres_execute", "mysql_scan", "mysql_query", "mysql_execute", "read_files",
    "input_file_name", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import",
    "lo_export", "dblink", "dblink_exec", "httpfs", "http_get", "http_post", "load_extension", "copy",
    "attach", "detach", "install", "load", "export_database", "import_database", "java_method", "reflect",
})
#: table functions: they give rows, not one value per row
TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "explode", "explode_outer", "posexplode", "inline", "stack",
    "query", "query_table", "json_each", "json_tree", "duckdb_tables", "duckdb_columns", "duckdb_settings",
    "duckdb_functions", "duckdb_extensions", "duckdb_databases", "information_schema", "pragma_table_info",
    "pragma_storage_info", "pragma_database_size", "pragma_version", "pragma_show", "which_secret",
    "duckdb_secrets", "pg_catalog", "summarize", "describe",
})
#: engine settings, variables and the environment
SETTING_FUNCTIONS = frozenset({
    "current_setting", "set_config", "getenv", "getvariable", "setvariable", "current_schema",
    "current_schemas", "current_database", "current_catalog", "current_user", "session_user", "user",
    "version", "pg_backend_pid", "inet_server_addr", "txid_current", "pg_sleep", "sleep",
})

_WINDOW_ONLY = _classes(
    "RowNumber", "Rank", "DenseRank", "PercentRank", "CumeDist", "Ntile", "Lag", "Lead", "FirstValue",
    "LastValue", "NthValue",
)
_QUERIES = _classes("Query", "Subquery", "Select", "Union", "Except", "Intersect", "Exists", "Values")
_TABLES = _classes("Table", "From", "Join", "Lateral", "TableAlias")
_PARAMETERS = _classes("Placeholder", "Parameter", "SessionParameter", "RawString")

EXTRACT_PARTS = ("YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE")
_PART_ALIASES = {"YEARS": "YEAR", "QUARTERS": "QUARTER", "MONTHS": "MONTH", "WEEKS": "WEEK", "DAYS": "DAY",
                 "HOURS": "HOUR", "MINUTES": "MINUTE", "Y": "YEAR", "YR": "YEAR", "MON": "MONTH",
                 "D": "DAY", "H": "HOUR", "MIN": "MINUTE", "WEEKOFYEAR": "WEEK", "DAYOFMONTH": "DAY"}
_PART_FUNCTIONS = {"Year": "YEAR", "Quarter": "QUARTER", "Month": "MONTH", "Week": "WEEK",
                   "WeekOfYear": "WEEK", "Day": "DAY", "DayOfMonth": "DAY", "Hour": "HOUR", "Minute": "MINUTE"}
DIFF_UNITS = ("DAY", "MONTH", "YEAR")
INTERVAL_UNITS = ("YEAR", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE")
STRFTIME_DIRECTIVES = "YymdHMS"
_STRFTIME_LITERAL = re.compile(r"[ \-/:.,_]")
CAST_TYPES = {
    exp.DataType.Type.TEXT: "VARCHAR", exp.DataType.Type.VARCHAR: "VARCHAR", exp.DataType.Type.CHAR: "VARCHAR",
    exp.DataType.Type.INT: "INTEGER", exp.DataType.Type.BIGINT: "BIGINT", exp.DataType.Type.SMALLINT: "SMALLINT",
    exp.DataType.Type.TINYINT: "TINYINT", exp.DataType.Type.DOUBLE: "DOUBLE", exp.DataType.Type.FLOAT: "FLOAT",
    exp.DataType.Type.DECIMAL: "DECIMAL", exp.DataType.Type.BOOLEAN: "BOOLEAN", exp.DataType.Type.DATE: "DATE",
    exp.DataType.Type.TIMESTAMP: "TIMESTAMP", exp.DataType.Type.TIMESTAMPNTZ: "TIMESTAMP",
}
_INTEGER_TYPES = {exp.DataType.Type.INT, exp.DataType.Type.BIGINT, exp.DataType.Type.SMALLINT,
                  exp.DataType.Type.TINYINT}

_ALLOWED_HINT = "allowed: scalar functions over this dataset's columns"


# --------------------------------------------------------------------------- checking


MAX_REPEAT = 10_000  # the largest length lpad, rpad and repeat may produce (no unbounded allocation)
MAX_NESTING = 30  # levels of parentheses and function calls in one expression (the parser recurses)


def _snippet(node: exp.Expression, limit: int = 60) -> str:
    try:
        text = node.sql(dialect=AUTHORING_DIALECT)
    except Exception:  # noqa: BLE001 - only used in a message
        text = node.key
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def function_name(node: exp.Expression) -> str:
    """The name of a function node as DuckDB spells it (``read_csv``, ``sum``, ``age``)."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, (exp.Binary, exp.Unary)):
        # operators (and, or, =, +...): their name is their kind; rendering the whole operand
        # tree for each of them made checking a chain of N terms take N^2 time
        return node.key.lower()
    text = _snippet(node, 200)
    head = text.split("(", 1)[0].strip().lower()
    if re.fullmatch(r"[a-z_][a-z0-9_]*", head):
        return head
    names = node.sql_names() if hasattr(node, "sql_names") else []
    return (names[0] if names else node.key).lower()


class _Refused(Exception):
    pass


def _unit(node: exp.Expression | None) -> str | None:
    """The text of a date part argument (``YEAR``, ``'year'``), upper-case, or None."""
    if isinstance(node, (exp.Var, exp.Literal)) and (isinstance(node, exp.Var) or node.is_string):
        part = str(node.this).upper()
        return _PART_ALIASES.get(part, part)
    if isinstance(node, exp.Column) and not node.table:  # a bare word parsed as a column
        part = str(node.name).upper()
        return _PART_ALIASES.get(part, part)
    return None


def _string_literal(node: exp.Expression | None) -> str | None:
    return str(node.this) if isinstance(node, exp.Literal) and node.is_string else None


def _is_age(node: exp.Expression | None) -> bool:
    return isinstance(node, exp.Anonymous) and str(node.name).lower() == "age"


def _year_of_age(node: exp.Expression) -> exp.Expression | None:
    """The ``age(...)`` call when ``node`` takes its years (``EXTRACT(YEAR FROM age(x))``)."""
    if isinstance(node, exp.Extract) and _unit(node.this) == "YEAR" and _is_age(node.expression):
        return node.expression
    if isinstance(node, exp.Anonymous) and str(node.name).lower() == "date_part":
        args = node.expressions
        if len(args) == 2 and _unit(args[0]) == "YEAR" and _is_age(args[1]):
            return args[1]
    return None


def _check_escape(node: exp.Expression) -> None:
    """The first pass: what reads outside the row (files, network, settings, other tables or rows)."""
    if isinstance(node, exp.Func) and not isinstance(node, _FUNCTION_CLASSES):
        name = function_name(node)
        if name in FILE_FUNCTIONS | TABLE_FUNCTIONS | SETTING_FUNCTIONS or isinstance(
                node, _classes("ReadCSV", "ReadParquet", "GenerateSeries", "Explode", "Unnest")):
            _check_function(node)
    if isinstance(node, (*_QUERIES, *_TABLES, exp.Window)):
        _check_node(node, {})


def _check_node(node: exp.Expression, columns: dict[str, str]) -> None:
    """Raise :class:`_Refused` with the reason when ``node`` is not allowed."""
    if isinstance(node, _QUERIES):
        raise _Refused(f"subquery {_snippet(node)} is not allowed: a computed column reads only the columns "
                       "of the row it is computed for (no SELECT, no other table)")
    if isinstance(node, _TABLES):
        raise _Refused(f"table reference {_snippet(node)} is not allowed: joins and other tables are not "
                       "allowed in a computed column")
    if isinstance(node, exp.Star):
        raise _Refused("'*' is not allowed in a computed column: name the columns")
    if isinstance(node, _PARAMETERS):
        raise _Refused(f"parameter {_snippet(node)} is not allowed in a computed column: write the value")
    if isinstance(node, exp.Window):
        raise _Refused(f"window function {_snippet(node)} is not allowed: a computed column is row-level "
                       "(one value per row, from that row's columns)")
    if isinstance(node, exp.AggFunc) and not isinstance(node, _FUNCTION_CLASSES):
        raise _Refused(f"aggregate function {function_name(node)} ({_snippet(node)}) is not allowed: a computed "
                       "column is row-level (one value per row, from that row's columns)")
    if isinstance(node, _WINDOW_ONLY):
        raise _Refused(f"window function {function_name(node)} is not allowed: a computed column is row-level "
                       "(one value per row, from that row's columns)")
    if isinstance(node, exp.Column):
        _check_column(node, columns)
        return
    if isinstance(node, exp.Identifier):
        if isinstance(node.parent, exp.Column):
            return
        raise _Refused(f"'{_snippet(node)}' is not allowed here")
    if isinstance(node, exp.Var):
        if isinstance(node.parent, (exp.Extract, exp.DateDiff, exp.TimestampTrunc, exp.Interval,
                                    *_classes("DateTrunc"))):
            return
        raise _Refused(f"'{_snippet(node)}' is not allowed here")
    if isinstance(node, exp.Alias):
        raise _Refused(f"an alias ({_snippet(node)}) is not allowed: the computed column's name is its 'name'")
    if isinstance(node, _OPERATORS):
        _check_operator(node)
        return
    if isinstance(node, exp.Func):
        _check_function(node)
        return
    raise _Refused(f"{_snippet(node)} ({node.key}) is not allowed in a computed column; {_ALLOWED_HINT}")


def _check_column(node: exp.Column, columns: dict[str, str]) -> None:
    if node.table or node.args.get("db") or node.args.get("catalog"):
        raise _Refused(f"column {_snippet(node)} names a table: write the column alone ({node.name}); a "
                       "computed column reads only this dataset's columns")
    ident = node.this
    if not isinstance(ident, exp.Identifier):
        raise _Refused(f"'{_snippet(node)}' is not allowed in a computed column")
    name = str(ident.this)
    key = name if ident.quoted else name.lower()
    if key in columns:
        return
    close = difflib.get_close_matches(key.lower(), list(columns), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else (
        "columns: " + ", ".join(sorted(columns)[:30]) + (", ..." if len(columns) > 30 else ""))
    raise _Refused(f"unknown column '{name}' ({hint})")


def _check_function(node: exp.Func) -> None:
    name = function_name(node)
    if name in FILE_FUNCTIONS or isinstance(node, _classes("ReadCSV", "ReadParquet")):
        raise _Refused(f"function {name} is not allowed in a computed column (file and network access); "
                       f"{_ALLOWED_HINT}")
    if name in TABLE_FUNCTIONS or isinstance(node, _classes("GenerateSeries", "Explode", "Unnest")):
        raise _Refused(f"function {name} is not allowed in a computed column (a table function gives rows, "
                       f"not one value per row); {_ALLOWED_HINT}")
    if name in SETTING_FUNCTIONS:
        raise _Refused(f"function {name} is not allowed in a computed column (engine settings and "
                       f"environment); {_ALLOWED_HINT}")
    if isinstance(node, exp.Anonymous):
        if name == "age":
            if _year_of_age(node.parent) is not node or len(node.expressions) not in (1, 2):
                raise _Refused(f"{_snippet(node)}: age is supported as EXTRACT(YEAR FROM age(x)) or "
                               "date_part('year', age(x)) (the age in whole years; age(end, start) too); for days "
                               "use date_diff('day', x, current_date)")
            return
        if name == "date_part":
            if len(node.expressions) != 2:
                raise _Refused(f"{_snippet(node)}: date_part takes a part and a date")
            part = _unit(node.expressions[0])
            if part not in EXTRACT_PARTS:
                raise _Refused(f"date part {_snippet(node.expressions[0])} is not supported (supported: "
                               f"{', '.join(p.lower() for p in EXTRACT_PARTS)})")
            return
        raise _Refused(f"function {name} is not supported in a computed column; supported: "
                       f"{', '.join(SUPPORTED_NAMES)}")
    if isinstance(node, exp.TryCast):
        raise _Refused(f"{_snippet(node)}: TRY_CAST is not supported (PostgreSQL has none); use CAST, or set the "
                       "computed column's type, which turns values that do not fit into NULL")
    if not isinstance(node, _FUNCTION_CLASSES):
        raise _Refused(f"function {name} is not supported in a computed column; supported: "
                       f"{', '.join(SUPPORTED_NAMES)}")
    _check_arguments(node, name)


def _check_arguments(node: exp.Func, name: str) -> None:
    """The arguments the rendering of some functions depends on."""
    if isinstance(node, exp.Extract):
        if _is_age(node.expression):
            if _unit(node.this) != "YEAR":
                raise _Refused(f"{_snippet(node)}: only the years of an age are supported (EXTRACT(YEAR FROM "
                               "age(x))); for days use date_diff('day', x, current_date)")
            return
        if _unit(node.this) not in EXTRACT_PARTS:
            raise _Refused(f"EXTRACT part {_snippet(node.this)} is not supported (supported: "
                           f"{', '.join(p.lower() for p in EXTRACT_PARTS)})")
    elif isinstance(node, (exp.TimestampTrunc, *_classes("DateTrunc"))):
        if _unit(node.args.get("unit")) not in EXTRACT_PARTS:
            raise _Refused(f"date_trunc part {_snippet(node.args['unit']) if node.args.get('unit') else '?'} is not "
                           f"supported (supported: {', '.join(p.lower() for p in EXTRACT_PARTS)})")
    elif isinstance(node, exp.DateDiff):
        unit = _unit(node.args.get("unit")) or "DAY"
        if unit not in DIFF_UNITS:
            raise _Refused(f"date_diff unit '{unit.lower()}' is not supported (supported: "
                           f"{', '.join(u.lower() for u in DIFF_UNITS)})")
    elif isinstance(node, exp.TimeToStr):
        fmt = _string_literal(node.args.get("format"))
        if fmt is None:
            raise _Refused(f"{_snippet(node)}: the format of strftime must be a string literal")
        _check_strftime(fmt)
    elif isinstance(node, exp.RegexpLike):
        if node.args.get("flag") is not None:
            raise _Refused(f"{_snippet(node)}: regexp_matches options are not supported; write the flag in the "
                           "pattern, e.g. '(?i)abc'")
        _regex_literal(node, node.expression)
    elif isinstance(node, exp.RegexpReplace):
        _regex_literal(node, node.expression)
        replacement = _string_literal(node.args.get("replacement"))
        if replacement is None:
            raise _Refused(f"{_snippet(node)}: the replacement of regexp_replace must be a string literal")
        try:
            check_replacement(replacement)
        except ConfigError as exc:
            raise _Refused(exc.problems[0]) from None
        if _string_literal(node.args.get("modifiers")) != "g":
            raise _Refused(f"{_snippet(node)}: write regexp_replace(x, pattern, replacement, 'g'): every engine "
                           "replaces every match ('g'); replacing only the first one is not portable")
    elif isinstance(node, exp.RegexpExtract):
        _regex_literal(node, node.expression)
        group = node.args.get("group")
        if group is not None and not (isinstance(group, exp.Literal) and not group.is_string
                                      and str(group.this).isdigit()):
            raise _Refused(f"{_snippet(node)}: the group of regexp_extract must be a number")
        if node.args.get("parameters") is not None:
            raise _Refused(f"{_snippet(node)}: regexp_extract options are not supported")
    elif isinstance(node, _classes("Pad", "Repeat")):
        size = node.args.get("expression") if isinstance(node, _classes("Pad")) else node.args.get("times")
        if not (isinstance(size, exp.Literal) and not size.is_string and str(size.this).isdigit()
                and int(str(size.this)) <= MAX_REPEAT):
            raise _Refused(f"{_snippet(node)}: the length of {name} must be a whole number up to {MAX_REPEAT:,} "
                           "written in the expression (one value must not grow without bound)")
    elif isinstance(node, exp.Log):
        base = node.this
        if not (node.expression is not None and isinstance(base, exp.Literal) and str(base.this) == "10"):
            raise _Refused(f"{_snippet(node)}: log is not portable (DuckDB's is base 10, Spark's natural): use "
                           "log10(x) or ln(x)")
    elif isinstance(node, exp.Cast):
        _check_cast(node)


def _check_cast(node: exp.Cast) -> None:
    to = node.to
    if not isinstance(to, exp.DataType) or to.this not in CAST_TYPES:
        supported = "VARCHAR, INTEGER, BIGINT, SMALLINT, DOUBLE, FLOAT, DECIMAL(p, s), BOOLEAN, DATE, TIMESTAMP"
        raise _Refused(f"{_snippet(node)}: a cast to {_snippet(to) if to is not None else '?'} is not supported "
                       f"(supported: {supported})")


def _check_strftime(fmt: str) -> None:
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            d = fmt[i + 1] if i + 1 < len(fmt) else ""
            if d not in STRFTIME_DIRECTIVES:
                raise _Refused(f"strftime format '{fmt}': '%{d}' is not supported (supported: "
                               f"{' '.join('%' + c for c in STRFTIME_DIRECTIVES)}, with spaces and - / : . , _)")
            i += 2
            continue
        if not _STRFTIME_LITERAL.fullmatch(ch):
            raise _Refused(f"strftime format '{fmt}': the character '{ch}' is not supported (between the "
                           f"directives: spaces and - / : . , _)")
        i += 1


def _regex_literal(node: exp.Expression, pattern: exp.Expression | None) -> str:
    text = _string_literal(pattern)
    if text is None:
        raise _Refused(f"{_snippet(node)}: the pattern must be a string literal")
    return text


def _check_operator(node: exp.Expression) -> None:
    if isinstance(node, exp.In):
        if node.args.get("query") is not None:
            raise _Refused(f"subquery {_snippet(node.args['query'])} is not allowed: a computed column reads only "
                           "the columns of the row it is computed for (no SELECT, no other table)")
        if node.args.get("unnest") is not None or node.args.get("field") is not None:
            raise _Refused(f"{_snippet(node)}: IN takes a list of values")
    elif isinstance(node, exp.Interval):
        value = node.this
        unit = _unit(node.args.get("unit"))
        if not (isinstance(value, exp.Literal) and str(value.this).strip().lstrip("-").isdigit()):
            raise _Refused(f"{_snippet(node)}: an interval is a whole number and a unit, e.g. INTERVAL 3 MONTH")
        if unit not in INTERVAL_UNITS:
            raise _Refused(f"{_snippet(node)}: interval unit {unit.lower() if unit else '?'} is not supported "
                           f"(supported: {', '.join(u.lower() for u in INTERVAL_UNITS)})")
    elif isinstance(node, (exp.DataType, exp.DataTypeParam)):
        if not isinstance(node.parent, (exp.Cast, exp.DataType)):
            raise _Refused(f"'{_snippet(node)}' is not allowed here")


_STATEMENT_WORDS = {"select": "SELECT", "copy": "COPY", "attach": "ATTACH", "detach": "DETACH", "pragma": "PRAGMA",
                    "set": "SET", "use": "USE", "describe": "DESCRIBE", "install": "INSTALL", "drop": "DROP",
                    "create": "CREATE", "insert": "INSERT", "update": "UPDATE", "delete": "DELETE",
                    "merge": "MERGE", "alter": "ALTER", "transaction": "BEGIN", "commit": "COMMIT",
                    "rollback": "ROLLBACK", "union": "UNION", "except": "EXCEPT", "intersect": "INTERSECT",
                    "values": "VALUES", "show": "SHOW", "analyze": "ANALYZE", "refresh": "REFRESH",
                    "cache": "CACHE", "uncache": "UNCACHE", "load": "LOAD", "truncatetable": "TRUNCATE"}


_STATEMENTS = _classes("DDL", "DML", "Query", "Set", "Pragma", "Copy", "Attach", "Detach", "Use", "Describe",
                       "Install", "Transaction", "Commit", "Rollback", "Show", "Analyze", "Drop", "Create",
                       "Insert", "Update", "Delete", "Merge", "Alter", "Cache", "Uncache", "Refresh", "LoadData",
                       "TruncateTable", "Values")


def _statement(root: exp.Expression) -> str | None:
    """The keyword of ``root`` when it is a statement rather than an expression."""
    if isinstance(root, exp.Command):
        return str(root.this).upper()
    if isinstance(root, _STATEMENTS) and not isinstance(root, exp.Subquery):
        return _STATEMENT_WORDS.get(root.key, root.key.upper())
    return None


class _Silence(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _quiet_parser() -> Iterator[None]:
    """No "falling back to parsing as a Command" warnings: a statement is refused with a message."""
    logger, silence = logging.getLogger("sqlglot"), _Silence()
    logger.addFilter(silence)
    try:
        yield
    finally:
        logger.removeFilter(silence)


def check_expression(sql: str, columns: set[str], *, where: str) -> exp.Expression:
    """Parse ``sql`` (DuckDB's dialect) and check it against the allow-list.

    ``columns`` are the names it may use; ``where`` starts every message
    (``datasets[0].computed[1] (age)``). Returns the parsed expression, its columns quoted with
    the dataset's spelling, ready for :func:`render`. Raises :class:`ConfigError`.
    """
    known = {c: c for c in columns}
    known.update({c.lower(): c for c in columns if c.lower() not in known})

    def refuse(reason: str) -> ConfigError:
        return ConfigError(f"{where}: {reason}")

    if not isinstance(sql, str) or not sql.strip():
        raise refuse("the expression is empty")
    try:
        tokens = sqlglot.tokenize(sql, read=AUTHORING_DIALECT)
    except TokenError as exc:
        raise refuse(f"not valid SQL ({_first_line(exc)})") from None
    if any(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise refuse("';' is not allowed: a computed column is one expression, not statements")
    depth = 0
    for t in tokens:
        depth += (t.token_type == TokenType.L_PAREN) - (t.token_type == TokenType.R_PAREN)
        if depth > MAX_NESTING:
            raise refuse(f"parentheses and function calls are nested more than {MAX_NESTING} levels deep (line "
                         f"{t.line}, column {t.col}); simplify the expression")
    try:
        with _quiet_parser():
            statements = [s for s in sqlglot.parse(sql, read=AUTHORING_DIALECT) if s is not None]
    except (ParseError, TokenError) as exc:
        raise refuse(f"not valid SQL ({_first_line(exc)})") from None
    except RecursionError:
        raise refuse("the expression is nested too deeply to be read; simplify it") from None
    if not statements:
        raise refuse("the expression is empty")
    if len(statements) > 1:
        raise refuse("only one expression is allowed (found several statements)")
    root = statements[0]
    keyword = _statement(root)
    if keyword:
        raise refuse(f"{keyword} is a statement, not an expression: a computed column is one expression over "
                     "this dataset's columns")
    try:
        for node in root.walk():
            _check_escape(node)
        for node in root.walk():
            _check_node(node, known)
    except _Refused as exc:
        raise refuse(str(exc)) from None
    except RecursionError:
        raise refuse("the expression is nested too deeply to be checked; simplify it") from None
    for col in list(root.find_all(exp.Column)):
        ident = col.this
        name = str(ident.this)
        quoted = exp.column(known[name if ident.quoted else name.lower()], quoted=True)
        if col is root:
            return quoted
        col.replace(quoted)
    return root


# Expressions whose value is never true or false: a filter made of one of them is refused at apply
# (the engines would fail at run time, or with an internal error).
_NOT_CONDITIONS = _classes("Add", "Sub", "Mul", "Div", "IntDiv", "Mod", "DPipe", "Concat", "ConcatWs", "Lower",
                           "Upper", "Length", "Trim", "Substring", "Pad", "Repeat", "Round", "Abs", "Initcap",
                           "Reverse", "Replace", "CurrentDate", "CurrentTimestamp", "Interval")


def check_condition(sql: str, columns: set[str], *, where: str) -> exp.Expression:
    """Like :func:`check_expression`, for a filter: the expression must also be a condition (true or
    false), not a text, a number or a date."""
    root = check_expression(sql, columns, where=where)
    node = root
    while isinstance(node, exp.Paren):
        node = node.this
    if (isinstance(node, exp.Literal) or isinstance(node, _NOT_CONDITIONS)) and not isinstance(node, exp.Boolean):
        kind = "a text" if isinstance(node, exp.Literal) and node.is_string else (
            "a number" if isinstance(node, exp.Literal) else f"a value ({_snippet(node)})")
        raise ConfigError(f"{where}: the filter is {kind}, not a condition; write a comparison that is true "
                          "or false, e.g. country = 'FR' or amount > 100")
    return root


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split()) if text else type(exc).__name__


def referenced_columns(sql: str) -> set[str]:
    """The column names ``sql`` uses (lower-case when unquoted); empty when it does not parse."""
    try:
        with _quiet_parser():
            tree = sqlglot.parse_one(sql, read=AUTHORING_DIALECT)
    except (SqlglotError, ValueError):
        return set()
    if tree is None:
        return set()
    out = set()
    for col in tree.find_all(exp.Column):
        ident = col.this
        if isinstance(ident, exp.Identifier):
            out.add(str(ident.this) if ident.quoted else str(ident.this).lower())
    return out


def order_computed(items: dict[str, str], base_columns: set[str]) -> list[str]:
    """The computed columns ``items`` (name -> SQL) in an order where each comes after the
    computed columns it uses. A cycle raises :class:`ConfigError` naming it (``a -> b -> a``).

    A name of ``base_columns`` is a column of the dataset, never a dependency."""
    names = list(items)
    deps = {n: [d for d in names if d in referenced_columns(items[n]) and d not in base_columns] for n in names}
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in done:
            return
        if name in path:
            cycle = path[path.index(name):] + [name]
            raise ConfigError(f"computed columns use each other in a cycle: {' -> '.join(cycle)}")
        for dep in deps[name]:
            visit(dep, path + [name])
        done.add(name)
        order.append(name)

    for n in names:
        visit(n, [])
    return order


def check_replacement(replacement: str) -> None:
    """Refuse a regular expression replacement other than text, ``\\1``..``\\9`` (a group) and
    ``\\\\`` (a backslash): the engines spell the others differently."""
    i = 0
    while i < len(replacement):
        if replacement[i] == "\\":
            nxt = replacement[i + 1] if i + 1 < len(replacement) else ""
            if not (nxt.isdigit() or nxt == "\\"):
                raise ConfigError(
                    f"regex_replace 'with' value '{replacement}': use \\1..\\9 for a group and \\\\ for a "
                    "backslash"
                )
            i += 2
            continue
        i += 1


# --------------------------------------------------------------------------- source filters


def filter_sql(condition: str) -> str:
    """A source filter with dotted column names (``traits.plan``, ``context.page.url``) quoted as one
    column each, as the staged columns are named; anything that does not parse is left for
    :func:`check_expression` to report."""
    try:
        tree = sqlglot.parse_one(condition, read=AUTHORING_DIALECT)
    except (SqlglotError, ValueError):
        return condition
    if tree is None:
        return condition
    changed = False
    for col in list(tree.find_all(exp.Column)):
        parts = [p for p in (col.args.get("catalog"), col.args.get("db"), col.args.get("table"), col.this) if p]
        if len(parts) > 1 and all(isinstance(p, exp.Identifier) for p in parts):
            col.replace(exp.column(".".join(str(p.this) for p in parts), quoted=True))
            changed = True
    return tree.sql(dialect=AUTHORING_DIALECT) if changed else condition


def filter_columns(condition: str) -> set[str]:
    """The column names a source filter uses."""
    return referenced_columns(filter_sql(condition))
