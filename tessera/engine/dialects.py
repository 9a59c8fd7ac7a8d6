"""The dialect of an engine: the few functions whose SQL differs, and the rendering of user SQL.

Every adapter carries one (``adapter.dialect``); the packages above the engine ask it, never an
engine's name. A dialect gives Ibis expressions (date parsing, JSON text, title case, accents,
evaluate-once binding), regular expressions spelled for the engine, and the SQL of a checked
user expression (:func:`tessera.sqlcheck.check_expression`) written so that the engine returns
DuckDB's values (:mod:`tessera.engine.sqlrender`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import ibis.expr.types as ir
import sqlglot.expressions as exp

from tessera.engine import functions, sqlrender
from tessera.errors import EngineError


class Dialect:
    """Base class of the engine dialects; :data:`DIALECTS` holds one of each."""

    #: the Ibis backend name
    name: ClassVar[str] = "base"
    #: the sqlglot dialect of the engine's SQL
    sqlglot: ClassVar[str] = ""

    def try_parse_date(self, expr: ir.StringValue, strftime_format: str) -> ir.DateValue:
        """The date of a text in a strftime format; NULL when it does not parse (never an error)."""
        return functions.try_parse_date(expr, strftime_format, self.name)

    def title_case(self, expr: ir.StringValue) -> ir.StringValue:
        """Lower-case, then upper-case the first letter of each word ("jean-pierre" -> "Jean-Pierre")."""
        return functions.title_case(expr, self.name)

    def strip_accents(self, expr: ir.StringValue) -> ir.StringValue:
        """Accented Latin letters replaced by their ASCII letter ("Côte" -> "Cote")."""
        return functions.strip_accents(expr, self.name)

    def bind(self, expr: ir.Value, body: Callable[[ir.Value], ir.Value]) -> ir.Value:
        """``body(expr)`` with ``expr`` evaluated once per row."""
        return functions.bind(expr, body, self.name)

    def lookup(self, key: ir.StringValue, items: list[tuple[str, str]]) -> ir.StringValue | None:
        """The value of ``key`` among ``items`` in one engine expression, NULL for another key; None
        when the caller's search (nested CASEs) suits the engine best."""
        return functions.lookup(key, items, self.name)

    def regex_pattern(self, pattern: str) -> str:
        """An RE2 pattern as the engine's regular expressions read it."""
        return functions.regex_pattern(pattern, self.name)

    def regex_replacement(self, replacement: str) -> str:
        """An RE2 replacement (``\\1`` for a group) as the engine spells it."""
        return functions.regex_replacement(replacement, self.name)

    def levenshtein(self, a: ir.StringValue, b: ir.StringValue) -> ir.IntegerValue:
        """The edit distance of two texts."""
        return functions.levenshtein(a, b, self.name)

    def jaro_winkler(self, a: ir.StringValue, b: ir.StringValue) -> ir.FloatingValue:
        """The Jaro-Winkler similarity of two texts."""
        return functions.jaro_winkler(a, b, self.name)

    def json_text(self, expr: ir.StringValue, path: list[str]) -> ir.StringValue:
        """The value at ``path`` inside a JSON text, as text."""
        return functions.json_text(expr, path, self.name)

    def render(self, expr: exp.Expression) -> str:
        """The SQL of a checked user expression for this engine."""
        return sqlrender.render(expr, self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DuckDBDialect(Dialect):
    name = "duckdb"
    sqlglot = "duckdb"


class SparkDialect(Dialect):
    name = "pyspark"
    sqlglot = "spark"


class PostgresDialect(Dialect):
    name = "postgres"
    sqlglot = "postgres"


DIALECTS: dict[str, Dialect] = {d.name: d for d in (DuckDBDialect(), SparkDialect(), PostgresDialect())}


def dialect_for(name: str) -> Dialect:
    """The dialect of the Ibis backend ``name`` (``duckdb``, ``pyspark``, ``postgres``)."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise EngineError(f"the engine '{name}' is not supported (engines: {', '.join(DIALECTS)})") from None
