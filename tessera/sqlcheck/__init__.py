"""The user-SQL checker: computed columns, aggregate and sync filters, source filters.

Every SQL expression a user writes in the configuration is parsed with sqlglot in DuckDB's
dialect and checked against an allow-list here (:mod:`tessera.sqlcheck.check`), when the
configuration is read and again when a run uses it. This package imports nothing of Tessera but
:mod:`tessera.errors`: the configuration checks use it, and each engine writes a checked
expression in its own SQL (:meth:`tessera.engine.dialects.Dialect.render`).
"""

from tessera.sqlcheck.check import (
    AUTHORING_DIALECT,
    check_condition,
    check_expression,
    check_replacement,
    filter_columns,
    filter_sql,
    order_computed,
    referenced_columns,
)

__all__ = [
    "AUTHORING_DIALECT",
    "check_condition",
    "check_expression",
    "check_replacement",
    "filter_columns",
    "filter_sql",
    "order_computed",
    "referenced_columns",
]
