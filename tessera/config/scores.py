"""The catalog of the score library: each score's name, the semantic fields it needs and the
columns it adds. The configuration checks read it; :mod:`tessera.enrich.scores` computes them."""

from __future__ import annotations

from dataclasses import dataclass

EVENTS = "events: "  # prefix of the semantic fields a score needs on the events dataset


@dataclass
class ScoreDef:
    name: str
    needs: tuple[str, ...]  # semantic fields of the orders (items: prefixed "item:", events: EVENTS)
    columns: tuple[str, ...]  # output columns
    description: str


LIBRARY: dict[str, ScoreDef] = {d.name: d for d in [
    ScoreDef("rfm", ("OrderDate", "OrderAmount"),
             ("score_rfm_recency", "score_rfm_frequency", "score_rfm_monetary", "score_rfm", "score_rfm_segment"),
             "Recency, frequency and monetary scores 1-5 by quintile (ties share a score) and a named segment."),
    ScoreDef("purchase_timing", ("OrderDate",),
             ("score_purchase_timing_ratio", "score_purchase_timing"),
             "Days since the last order over the customer's average days between orders, as a status."),
    ScoreDef("order_stats", ("OrderDate", "OrderAmount"),
             ("score_first_order_date", "score_last_order_date", "score_days_since_last_order",
              "score_total_order_count", "score_orders_total_amount", "score_average_order_value",
              "score_average_days_between_orders", "score_multi_buyer", "score_new_customer",
              "score_regular_customer", "score_active_customer"),
             "Order counts, amounts and dates; multi-buyer, new, regular and active customer flags."),
    ScoreDef("discounts", ("OrderAmount", "DiscountAmount"),
             ("score_discounted_order_count", "score_discounted_order_rate", "score_average_discount_rate"),
             "How often and how much the customer buys with a discount."),
    ScoreDef("stores", ("OrderDate", "Store"),
             ("score_favorite_store", "score_stores", "score_store_count", "score_first_order_store",
              "score_last_order_store", "score_multi_store"),
             "Where the customer buys: favorite, all, first and last store."),
    ScoreDef("channels", ("OrderDate", "Channel"),
             ("score_favorite_channel", "score_omnichannel"),
             "The customer's favorite channel and whether they buy on several."),
    ScoreDef("categories", ("item:ProductCategory",),
             ("score_categories", "score_top3_categories", "score_category_count", "score_multi_category"),
             "Ordered product categories: all, top 3, count, multi-category flag."),
    ScoreDef("items", ("item:Quantity",),
             ("score_total_items", "score_average_items_per_order"),
             "Items bought in all and per order."),
    ScoreDef("engagement", (f"{EVENTS}EventTime", f"{EVENTS}EventName"),
             ("score_last_seen", "score_page_views_30d", "score_sessions_30d", "score_email_opens_30d",
              "score_email_clicks_30d", "score_abandoned_carts_30d", "score_engagement"),
             "From the customer's events: last seen, page views, sessions, email opens and clicks, "
             "abandoned carts in the last 30 days, and an engagement score 0-100."),
]}

#: Library scores computed from the events dataset rather than the orders.
EVENT_SCORES = ("engagement",)

PREDICTIVE_COLUMNS = (
    "score_probability_alive", "score_churn_risk", "score_expected_purchases_{horizon}d", "score_predicted_clv",
    "score_days_to_next_order", "score_next_order_date",
)
