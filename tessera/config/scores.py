"""The catalog of the score library: each score's name, the semantic fields it needs and the
columns it adds. The configuration checks read it; :mod:`tessera.enrich.scores` computes them."""

from __future__ import annotations

import difflib
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

#: ``scores.settings``: the thresholds of the library scores, with their defaults (docs/scores.md).
SCORE_SETTINGS: dict[str, float] = {
    "active_days": 365, "new_customer_days": 90, "regular_min_orders": 3, "timing_upcoming": 0.8,
    "timing_overdue": 1.2, "timing_significantly_overdue": 2.0, "session_gap_minutes": 30,
    "abandoned_cart_hours": 24,
}

#: ``scores.predictive_settings`` with their defaults (docs/scores.md).
PREDICTIVE_SETTINGS: dict[str, float | str] = {
    "horizon_days": 90, "clv_months": 12, "discount_rate_monthly": 0.01, "min_repeat_customers": 200,
    "next_order_within_days": 365, "model": "mbgnbd",
}

#: ``predictive_settings.model``: the purchase-frequency models (tessera.enrich.predictive).
PREDICTIVE_MODELS = {"mbgnbd": "MBG/NBD (default)", "bgnbd": "BG/NBD (every one-time buyer counted as alive)"}

PREDICTIVE_COLUMNS = (
    "score_probability_alive", "score_churn_risk", "score_expected_purchases_{horizon}d", "score_predicted_clv",
    "score_days_to_next_order", "score_next_order_date",
)


def scores_problems(where: str, scores) -> list[str]:
    """Unknown score names and settings, and settings out of range, of one dataset's ``scores``
    (``where``: its path in the configuration)."""
    problems = []
    for j, name in enumerate(scores.library):
        if name not in LIBRARY:
            problems.append(f"{where}.library[{j}]: unknown score '{name}'{_hint(name, LIBRARY)} "
                            f"(the library: {', '.join(LIBRARY)})")
    for key, known in (("settings", SCORE_SETTINGS), ("predictive_settings", PREDICTIVE_SETTINGS)):
        for name, value in getattr(scores, key).items():
            if name not in known:
                problems.append(f"{where}.{key}.{name}: unknown setting{_hint(name, known)} "
                                f"(known: {', '.join(known)})")
            elif key == "predictive_settings" and name == "model":
                if value not in PREDICTIVE_MODELS:
                    problems.append(f"{where}.{key}.model: unknown model '{value}'"
                                    f"{_hint(str(value), PREDICTIVE_MODELS)} (known: {', '.join(PREDICTIVE_MODELS)})")
            elif value < 0 or (value == 0 and name != "discount_rate_monthly"):
                problems.append(f"{where}.{key}.{name}: {value} must be above 0")
    return problems


def _hint(name: str, names) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.7)
    return f"; did you mean '{close[0]}'?" if close else ""
