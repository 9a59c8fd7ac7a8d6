"""The score library on hand-computable orders (DuckDB in memory)."""

from datetime import date

import ibis
import pytest

from tessera.enrich.scores import compute_scores
from tessera.errors import ConfigError

AS_OF = date(2024, 12, 31)
FIELDS = {"OrderDate": "day", "OrderAmount": "amount", "DiscountAmount": "discount", "Store": "store",
          "Channel": "channel"}
ORDERS = {
    # customer A: 3 orders, one discounted; B: one order; C: 2 orders, refund (0 amount) and far away
    "_customer": ["A", "A", "A", "B", "C", "C"],
    "_order": ["o1", "o2", "o3", "o4", "o5", "o6"],
    "day": [date(2024, 12, 1), date(2024, 12, 11), date(2024, 12, 21), date(2024, 12, 30),
            date(2022, 1, 1), date(2022, 1, 31)],
    "amount": [100.0, 50.0, 50.0, 10.0, 0.0, 30.0],
    "discount": [0.0, 50.0, None, 0.0, 0.0, 0.0],
    "store": ["Lyon", "Paris", "Lyon", "Lyon", None, "Nice"],
    "channel": ["web", "pos", "web", "web", "pos", "pos"],
}
ITEMS = {
    "_order": ["o1", "o1", "o2", "o4", "o5"],
    "qty": [1, 2, 3, 1, 5],
    "cat": ["Textile", "Cuisine", "Textile", "Jardin", None],
}


@pytest.fixture(scope="module")
def scores():
    con = ibis.duckdb.connect()
    out = compute_scores(
        ibis.memtable(ORDERS), FIELDS,
        ["rfm", "purchase_timing", "order_stats", "discounts", "stores", "channels", "categories", "items"],
        as_of=AS_OF, items=ibis.memtable(ITEMS), item_fields={"Quantity": "qty", "ProductCategory": "cat"},
    )
    return {r["_customer"]: r for r in con.to_pyarrow(out).to_pylist()}


def test_order_stats(scores):
    a, b, c = scores["A"], scores["B"], scores["C"]
    assert a["score_total_order_count"] == 3 and b["score_total_order_count"] == 1
    assert a["score_orders_total_amount"] == 200.0 and a["score_average_order_value"] == pytest.approx(200 / 3)
    assert a["score_days_since_last_order"] == 10 and a["score_average_days_between_orders"] == 10.0
    assert b["score_average_days_between_orders"] is None  # one order: no gap
    assert a["score_multi_buyer"] and not b["score_multi_buyer"]
    assert b["score_new_customer"] and not c["score_new_customer"]
    assert a["score_regular_customer"] and not c["score_regular_customer"]
    assert a["score_active_customer"] and not c["score_active_customer"]
    assert c["score_orders_total_amount"] == 30.0  # a refunded (zero) order still counts as an order


def test_purchase_timing(scores):
    # A: 10 days since last order, 10 days between orders -> ratio 1.0
    assert scores["A"]["score_purchase_timing_ratio"] == 1.0
    assert scores["A"]["score_purchase_timing"] == "upcoming purchase"
    assert scores["B"]["score_purchase_timing"] is None  # one order
    assert scores["C"]["score_purchase_timing"] == "significantly overdue"  # 1065 days vs 30


def test_rfm_quintiles_and_ties(scores):
    # recency: B (1 day) best, A (10), C (1065); frequency: A 3, C 2, B 1; monetary: A 200, C 30, B 10
    assert scores["B"]["score_rfm_recency"] == 5 and scores["C"]["score_rfm_recency"] == 2
    assert scores["A"]["score_rfm_frequency"] == 5 and scores["B"]["score_rfm_frequency"] == 2
    assert scores["A"]["score_rfm"] == "455"
    assert scores["A"]["score_rfm_segment"] == "Champions"
    assert scores["C"]["score_rfm_segment"] in ("At Risk", "Hibernating", "Lost")


def test_rfm_ties_share_a_score():
    con = ibis.duckdb.connect()
    orders = {"_customer": ["X", "Y", "Z"], "_order": ["1", "2", "3"],
              "day": [date(2024, 1, 1)] * 3, "amount": [5.0, 5.0, 9.0]}
    out = con.to_pyarrow(compute_scores(ibis.memtable(orders), FIELDS, ["rfm"], as_of=AS_OF)).to_pylist()
    by = {r["_customer"]: r for r in out}
    assert by["X"]["score_rfm_monetary"] == by["Y"]["score_rfm_monetary"] < by["Z"]["score_rfm_monetary"]
    assert len({r["score_rfm_recency"] for r in out}) == 1


def test_discounts(scores):
    assert scores["A"]["score_discounted_order_count"] == 1
    assert scores["A"]["score_discounted_order_rate"] == pytest.approx(1 / 3)
    assert scores["A"]["score_average_discount_rate"] == 0.2  # 50 off a gross of 250
    assert scores["B"]["score_discounted_order_count"] == 0


def test_stores_and_channels(scores):
    a = scores["A"]
    assert a["score_favorite_store"] == "Lyon" and a["score_stores"] == "Lyon, Paris"
    assert a["score_store_count"] == 2 and a["score_multi_store"]
    assert a["score_first_order_store"] == "Lyon" and a["score_last_order_store"] == "Lyon"
    assert scores["C"]["score_stores"] == "Nice"  # the order without a store is ignored
    assert a["score_favorite_channel"] == "web" and a["score_omnichannel"]
    assert not scores["B"]["score_omnichannel"]


def test_categories_and_items(scores):
    a = scores["A"]
    assert a["score_categories"] == "Cuisine, Textile" and a["score_top3_categories"] == "Textile, Cuisine"
    assert a["score_category_count"] == 2 and a["score_multi_category"]
    assert a["score_total_items"] == 6 and a["score_average_items_per_order"] == 3.0
    assert scores["C"]["score_categories"] is None


def test_missing_semantic_fields_are_named():
    with pytest.raises(ConfigError, match="DiscountAmount"):
        compute_scores(ibis.memtable(ORDERS), {"OrderDate": "day", "OrderAmount": "amount"}, ["discounts"],
                       as_of=AS_OF)


def test_an_order_without_a_date_counts_but_does_not_move_dates():
    con = ibis.duckdb.connect()
    orders = {"_customer": ["X", "X"], "_order": ["1", "2"], "day": [date(2024, 12, 1), None],
              "amount": [10.0, 5.0]}
    out = con.to_pyarrow(compute_scores(ibis.memtable(orders), FIELDS, ["order_stats", "purchase_timing"],
                                        as_of=AS_OF)).to_pylist()[0]
    assert out["score_total_order_count"] == 2 and out["score_orders_total_amount"] == 15.0
    assert out["score_first_order_date"] == out["score_last_order_date"] == date(2024, 12, 1)
    assert out["score_days_since_last_order"] == 30
    assert out["score_purchase_timing_ratio"] is None  # both dated orders on one day: no gap
