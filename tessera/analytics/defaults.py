"""The seven default dashboards, written over roles and semantic fields rather than names.

``{customers}``, ``{orders}``, ``{items}``, ``{products}`` and ``{events}`` are the workspace's
datasets found by their fields (:func:`roles`); ``@OrderDate`` is the column whose semantic field is
OrderDate; ``score_*`` columns come from the score library. A dashboard on a workspace without a
role's dataset shows, in place of each chart that needs it, what is missing.
"""

from __future__ import annotations

from typing import Any

from tessera.analytics.question import _orders_dataset, customer_dataset
from tessera.config.models import DashboardConfig, WorkspaceConfig
from tessera.segments.related import _semantics, links_to

ROLES = {
    "customers": "dataset of customers (deduplicate: true)",
    "orders": "dataset of orders (a column with semantic: OrderDate, linked to the customers)",
    "items": "dataset of order lines (a column with semantic: Quantity, linked to the orders)",
    "products": "dataset of products (a column with semantic: ProductCategory)",
    "events": "dataset of events (a column with semantic: EventName)",
}


def roles(config: WorkspaceConfig) -> dict[str, str | None]:
    """The dataset playing each role of the default dashboards (None when the workspace has none)."""
    cust = customer_dataset(config)
    orders = _orders_dataset(config, cust.name if cust else None)
    found: dict[str, str | None] = {"customers": cust.name if cust else None, "orders": orders}
    found["items"] = next((d.name for d in config.datasets if orders and "Quantity" in _semantics(config, d.name)
                           and links_to(config, d.name, orders)), None)
    found["products"] = next((d.name for d in config.datasets
                              if "ProductCategory" in _semantics(config, d.name)), None)
    found["events"] = next((d.name for d in config.datasets if "EventName" in _semantics(config, d.name)), None)
    return found


def _q(name: str, title: str, dataset: str, measures: list[dict], dims: list[dict] | None = None,
       chart: str = "bar", **more: Any) -> dict:
    return {"name": name, "title": title, "dataset": dataset, "dimensions": dims or [], "measures": measures,
            "chart": chart, **more}


def _a(name: str, title: str, dataset: str, kind: str, chart: str = "heatmap", **options: Any) -> dict:
    """A question answered by a ready-made analysis (:mod:`tessera.analytics.analyses`)."""
    return {"name": name, "title": title, "dataset": dataset, "chart": chart, "analysis": {"kind": kind, **options}}


CUSTOMERS = {"fn": "customers", "label": "customers"}
REVENUE = {"fn": "sum", "column": "@OrderAmount", "label": "revenue"}
ORDERS = {"fn": "count", "label": "orders"}
NOT_EMPTY = "is_not_empty"

DEFAULTS: list[dict] = [
    {"name": "customer_knowledge", "title": "Customer knowledge",
     "description": "Who the customers are: how many, new or returning, age, gender, where they live, consent "
                    "and how complete their records are.",
     "questions": [
         _q("customers", "Customers", "{customers}", [
             CUSTOMERS,
             {"fn": "share", "label": "e-mail opt-in rate", "where": {"column": "@EmailOptIn", "op": "is_true"}}],
            chart="number"),
         _q("new_vs_returning", "New and returning customers", "{customers}", [CUSTOMERS],
            [{"column": "score_total_order_count", "bins": [2], "labels": ["new (one order)", "returning"],
              "empty": "no order", "label": "customer"}],
            chart="pie"),
         _q("age_bands", "Age", "{customers}", [CUSTOMERS], [{"column": "@BirthDate", "band": "age"}]),
         _q("gender", "Gender", "{customers}", [CUSTOMERS], [{"column": "@Gender", "label": "gender", "empty": "unknown"}],
            chart="pie"),
         _q("countries", "Countries", "{customers}", [CUSTOMERS], [{"column": "@Country", "label": "country"}],
            limit=15, filters=[{"column": "@Country", "op": NOT_EMPTY}]),
         _q("cities", "Cities", "{customers}", [CUSTOMERS], [{"column": "@City", "label": "city"}], limit=15,
            filters=[{"column": "@City", "op": NOT_EMPTY}]),
         _q("completeness", "Completeness of key fields", "{customers}", [
             {"fn": "share", "label": "e-mail", "optional": True, "where": {"column": "@Email", "op": NOT_EMPTY}},
             {"fn": "share", "label": "phone", "optional": True, "where": {"column": "@Phone", "op": NOT_EMPTY}},
             {"fn": "share", "label": "birth date", "optional": True, "where": {"column": "@BirthDate", "op": NOT_EMPTY}},
             {"fn": "share", "label": "city", "optional": True, "where": {"column": "@City", "op": NOT_EMPTY}}], chart="number"),
     ]},
    {"name": "sales", "title": "Sales",
     "description": "Revenue, orders, average order value and items over time; by channel and store; discounts.",
     "questions": [
         _q("sales_figures", "Sales", "{orders}", [
             REVENUE, ORDERS, {"fn": "avg", "column": "@OrderAmount", "label": "average order value"},
             {"fn": "share", "label": "discounted orders", "where": {"column": "@DiscountAmount", "op": ">",
                                                                    "value": 0}}], chart="number"),
         _q("revenue_by_month", "Revenue by month", "{orders}", [REVENUE],
            [{"column": "@OrderDate", "band": "month", "label": "month"}], chart="line"),
         _q("orders_by_month", "Orders by month", "{orders}", [ORDERS],
            [{"column": "@OrderDate", "band": "month", "label": "month"}]),
         _q("aov_by_month", "Average order value by month", "{orders}",
            [{"fn": "avg", "column": "@OrderAmount", "label": "average order value"}],
            [{"column": "@OrderDate", "band": "month", "label": "month"}], chart="line"),
         _q("items_by_month", "Items sold by month", "{items}", [{"fn": "sum", "column": "@Quantity",
                                                                   "label": "items"}],
            [{"column": "{orders}.@OrderDate", "band": "month", "label": "month"}]),
         _q("revenue_by_channel", "Revenue by channel", "{orders}", [REVENUE],
            [{"column": "@Channel", "label": "channel", "empty": "(no channel)"}]),
         _q("revenue_by_store", "Revenue by store", "{orders}", [REVENUE],
            [{"column": "@Store", "label": "store", "empty": "(no store)"}]),
         _q("discounted_by_month", "Share of discounted orders by month", "{orders}",
            [{"fn": "share", "label": "discounted orders", "where": {"column": "@DiscountAmount", "op": ">",
                                                                     "value": 0}}],
            [{"column": "@OrderDate", "band": "month", "label": "month"}], chart="line"),
     ]},
    {"name": "rfm", "title": "RFM",
     "description": "Customers and revenue per RFM segment (recency, frequency, monetary value), and how "
                    "customers moved between segments.",
     "questions": [
         _q("rfm_customers", "Customers per RFM segment", "{customers}", [CUSTOMERS],
            [{"column": "score_rfm_segment", "label": "RFM segment"}],
            filters=[{"column": "score_rfm_segment", "op": NOT_EMPTY}]),
         _q("rfm_revenue", "Revenue per RFM segment", "{customers}",
            [{"fn": "sum", "column": "score_orders_total_amount", "label": "revenue"}],
            [{"column": "score_rfm_segment", "label": "RFM segment"}],
            filters=[{"column": "score_rfm_segment", "op": NOT_EMPTY}]),
         _q("rfm_grid", "Recency and frequency", "{customers}", [CUSTOMERS],
            [{"column": "score_rfm_recency", "label": "recency (5: recent)"},
             {"column": "score_rfm_frequency", "label": "frequency (5: frequent)"}], chart="heatmap",
            filters=[{"column": "score_rfm_recency", "op": NOT_EMPTY}]),
         _q("rfm_value", "Average order value per RFM segment", "{customers}",
            [{"fn": "avg", "column": "score_average_order_value", "label": "average order value"}],
            [{"column": "score_rfm_segment", "label": "RFM segment"}],
            filters=[{"column": "score_rfm_segment", "op": NOT_EMPTY}]),
         _a("rfm_migration", "RFM segment migration", "{customers}", "rfm_migration"),
     ]},
    {"name": "retention", "title": "Purchase cycle and retention",
     "description": "Who is on time for their next order and who is slipping away; monthly cohorts.",
     "questions": [
         _q("purchase_timing", "Purchase timing", "{customers}", [CUSTOMERS],
            [{"column": "score_purchase_timing", "label": "purchase timing",
              "order": ["recent purchase", "upcoming purchase", "overdue", "significantly overdue"]}],
            filters=[{"column": "score_purchase_timing", "op": NOT_EMPTY}]),
         _q("days_between_orders", "Average days between orders", "{customers}", [CUSTOMERS],
            [{"column": "score_average_days_between_orders", "bins": [30, 60, 90, 180, 365], "label": "days"}],
            filters=[{"column": "score_average_days_between_orders", "op": NOT_EMPTY}]),
         _a("cohort_retention", "Monthly cohorts: share ordering again", "{orders}", "cohort_retention"),
         _q("churn_risk", "Churn risk", "{customers}", [CUSTOMERS],
            [{"column": "score_churn_risk", "bins": [0.25, 0.5, 0.75], "label": "churn risk"}],
            filters=[{"column": "score_churn_risk", "op": NOT_EMPTY}]),
     ]},
    {"name": "stores", "title": "Stores",
     "description": "Revenue and customers per store; omnichannel and multi-store customers by favorite store.",
     "questions": [
         _q("store_figures", "Revenue, orders and customers per store", "{orders}",
            [REVENUE, ORDERS, CUSTOMERS], [{"column": "@Store", "label": "store"}], chart="table",
            filters=[{"column": "@Store", "op": NOT_EMPTY}]),
         _q("store_revenue", "Revenue per store", "{orders}", [REVENUE], [{"column": "@Store", "label": "store"}],
            filters=[{"column": "@Store", "op": NOT_EMPTY}]),
         _q("store_shares", "Omnichannel and multi-store customers by favorite store", "{customers}", [
             {"fn": "share", "label": "omnichannel", "where": {"column": "score_omnichannel", "op": "is_true"}},
             {"fn": "share", "label": "multi-store", "where": {"column": "score_multi_store", "op": "is_true"}}],
            [{"column": "score_favorite_store", "label": "favorite store"}],
            filters=[{"column": "score_favorite_store", "op": NOT_EMPTY}]),
     ]},
    {"name": "products", "title": "Products and categories",
     "description": "Top categories and products, how many categories customers buy, and the categories "
                    "bought together.",
     "questions": [
         _q("top_categories", "Top categories", "{items}", [
             {"fn": "sum", "column": "@Quantity", "label": "items"},
             {"fn": "count", "label": "order lines"}],
            [{"column": "{products}.@ProductCategory", "label": "category"}], limit=20),
         _q("top_products", "Top products", "{items}", [{"fn": "sum", "column": "@Quantity", "label": "items"}],
            [{"column": "{products}.@ProductName", "label": "product"}], limit=20),
         _q("multi_category", "Multi-category customers", "{customers}", [
             {"fn": "share", "label": "multi-category", "where": {"column": "score_multi_category",
                                                                   "op": "is_true"}}], chart="number"),
         _q("category_count", "Customers by number of categories bought", "{customers}", [CUSTOMERS],
            [{"column": "score_category_count", "label": "categories bought"}],
            filters=[{"column": "score_category_count", "op": NOT_EMPTY}]),
         _a("categories_together", "Categories bought together", "{items}", "categories_together", chart="table"),
     ]},
    {"name": "engagement", "title": "Engagement and campaigns",
     "description": "E-mail opens and clicks, site activity and abandoned carts, from the collected events.",
     "requires": "events",
     "questions": [
         _q("events_by_month", "Events by month", "{events}", [{"fn": "count", "label": "events"}],
            [{"column": "@EventTime", "band": "month", "label": "month"}, {"column": "@EventName", "label": "event"}],
            chart="stacked_bar"),
         _q("engagement_figures", "Engagement in the last 30 days", "{customers}", [
             {"fn": "sum", "column": "score_email_opens_30d", "label": "e-mail opens"},
             {"fn": "sum", "column": "score_email_clicks_30d", "label": "e-mail clicks"},
             {"fn": "sum", "column": "score_page_views_30d", "label": "page views"},
             {"fn": "sum", "column": "score_abandoned_carts_30d", "label": "abandoned carts"}], chart="number"),
         _q("engagement_score", "Engagement score", "{customers}", [CUSTOMERS],
            [{"column": "score_engagement", "bins": [20, 40, 60, 80], "label": "engagement"}],
            filters=[{"column": "score_engagement", "op": NOT_EMPTY}]),
     ]},
]

NAMES = [d["name"] for d in DEFAULTS]


def _fill(value: Any, found: dict[str, str | None], missing: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, found, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, found, missing) for v in value]
    if isinstance(value, str) and "{" in value:
        for role, name in found.items():
            token = "{" + role + "}"
            if token in value:
                if name is None:
                    missing.add(role)
                    name = f"no_{role}"
                value = value.replace(token, name)
    return value


def default_dashboards(config: WorkspaceConfig) -> list[tuple[DashboardConfig, dict[str, str]]]:
    """The default dashboards for this workspace, each with, per question, the role it lacks
    (``{question: "a dataset of orders (...)"}``)."""
    found = roles(config)
    out = []
    for spec in DEFAULTS:
        lacking: dict[str, str] = {}
        questions = []
        spec = dict(spec)
        requires = spec.pop("requires", None)
        for q in spec["questions"]:
            missing: set[str] = {requires} if requires and found.get(requires) is None else set()
            questions.append(_fill(q, found, missing))
            if missing:
                lacking[q["name"]] = "this workspace has no " + " and no ".join(ROLES[r] for r in sorted(missing))
        out.append((DashboardConfig.model_validate({**spec, "questions": questions}), lacking))
    return out
