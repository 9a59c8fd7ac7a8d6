"""Analytics: questions (a dataset, up to two dimensions, measures, filters, a chart) compiled to
one grouped query in the engine, the seven default dashboards and the workspace's own."""

from tessera.analytics.charts import render, spec
from tessera.analytics.dashboards import Analytics, dashboard_problems, parse_filters, validate_question
from tessera.analytics.defaults import DEFAULTS, NAMES, default_dashboards, roles
from tessera.analytics.question import Filters, Plan, Source, Unavailable, plan

__all__ = [
           "DEFAULTS",
           "NAMES",
           "Analytics",
           "Filters",
           "Plan",
           "Source",
           "Unavailable",
           "dashboard_problems",
           "default_dashboards",
           "parse_filters",
           "plan",
           "render",
           "roles",
           "spec",
           "validate_question",
]
