"""Every pair of normalization rules composed on one column, on DuckDB (and, marked, on Spark and
PostgreSQL).

A chain must give what its rules give one after the other: ``[a, b]`` on a column equals ``[b]`` on
the stored result of ``[a]``. A chain once sent DuckDB a query holding hundreds of copies of its
first rule (``[null_like, country]`` planned for 15 minutes): the whole matrix is evaluated here in
two queries per engine, so a rule that copies its input again makes this test hang, not pass.
"""

from __future__ import annotations

import itertools

import ibis
import pyarrow as pa
import pytest

from tessera.config.models import NormalizationRule
from tessera.errors import ConfigError
from tessera.normalize.rules import apply_rules

RULES = {
    "trim": "trim",
    "lower": "lower",
    "upper": "upper",
    "title": "title",
    "replace": {"replace": {"find": "-", "with": " "}},
    "regex_replace": {"regex_replace": {"pattern": "[0-9]{2}$", "with": "00"}},
    "null_like": "null_like",
    "null_like_list": {"null_like": ["inconnu", "-"]},
    "email": "email",
    "phone": {"phone": {"country": "FR"}},
    "date": {"date": {"dayfirst": True}},
    "country": "country",
    "gender": "gender",
}

VALUES = [
    " France ", "N/A", "fr", "Côte d'Ivoire", "ESPAGNE", "inconnu", "-", "", None,
    "06 12 34 56 78", "+33 6 12 34 56 78", "2024-03-15", "15/03/2024", "2024-03-15T10:00:00+01:00",
    "jean-pierre", " JEAN@Example.COM ", "mailto:a@b.fr", "0000-00-00", "\u00a0null\u00a0", " Mme ", "M.",
]

PAIRS = [(a, b) for a, b in itertools.product(RULES, RULES) if a != "date"]


def _rule(name: str) -> NormalizationRule:
    return NormalizationRule.model_validate(RULES[name])


def check_every_pair(make_table, to_rows, dialect) -> None:
    """``make_table(columns)`` stores a table of text columns in the engine; ``to_rows(expr)`` runs
    a selection and returns its rows as dictionaries in order of the column ``i``."""
    firsts = [a for a in RULES if a != "date"]
    source = make_table({"s": VALUES})
    chained = {f"{a}__{b}": apply_rules(source.s, [_rule(a), _rule(b)], dialect) for a, b in PAIRS}
    chained.update({a: apply_rules(source.s, [_rule(a)], dialect) for a in firsts})
    rows = to_rows(source.select(source.i, **chained))
    # step by step: every first step's results stored in one column, each second rule applied once
    steps = [(a, r["i"], r[a]) for a in firsts for r in rows]
    stored = make_table({"s": [v for _, _, v in steps]})
    seconds = to_rows(stored.select(stored.i, **{b: apply_rules(stored.s, [_rule(b)], dialect) for b in RULES}))
    stepwise = {(a, i, b): r[b] for (a, i, _), r in zip(steps, seconds, strict=True) for b in RULES}
    wrong = [
        (f"[{a}, {b}]", VALUES[r["i"]], r[f"{a}__{b}"], stepwise[a, r["i"], b])
        for a, b in PAIRS for r in rows if r[f"{a}__{b}"] != stepwise[a, r["i"], b]
    ]
    assert not wrong, f"{len(wrong)} chains differ from their steps, e.g. {wrong[:5]}"
    # the chains really normalize: a few values checked by hand
    by_value = {VALUES[r["i"]]: r for r in rows}
    assert by_value[" France "]["null_like__country"] == "FR"
    assert by_value["N/A"]["null_like__country"] is None
    assert by_value["inconnu"]["null_like_list__country"] is None
    assert by_value["Côte d'Ivoire"]["trim__country"] == "CI"
    assert by_value["06 12 34 56 78"]["null_like__phone"] == "+33612345678"
    assert str(by_value["15/03/2024"]["null_like__date"]) == "2024-03-15"
    assert by_value[" JEAN@Example.COM "]["null_like__email"] == "jean@example.com"


def test_date_must_be_last(engine_adapter):
    for b in RULES:
        with pytest.raises(ConfigError, match="'date' must be the last rule"):
            apply_rules(ibis.literal("x"), [_rule("date"), _rule(b)], engine_adapter.dialect)


def _arrow(columns: dict) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"i": pa.array(range(n), pa.int64()), **{k: pa.array(v, pa.string()) for k, v in columns.items()}})


def test_every_pair(engine_adapter):
    counter = itertools.count()
    check_every_pair(lambda cols: engine_adapter.create_table(f"pairs_{next(counter)}", _arrow(cols)),
                     lambda expr: engine_adapter.to_arrow(expr.order_by("i")).to_pylist(), engine_adapter.dialect)
