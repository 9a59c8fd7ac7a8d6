"""The enrichment step of a run: aggregates, library scores and predictive scores per dataset.

It runs after every dataset of the run is unified, so a dataset can aggregate any other one
(contacts from their orders, orders from their items). The new columns are joined to the
unified table on ``tessera_id`` and the result replaces it before publication.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pyarrow as pa

from tessera.config.models import DatasetConfig, WorkspaceConfig
from tessera.datasets.build import (
    Built,
    ColumnSpec,
    add_computed,
    create_computed,
    first_failing,
    duckdb_types,
    enriched,
    link_name,
    relation_target,
    value_error,
)
from tessera.engine.base import EngineAdapter
from tessera.enrich.aggregates import Aggregate, aggregate
from tessera.enrich.engagement import ZERO_WHEN_NO_EVENTS, compute_engagement
from tessera.enrich.scores import EVENT_SCORES, LIBRARY, compute_scores, missing_fields, score_settings
from tessera.errors import ConfigError
from tessera.normalize.semantic import suggest_semantic
from tessera.sqlcheck import check_expression

TID = "tessera_id"


def _semantic(built: Built) -> dict[str, str]:
    """Semantic field -> column of a built dataset (first column wins)."""
    out: dict[str, str] = {}
    for c in built.columns:
        if c.semantic and c.semantic not in out:
            out[c.semantic] = c.name
    return out


def _links_to(config: WorkspaceConfig, source_ds: DatasetConfig, target: str) -> str | None:
    """The column of ``source_ds`` that holds the unified id of a ``target`` record."""
    sources = {s.name: s for s in config.sources}
    for m in source_ds.mappings:
        for rel in sources[m.source].relations:
            if relation_target(config, rel)[2] == target:
                return link_name(config, rel)
    return None


def _related_orders(config: WorkspaceConfig, ds: DatasetConfig, built: dict[str, Built]) -> str | None:
    """The dataset of orders linked to ``ds``: it has an OrderDate field and a link to ``ds``."""
    for other in config.datasets:
        if other.name in built and "OrderDate" in _semantic(built[other.name]) and _links_to(config, other, ds.name):
            return other.name
    return None


def _related_events(config: WorkspaceConfig, ds: DatasetConfig, built: dict[str, Built]) -> str | None:
    """The dataset of events linked to ``ds``: it has an EventTime field and a link to ``ds``."""
    for other in config.datasets:
        if other.name in built and "EventTime" in _semantic(built[other.name]) and _links_to(config, other, ds.name):
            return other.name
    return None


class Enricher:
    def __init__(self, adapter: EngineAdapter, config: WorkspaceConfig, built: dict[str, Built], tag: str,
                 as_of: date):
        self.adapter = adapter
        self.config = config
        self.built = built
        self.tag = tag
        self.as_of = as_of
        self.by_name = {d.name: d for d in config.datasets}
        # The computed columns of a dataset that is not enriched are already in its table: their
        # semantic fields count for the scores of the datasets related to it.
        for name, b in built.items():
            d = self.by_name.get(name)
            if d is not None and d.computed and not enriched(d):
                have = {c.name for c in b.columns}
                b.columns = [*b.columns, *[
                    ColumnSpec(c.name, c.type or "string", c.semantic or suggest_semantic(c.name), "most_recent", [])
                    for c in d.computed if c.name not in have]]

    def enrich(self, ds: DatasetConfig) -> dict:
        """Add the dataset's enrichment columns; return counts for the run summary."""
        base = self.adapter.table(self.built[ds.name].table)
        parts: list[ibis.Table] = []
        counts: dict = {}
        place = f"datasets[{self.config.datasets.index(ds)}] ({ds.name})"
        filters: list = []  # aggregate filters, to name the one the engine cannot compute
        by_source: dict[str, list] = {}
        for i, a in enumerate(ds.aggregates):
            by_source.setdefault(a.from_, []).append((i, a))
        for rel_name, items in by_source.items():
            rel_built = self.built[rel_name]
            rel = self.adapter.table(rel_built.table)
            link = _links_to(self.config, self.by_name[rel_name], ds.name)
            if link is None:
                raise ConfigError(f"dataset '{ds.name}': aggregates from '{rel_name}' need a relation from "
                                  f"'{rel_name}' to '{ds.name}' (e.g. orders.customer_email -> {ds.name}.email)")
            # Filters are checked SQL over the related dataset, added as boolean columns.
            conds = []
            for i, a in items:
                if a.filter:
                    where = f"datasets[{ds.name}].aggregates[{i}] ({a.name})"
                    expr = check_expression(a.filter, set(rel.columns), where=where)
                    conds.append((f"_cond{i}", self.adapter.dialect.render(expr)))
            if conds:
                rel = self.adapter.add_sql_columns(rel, conds)
                filters += [(f"Dataset '{ds.name}', aggregate '{a.name}'", f"{place}.aggregates[{i}] ({a.name}).filter",
                             a.filter, rel, f"_cond{i}") for i, a in items if a.filter]
            aggs = []
            for i, a in items:
                where = f"datasets[{ds.name}].aggregates[{i}] ({a.name})"
                cond = rel[f"_cond{i}"] if a.filter else None
                date_col = a.date_column or _semantic(rel_built).get("OrderDate")
                start, end = (a.between or (None, None))
                if (a.last or a.between) and not date_col:
                    raise ConfigError(f"{where}: a time window needs date_column (no OrderDate field in '{rel_name}')")
                aggs.append((Aggregate(a.name, a.function, a.column, date_col, last=a.last, unit=a.unit,
                                       start=start, end=end), cond))
            parts.append(aggregate(rel, link, aggs, as_of=self.as_of).rename(**{TID: "_customer"}))
            counts["aggregates"] = counts.get("aggregates", 0) + len(items)
        if ds.scores and ds.scores.library:
            parts += self._scores(ds)
            counts["scores"] = len(ds.scores.library)
        if ds.scores and ds.scores.predictive:
            from tessera.enrich.predictive import PredictiveError  # lazy: loads SciPy, heavy

            try:
                parts.append(self._predictive(ds))
                counts["predictive"] = "fitted"
            except PredictiveError as exc:
                # Too little history or a fit that does not converge: no predictive columns this
                # run (never nonsense), and the reason in the run summary.
                counts["predictive"] = f"skipped: {exc}"
        out = base
        for p in parts:
            out = out.left_join(p, TID).drop(f"{TID}_right")
        # A customer without related rows has counted zero of them.
        counted = {a.name: out[a.name].fill_null(0) for a in ds.aggregates if a.function in ("count", "count_distinct")}
        if ds.scores and "engagement" in ds.scores.library:
            counted.update({c: out[c].fill_null(0) for c in ZERO_WHEN_NO_EVENTS})
        if counted:
            out = out.mutate(**counted)
        name = f"{self.tag}{ds.name}__enriched"
        try:
            # the published rows (pages, filters and segments read them), from the related rows
            # each part reads again (engine/base.py: shared_parts_recomputed)
            with self.adapter.read_often(), self.adapter.shared_parts_recomputed():
                if ds.computed:
                    # Computed columns may use the new columns: they come last (see datasets.build.enriched).
                    types = duckdb_types(self.adapter, out, ds)
                    create_computed(self.adapter, name, out, add_computed(self.adapter, out, ds, types)[0], ds,
                                    place, types)
                else:
                    self.adapter.create_table(name, out)
        except Exception as exc:
            failure = first_failing(self.adapter, filters) if filters and value_error(self.adapter, exc) else None
            if failure is None:
                raise
            raise failure from exc
        self.built[ds.name].table = name
        return counts

    # ---------------------------------------------------------------- scores
    def _orders(self, ds: DatasetConfig) -> tuple[ibis.Table, dict[str, str], str]:
        orders_name = (ds.scores.orders if ds.scores else None) or _related_orders(self.config, ds, self.built)
        if orders_name is None or orders_name not in self.built:
            raise ConfigError(f"dataset '{ds.name}': scores need an orders dataset with an OrderDate field and a "
                              f"relation to '{ds.name}'; set scores.orders")
        ob = self.built[orders_name]
        link = _links_to(self.config, self.by_name[orders_name], ds.name)
        if link is None:
            raise ConfigError(f"dataset '{ds.name}': orders dataset '{orders_name}' has no relation to it")
        o = self.adapter.table(ob.table)
        o = o.mutate(_customer=o[link], _order=o[TID]).filter(ibis._["_customer"].notnull())
        return o, _semantic(ob), orders_name

    def _scores(self, ds: DatasetConfig) -> list[ibis.Table]:
        """The library scores of ``ds``: one table per input (orders, events), keyed by ``_customer``."""
        unknown = [s for s in ds.scores.library if s not in LIBRARY]
        if unknown:
            raise ConfigError(f"dataset '{ds.name}': unknown score(s) {', '.join(unknown)} "
                              f"(library: {', '.join(LIBRARY)}; see docs/scores.md)")
        settings = score_settings(ds.scores.settings, f"dataset '{ds.name}'")
        out = []
        if any(s not in EVENT_SCORES for s in ds.scores.library):
            out.append(self._order_scores(ds, [s for s in ds.scores.library if s not in EVENT_SCORES], settings))
        if "engagement" in ds.scores.library:
            out.append(self._engagement(ds, settings))
        return out

    def _engagement(self, ds: DatasetConfig, settings) -> ibis.Table:
        events_name = _related_events(self.config, ds, self.built)
        if events_name is None:
            raise ConfigError(f"dataset '{ds.name}': the engagement score needs an events dataset with an EventTime "
                              f"field (e.g. a column 'timestamp') and a relation to '{ds.name}' (e.g. "
                              f"web_events.user_id -> {ds.name}.customer_id)")
        eb = self.built[events_name]
        fields = _semantic(eb)
        missing = missing_fields("engagement", set(), set(), set(fields))
        if missing:
            raise ConfigError(f"dataset '{ds.name}': score 'engagement' needs the semantic field(s) "
                              f"{', '.join(missing)}; set them on the columns of dataset '{events_name}' "
                              "(e.g. {name: event, semantic: EventName})")
        link = _links_to(self.config, self.by_name[events_name], ds.name)
        ev = self.adapter.table(eb.table)
        ev = ev.mutate(_customer=ev[link])
        orders = None
        orders_name = ds.scores.orders or _related_orders(self.config, ds, self.built)
        if orders_name in self.built and _links_to(self.config, self.by_name[orders_name], ds.name):
            ob = self.built[orders_name]
            day = _semantic(ob).get("OrderDate")
            if day:
                o = self.adapter.table(ob.table)
                start = o[day].cast("timestamp")
                # An order known by its day only may have been placed at any time of that day.
                end = start + ibis.interval(days=1) if o[day].type().is_date() else start
                orders = o.select(_customer=o[_links_to(self.config, self.by_name[orders_name], ds.name)],
                                  _start=start, _end=end)
        out = compute_engagement(ev, fields, as_of=self.as_of, session_gap_minutes=settings.session_gap_minutes,
                                 abandoned_cart_hours=settings.abandoned_cart_hours, orders=orders)
        return out.rename(**{TID: "_customer"})

    def _order_scores(self, ds: DatasetConfig, library: list[str], settings) -> ibis.Table:
        o, fields, orders_name = self._orders(ds)
        items = item_fields = None
        items_name = ds.scores.order_items or next(
            (d.name for d in self.config.datasets
             if d.name in self.built and _links_to(self.config, d, orders_name)
             and ({"Quantity", "ProductCategory"} & set(_semantic(self.built[d.name])))), None)
        if items_name:
            ib = self.built[items_name]
            link = _links_to(self.config, self.by_name[items_name], orders_name)
            items = self.adapter.table(ib.table)
            items = items.mutate(_order=items[link])
            item_fields = _semantic(ib)
            items, item_fields = self._categories_via_products(items_name, items, item_fields)
        return compute_scores(o, fields, library, as_of=self.as_of, items=items,
                              item_fields=item_fields, settings=settings).rename(**{TID: "_customer"})

    def _categories_via_products(self, items_name: str, items: ibis.Table, fields: dict[str, str]):
        """Order lines that point at a products dataset get its ProductCategory (lines with a
        category of their own keep it: e-shop lines carry one, point-of-sale lines a SKU only)."""
        for d in self.config.datasets:
            if d.name in self.built and "ProductCategory" in _semantic(self.built[d.name]):
                link = _links_to(self.config, self.by_name[items_name], d.name)
                if link:
                    prod = self.adapter.table(self.built[d.name].table)
                    cat = _semantic(self.built[d.name])["ProductCategory"]
                    lookup = prod.select(_pid=prod[TID], _category=prod[cat])
                    items = items.left_join(lookup, items[link] == lookup._pid).drop("_pid")
                    if "ProductCategory" in fields:
                        own = items[fields["ProductCategory"]].cast("string")
                        items = items.mutate(_category=own.coalesce(items._category.cast("string")))
                    return items, {**fields, "ProductCategory": "_category"}
        return items, fields

    # ---------------------------------------------------------------- predictive
    def _predictive(self, ds: DatasetConfig) -> ibis.Table:
        # lazy: loads SciPy, heavy
        from tessera.enrich.predictive import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel

        o, fields, _ = self._orders(ds)
        if "OrderAmount" not in fields:
            raise ConfigError(f"dataset '{ds.name}': predictive scores need an OrderAmount field on the orders")
        day = o[fields["OrderDate"]].cast("date")
        per_day = o.mutate(_day=day, _amount=o[fields["OrderAmount"]].cast("float64")).group_by(
            ["_customer", "_day"]).agg(_amount=ibis._["_amount"].sum())
        as_of = ibis.literal(self.as_of, dt.date)
        first = per_day._day.min().over(group_by="_customer")
        per_day = per_day.mutate(_first=first)
        # A customer's summary (one row per customer) is computed in the engine.
        summary = per_day.group_by("_customer").agg(
            frequency=(per_day._day.nunique() - 1).cast("float64"),
            recency=per_day._day.max().delta(per_day._day.min(), unit="day").cast("float64"),
            T=as_of.delta(per_day._day.min(), unit="day").cast("float64"),
            monetary=per_day._amount.mean(where=per_day._day > per_day._first),
        )
        # In id order: the fit sees the same input whatever order the engine returns rows in.
        arrow = self.adapter.to_arrow(summary.order_by("_customer"))
        x = arrow.column("frequency").to_numpy()
        t_x = arrow.column("recency").to_numpy()
        T = arrow.column("T").to_numpy()
        m = arrow.column("monetary").to_numpy(zero_copy_only=False).astype(float)
        settings = ds.scores.predictive_settings
        model = BetaGeoModel if settings.get("model") == "bgnbd" else ModifiedBetaGeoModel
        bg = model(time_unit_days=1, min_repeat_customers=int(settings.get("min_repeat_customers", 200)))
        bg.fit(x, t_x, T)
        horizon = float(settings.get("horizon_days", 90))
        alive = bg.probability_alive(x, t_x, T)
        expected = bg.expected_purchases(horizon, x, t_x, T)
        next_days = bg.expected_next_purchase_days(x, t_x, T)
        gg = GammaGammaModel()
        m_safe = np.where(np.isfinite(m) & (m > 0), m, 0.0)
        gg.fit(x, m_safe)
        clv = gg.customer_lifetime_value(bg, x, t_x, T, m_safe, months=int(settings.get("clv_months", 12)),
                                         discount_rate_monthly=float(settings.get("discount_rate_monthly", 0.01)))
        # A median beyond the window is no date to plan for: "not expected" (NULL) instead.
        within = float(settings.get("next_order_within_days", 365))
        next_date = np.where(np.isfinite(next_days) & (next_days <= within), next_days, np.nan)
        # Dates are added here, once, so that every engine publishes the same day.
        finite = np.isfinite(next_date)
        as_of_day = np.datetime64(self.as_of, "D")
        next_day = as_of_day + np.round(np.where(finite, next_date, 0)).astype("timedelta64[D]")
        table = pa.table({
            TID: arrow.column("_customer"),
            "score_probability_alive": pa.array(np.round(alive, 4)),
            "score_churn_risk": pa.array(np.round(1 - alive, 4)),
            f"score_expected_purchases_{int(horizon)}d": pa.array(np.round(expected, 4)),
            "score_predicted_clv": pa.array(np.round(clv, 2)),
            "score_days_to_next_order": pa.array(np.round(next_date, 1), mask=~finite),
            "score_next_order_date": pa.array(next_day, pa.date32(), mask=~finite),
        })
        return self.adapter.create_table(f"{self.tag}{ds.name}__predictive", table, temp=True)

