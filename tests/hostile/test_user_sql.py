"""User SQL that could exhaust the machine or slip past apply: unbounded padding and repetition,
long OR chains (checked in linear time), deep nesting, and filters (aggregate, sync, source) that
escape the allow-list or are not conditions are refused at apply with the setting's place."""

from __future__ import annotations

import time

import pytest

from tessera.config.loader import parse_config
from tessera.sqlcheck import check_condition, check_expression
from tessera.errors import ConfigError


@pytest.mark.parametrize("sql", [
    "length(lpad(email, 2147483647, 'x'))",
    "rpad(email, 10001, 'x')",
    "repeat(email, 1000000)",
    "lpad(email, length(email) * 100000, 'x')",
])
def test_unbounded_padding_and_repetition_are_refused(sql):
    with pytest.raises(ConfigError, match="must be a whole number up to 10,000"):
        check_expression(sql, {"email"}, where="computed")


def test_bounded_padding_is_fine():
    check_expression("lpad(email, 12, '0') || repeat('-', 3)", {"email"}, where="computed")


def test_checking_long_or_chains_is_linear():
    """2,000 terms took 113 s; the cost per term must not grow with the number of terms."""
    def cost(n: int) -> float:
        sql = " or ".join(f"email = 'a{i}@example.com'" for i in range(n))
        start = time.process_time()
        check_expression(sql, {"email"}, where="segment")
        return time.process_time() - start

    small, large = cost(250), cost(2000)
    # linear: 8x the terms costs about 8x; quadratic would be 64x. Generous bound for noisy machines.
    assert large < small * 24 + 0.5, (small, large)


@pytest.mark.parametrize("sql", ["(" * 80 + "email" + ")" * 80, "lower(" * 40 + "email" + ")" * 40,
                                 "not " * 3000 + "email", "- " * 3000 + "1"])
def test_deep_nesting_is_a_message_not_a_recursion_error(sql):
    with pytest.raises(ConfigError, match="nested"):
        check_expression(sql, {"email"}, where="computed")


@pytest.mark.parametrize("sql, kind", [("'yes'", "a text"), ("42", "a number"), ("amount + 1", "a value"),
                                       ("(lower(email))", "a value")])
def test_a_filter_must_be_a_condition(sql, kind):
    with pytest.raises(ConfigError, match="not a condition") as exc:
        check_condition(sql, {"email", "amount"}, where="filter")
    assert f"the filter is {kind}" in str(exc.value)


def test_conditions_pass():
    for sql in ("amount > 1", "email is not null and (amount between 1 and 2 or email like '%@x.com')", "true",
                "starts_with(email, 'a')", "flag"):
        check_condition(sql, {"email", "amount", "flag"}, where="filter")


def config(*, aggregate_filter=None, sync_filter=None, source_filter=None) -> dict:
    return {
        "connections": [{"name": "files", "type": "local", "path": "/tmp/x"},
                        {"name": "out", "type": "local", "path": "/tmp/y"}],
        "sources": [
            {"name": "crm", "connection": "files", "pattern": "c*.csv", "record_keys": ["id"],
             **({"filter": source_filter} if source_filter else {})},
            {"name": "shop", "connection": "files", "pattern": "o*.csv", "record_keys": ["order_id"],
             "relations": [{"column": "email", "to": "contacts.email"}]},
        ],
        "datasets": [
            {"name": "contacts", "mappings": [{"source": "crm", "columns": {"email": "email"}}],
             "aggregates": [{"name": "spent", "from": "orders", "function": "sum", "column": "amount",
                             **({"filter": aggregate_filter} if aggregate_filter else {})}]},
            {"name": "orders", "mappings": [{"source": "shop", "columns": {"order_id": "order_id",
                                                                           "amount": "amount", "email": "email"}}]},
        ],
        "syncs": [{"name": "export", "dataset": "contacts", "connection": "out",
                   **({"filter": sync_filter} if sync_filter else {})}],
    }


def test_aggregate_filters_are_checked_at_apply():
    parse_config(config(aggregate_filter="amount > 10"))
    for bad, expected in (("amount > (select count(*) from read_csv('/etc/passwd'))", "not allowed"),
                          ("read_csv('/etc/passwd') is not null", "read_csv"),
                          ("amount * 2", "not a condition"),
                          ("nope > 1", "nope")):
        with pytest.raises(ConfigError) as exc:
            parse_config(config(aggregate_filter=bad))
        assert "datasets[0] (contacts).aggregates[0] (spent).filter:" in str(exc.value)
        assert expected in str(exc.value)


def test_sync_and_source_filters_must_be_conditions_at_apply():
    with pytest.raises(ConfigError, match=r"syncs\[0\] \(export\)\.filter: the filter is a text"):
        parse_config(config(sync_filter="'FR'"))
    with pytest.raises(ConfigError, match=r"sources\[0\] \(crm\)\.filter: the filter is a value \(LOWER"):
        parse_config(config(source_filter="lower(email)"))
