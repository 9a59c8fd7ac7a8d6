"""Every operator, date condition, group, segment reference, SQL leaf and behaviour condition,
against membership computed by hand on a small fixed workspace, on every engine (one test body)."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
import yaml
from segment_helpers import make_workspace, member_names

from tessera.segments.compile import _days_ahead, shift

# segment name -> (conditions, members computed by hand at 2024-12-31; see segment_helpers.py)
CASES: dict[str, tuple[list[dict], set[str]]] = {
    "op_eq": ([{"column": "tier", "op": "=", "value": "gold"}], {"Ana", "Cy"}),
    "op_neq": ([{"column": "tier", "op": "!=", "value": "gold"}], {"Bo", "Ed", "Fa"}),
    "op_lt": ([{"column": "age", "op": "<", "value": 28}], {"Bo"}),
    "op_lte": ([{"column": "age", "op": "<=", "value": 28}], {"Bo", "Di"}),
    "op_gt": ([{"column": "age", "op": ">", "value": 52}], {"Ed"}),
    "op_gte": ([{"column": "age", "op": ">=", "value": 52}], {"Ed", "Fa"}),
    "op_between": ([{"column": "age", "op": "between", "value": [28, 45]}], {"Ana", "Cy", "Di"}),
    "op_in": ([{"column": "tier", "op": "in", "value": ["silver", "bronze"]}], {"Bo", "Ed", "Fa"}),
    "op_not_in": ([{"column": "tier", "op": "not_in", "value": ["gold"]}], {"Bo", "Ed", "Fa"}),
    "op_contains": ([{"column": "city", "op": "contains", "value": "ari"}], {"Ana", "Di"}),
    "op_starts_with": ([{"column": "city", "op": "starts_with", "value": "PARIS"}], {"Ana", "Di"}),
    "op_is_empty": ([{"column": "city", "op": "is_empty"}], {"Cy", "Fa"}),
    "op_is_not_empty": ([{"column": "city", "op": "is_not_empty"}], {"Ana", "Bo", "Di", "Ed"}),
    "op_is_true": ([{"column": "optin", "op": "is_true"}], {"Ana", "Cy", "Fa"}),
    "op_is_false": ([{"column": "optin", "op": "is_false"}], {"Bo", "Ed"}),
    "op_float": ([{"column": "spent", "op": ">", "value": 100}], {"Ana", "Cy", "Ed"}),
    "date_in_last_days": ([{"column": "signup", "op": "in_last", "value": 30}], {"Ana"}),
    "date_in_last_weeks": ([{"column": "signup", "op": "in_last", "value": 2, "unit": "weeks"}], {"Ana"}),
    "date_in_last_months": ([{"column": "signup", "op": "in_last", "value": 1, "unit": "months"}], {"Ana", "Di"}),
    "date_more_than_ago": ([{"column": "signup", "op": "more_than_ago", "value": 1, "unit": "years"}], {"Cy", "Ed"}),
    "date_before": ([{"column": "signup", "op": "before", "value": "2024-06-01"}], {"Cy", "Ed"}),
    "date_after": ([{"column": "signup", "op": "after", "value": "2024-11-30"}], {"Ana", "Di"}),
    "date_between": ([{"column": "signup", "op": "between", "value": ["2024-06-01", "2024-11-30"]}], {"Bo", "Fa"}),
    "date_anniversary": ([{"column": "birth", "op": "anniversary_within", "value": 7}], {"Ana", "Bo", "Fa"}),
    "group_any": ([{"any": [{"column": "tier", "op": "=", "value": "bronze"}, {"column": "age", "op": "<", "value": 20}]}],
                  {"Bo", "Ed"}),
    "group_not": ([{"not": {"column": "tier", "op": "=", "value": "gold"}}], {"Bo", "Di", "Ed", "Fa"}),
    "group_nested": ([{"any": [{"all": [{"column": "city", "op": "starts_with", "value": "paris"},
                                        {"column": "age", "op": ">", "value": 30}]},
                               {"column": "tier", "op": "=", "value": "bronze"}]}], {"Ana", "Ed"}),
    "gold": ([{"column": "tier", "op": "=", "value": "gold"}], {"Ana", "Cy"}),
    "ref_segment": ([{"segment": "gold"}, {"column": "city", "op": "contains", "value": "paris"}], {"Ana"}),
    "ref_not_segment": ([{"not": {"segment": "gold"}}, {"column": "age", "op": ">", "value": 50}], {"Ed", "Fa"}),
    "sql_leaf": ([{"sql": "age % 2 = 0 AND spent IS NOT NULL"}], {"Ana", "Di", "Fa"}),
    "did_at_least": ([{"did": "Added to Cart", "at_least": 2, "last": 7}], {"Ana"}),
    "did_default": ([{"did": "Added to Cart", "last": 30}], {"Ana", "Bo", "Fa"}),
    "did_exactly": ([{"did": "Added to Cart", "exactly": 1}], {"Bo", "Di", "Fa"}),
    "did_at_most": ([{"did": "Added to Cart", "at_most": 1}], {"Bo", "Cy", "Di", "Ed", "Fa"}),
    "did_filtered": ([{"did": "Added to Cart", "filter": "price > 50"}], {"Ana", "Di", "Fa"}),
    "not_done": ([{"not_done": "Added to Cart", "last": 30}], {"Cy", "Di", "Ed"}),
    "orders_sum": ([{"aggregate": "sum", "column": "amount", "op": ">=", "value": 100, "last": 90}], {"Ana", "Ed"}),
    "orders_count_filtered": ([{"aggregate": "count", "filter": "channel = 'shop'", "op": ">=", "value": 1}],
                              {"Ana", "Cy", "Ed"}),
    "orders_avg": ([{"aggregate": "avg", "from": "orders", "column": "amount", "op": ">", "value": 100}], {"Cy", "Ed"}),
    "orders_none": ([{"aggregate": "count", "op": "=", "value": 0}], {"Di", "Fa"}),
    "match_any": ([{"column": "tier", "op": "=", "value": "bronze"}, {"did": "Added to Cart", "at_least": 2}],
                  {"Ana", "Ed"}),
}


def _segments_yaml() -> str:
    segs = []
    for name, (conds, _) in CASES.items():
        segs.append({"name": name, "match": "any" if name == "match_any" else "all", "conditions": conds})
    return yaml.safe_dump({"pipeline": {"as_of": date(2024, 12, 31)}, "segments": segs}, sort_keys=False)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("spark", marks=pytest.mark.spark),
                                        pytest.param("postgres", marks=pytest.mark.postgres)])
def workspace(request, tmp_path_factory):
    engine = request.param
    if engine == "spark":
        request.getfixturevalue("spark_session")
    elif engine == "postgres":
        server = request.getfixturevalue("postgres_server")
        engine = server.create_database(f"seg_{uuid.uuid4().hex[:8]}")
    ws = make_workspace(tmp_path_factory.mktemp(f"seg-{request.param}"), engine, _segments_yaml())
    result = ws.run()
    yield ws, result
    ws.close()


@pytest.mark.parametrize("name", list(CASES))
def test_membership_matches_the_hand_computed_audience(workspace, name):
    ws, _ = workspace
    expected = CASES[name][1]
    assert member_names(ws, name) == expected
    assert ws.segment_count(name)["count"] == len(expected)


def test_a_run_refreshes_every_segment(workspace):
    _ws, result = workspace
    step = next(s for s in result.steps if s["step"] == "segments")
    assert step["segments"] == len(CASES)
    assert step["members"] == sum(len(m) for _, m in CASES.values())


def test_the_count_after_each_top_level_condition(workspace):
    ws, _ = workspace
    draft = {"conditions": [{"column": "age", "op": ">=", "value": 20, "label": "adults"},
                            {"column": "optin", "op": "is_true"},
                            {"aggregate": "count", "op": ">=", "value": 1, "label": "has ordered"}]}
    result = ws.segment_count(draft)
    assert result["records"] == 6
    # adults: all but Bo; opted in: Ana, Cy, Fa; has ordered: Ana, Cy
    assert [(s["condition"], s["count"]) for s in result["steps"]] == [
        ("adults", 5), ("optin is true", 3), ("has ordered", 2)]
    assert result["count"] == 2
    widening = ws.segment_count({"match": "any", "conditions": draft["conditions"][1:]})
    assert [s["count"] for s in widening["steps"]] == [3, 5]  # opted in, then or has ordered (+Bo, Ed)
    # a behaviour condition inside a group, then a column condition: the counts after it are read
    # from the records the conditions before it keep
    nested = ws.segment_count({"conditions": [
        draft["conditions"][0],
        {"any": [{"did": "Added to Cart"}, {"column": "tier", "op": "=", "value": "gold"}]},
        {"column": "optin", "op": "is_true"}]})
    # adults; and added to cart or gold: Ana, Cy, Di, Fa; opted in: Ana, Cy, Fa
    assert [s["count"] for s in nested["steps"]] == [5, 4, 3]
    # nobody passes the first condition: the later counts are 0
    none = ws.segment_count({"conditions": [{"column": "age", "op": ">", "value": 200},
                                            {"did": "Added to Cart"}]})
    assert [s["count"] for s in none["steps"]] == [0, 0] and none["records"] == 6


def test_dates_move_back_by_calendar_units():
    assert shift(date(2024, 3, 31), 1, "months") == date(2024, 2, 29)
    assert shift(date(2024, 12, 31), 2, "weeks") == date(2024, 12, 17)
    assert shift(date(2025, 2, 28), 1, "years") == date(2024, 2, 28)
    # a birthday on Feb 29 is celebrated on Mar 1 in the years without it
    assert 229 in _days_ahead(date(2025, 2, 27), 3) and 229 not in _days_ahead(date(2024, 2, 27), 1)


def test_one_pass_membership_equals_each_segment_evaluated_alone(workspace):
    """A refresh evaluates all the segments of a dataset in one query (shared helper columns, one
    grouped aggregate per related dataset); each segment compiled and evaluated on its own gives
    the same members."""
    from tessera.segments import MEMBERS, compile_segment

    ws, _ = workspace
    ctx = ws._segment_context()
    members = ws.adapter.table(MEMBERS)
    one_pass: dict[str, set[str]] = {}
    for r in ws.adapter.to_arrow(members.select("segment", "tessera_id")).to_pylist():
        one_pass.setdefault(r["segment"], set()).add(r["tessera_id"])
    assert set(one_pass) <= set(CASES)
    for seg in ws.config.segments:
        c = compile_segment(ctx, seg)
        alone = ws.adapter.to_arrow(c.table.filter(c.where).select(id=c.table.tessera_id.cast("string")))
        assert one_pass.get(seg.name, set()) == set(alone["id"].to_pylist()), seg.name
