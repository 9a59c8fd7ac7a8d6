"""Typing of text columns: the configuration's column types as Ibis types and safe casts."""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt

IBIS_TYPES: dict[str, dt.DataType] = {
    "string": dt.string,
    "integer": dt.int64,
    "float": dt.float64,
    "decimal": dt.Decimal(18, 4),
    "boolean": dt.boolean,
    "date": dt.date,
    "timestamp": dt.timestamp,
}

TRUE_WORDS = ["true", "t", "yes", "y", "oui", "si", "sí", "1", "vrai"]
FALSE_WORDS = ["false", "f", "no", "n", "non", "0", "faux"]


def type_name(dtype: dt.DataType) -> str:
    """The configuration name of an Ibis type."""
    if dtype.is_string():
        return "string"
    if dtype.is_integer():
        return "integer"
    if dtype.is_floating():
        return "float"
    if dtype.is_decimal():
        return "decimal"
    if dtype.is_boolean():
        return "boolean"
    if dtype.is_date():
        return "date"
    if dtype.is_timestamp():
        return "timestamp"
    return "string"


def cast_text(expr: ibis.Value, target: str, *, decimal_comma: bool = False) -> ibis.Value:
    """Cast a text value to ``target``; a value that does not fit gives NULL (never an error)."""
    if not expr.type().is_string():
        if type_name(expr.type()) == target:
            return expr
        return expr.try_cast(IBIS_TYPES[target])
    text = expr.strip()
    text = (text == "").ifelse(ibis.null(dt.string), text)
    if target == "string":
        return expr
    if target in ("float", "decimal"):
        clean = text.re_replace("[\\s\u00a0]", "")
        if decimal_comma:
            clean = clean.replace(".", "").replace(",", ".")
        return clean.try_cast(IBIS_TYPES[target])
    if target == "integer":
        return text.re_replace("[\\s\u00a0]", "").try_cast(dt.int64)
    if target == "boolean":
        low = text.lower()
        return (
            ibis.cases((low.isin(TRUE_WORDS), True), (low.isin(FALSE_WORDS), False), else_=ibis.null(dt.boolean))
        )
    return text.try_cast(IBIS_TYPES[target])
