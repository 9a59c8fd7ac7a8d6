"""Dashboards: the seven defaults and the workspace's own, their questions run with the filters a
viewer sets, results cached by publication version, CSV streamed, pictures drawn on the server."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import threading
import uuid
from collections import OrderedDict
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from tessera.analytics import facts as order_facts
from tessera.analytics import prepared
from tessera.analytics.analyses import plan_analysis, prepare_rfm_segments
from tessera.analytics.charts import CHART_ROWS, column_dict, render, spec
from tessera.analytics.defaults import DEFAULTS, NAMES, default_dashboards, roles
from tessera.analytics.question import Filters, Plan, Source, Unavailable, plan
from tessera.config.models import DashboardConfig, QuestionConfig
from tessera.config.versions import spec_version
from tessera.errors import ConfigError, NotFoundError, TesseraError, UsageError
from tessera.segments import SIZES
from tessera.segments.compile import shift
from tessera.segments.related import _semantics

log = logging.getLogger(__name__)

_CACHE: OrderedDict[tuple, dict] = OrderedDict()
_CACHE_SIZE = 512
_LOCK = threading.Lock()


def forget_results(store=None, adapter=None) -> None:
    """Drop every cached chart result, and the results prepared at publication when ``store`` is
    given, and the order facts of the warehouse when ``adapter`` is (after an erase: no chart may
    still count the customer, no table hold their columns)."""
    with _LOCK:
        _CACHE.clear()
    prepared.forget(store)
    if adapter is not None:
        order_facts.drop(adapter)
        for name in adapter.list_tables():  # a view's work tables left by a process that stopped
            if name.startswith(WORK):
                adapter.drop_table(name)


#: the prefix of the work tables of one dashboard view (see :meth:`Analytics.run_dashboard`)
WORK = "_tessera_analytics_work_"

_PERIOD = re.compile(r"^last_(\d+)_(days|weeks|months|years)$")


# --------------------------------------------------------------------------- filters


def parse_filters(values: dict[str, Any] | None, as_of: date) -> Filters:
    """Dashboard filter values from a request: ``period`` (``2024-01-01..2024-12-31``, ``..2024-06-30``,
    ``last_90_days``, ``last_12_months``, or ``{from, to}``), ``store`` and ``channel`` (a list or
    comma-separated text), ``segment`` (a name).

    Raises:
        UsageError: a value that is not understood, naming the filter and the expected form.
    """
    values = {k: v for k, v in (values or {}).items() if v not in (None, "", [])}
    unknown = sorted(set(values) - {"period", "store", "channel", "segment"})
    if unknown:
        raise UsageError(f"unknown dashboard filter(s) {', '.join(unknown)}: use period, store, channel, segment")
    f = Filters()
    period = values.get("period")
    if isinstance(period, dict):
        lo, hi = period.get("from"), period.get("to")
    elif isinstance(period, str):
        m = _PERIOD.match(period.strip())
        if m:
            lo, hi = shift(as_of, int(m.group(1)), m.group(2)).isoformat(), as_of.isoformat()
        elif ".." in period:
            lo, hi = period.split("..", 1)
        else:
            raise UsageError(f"filter period: '{period}' is not a period; write 2024-01-01..2024-12-31, "
                             "..2024-06-30, last_90_days or last_12_months")
    else:
        lo = hi = None
    try:
        f.date_from = date.fromisoformat(str(lo).strip()) if lo else None
        f.date_to = date.fromisoformat(str(hi).strip()) if hi else None
    except ValueError:
        raise UsageError(f"filter period: '{lo}..{hi}' holds a date that is not YYYY-MM-DD") from None
    if f.date_from and f.date_to and f.date_from > f.date_to:
        raise UsageError(f"filter period: it starts ({f.date_from}) after it ends ({f.date_to})")
    for name in ("store", "channel"):
        v = values.get(name)
        items = [x.strip() for x in v.split(",")] if isinstance(v, str) else [str(x) for x in (v or [])]
        setattr(f, name + "s", [x for x in items if x])
    if values.get("segment"):
        f.segment = str(values["segment"])
    return f


# --------------------------------------------------------------------------- the dashboards


def dashboard_problems(config) -> list[str]:
    """Problems of the workspace's dashboards found without running them (at apply): names taken
    twice or by a default dashboard, unknown datasets and segments."""
    problems: list[str] = []
    names = [d.name for d in config.dashboards]
    datasets = {d.name for d in config.datasets}
    segments = {s.name for s in config.segments}
    for i, d in enumerate(config.dashboards):
        where = f"dashboards[{i}] ({d.name})"
        if d.name in NAMES:
            problems.append(f"{where}.name: '{d.name}' is a default dashboard; give yours another name")
        elif names.index(d.name) != i:
            problems.append(f"{where}.name: dashboard '{d.name}' is declared more than once")
        qnames = [q.name for q in d.questions]
        for j, q in enumerate(d.questions):
            qw = f"{where}.questions[{j}] ({q.name})"
            if qnames.index(q.name) != j:
                problems.append(f"{qw}.name: question '{q.name}' is declared more than once in this dashboard")
            if q.dataset not in datasets:
                problems.append(f"{qw}.dataset: unknown dataset '{q.dataset}' (datasets: "
                                f"{', '.join(sorted(datasets)) or 'none'})")
            for k, dim in enumerate(q.dimensions):
                if dim.segment and dim.segment not in segments:
                    problems.append(f"{qw}.dimensions[{k}].segment: unknown segment '{dim.segment}' (segments: "
                                    f"{', '.join(sorted(segments)) or 'none'})")
    return problems


class Analytics:
    """The dashboards of one workspace, read through ``source`` (see :class:`Source`)."""

    def __init__(self, source: Source, workspace_key: str, store=None):
        self.src = source
        self.key = workspace_key
        self.store = store  # the metadata store, where the results prepared at publication are kept
        self._published: dict[str, Any] = {}
        self._segments_version: Any = None
        self._publications: int | None = None
        self._facts: dict | None = None  # dataset -> description of its facts table (facts.build)
        self._facts_tables: dict[str, Any] = {}
        if source.facts is None:
            source.facts = self._facts_table
        self._work: dict[tuple, tuple[str, Any]] | None = None  # key -> (name, table) while a view runs
        self._planning: dict[tuple, set[str] | None] | None = None  # key -> columns, while planned
        self._wanted: dict[tuple, set[str] | None] = {}  # key -> the columns the view's questions read
        self._uses: dict[tuple, int] = {}  # key -> how many of the view's questions read it

    def _once(self, key: tuple, expr, columns: set[str] | None = None):
        """``expr`` computed once into a work table for the dashboard view that runs (the rows its
        filters keep, read by each of its questions), with the columns its questions read (found
        by planning them first); ``expr`` itself outside a view, for a question that reads a
        column the table lacks, or when the engine refuses the table (each question then
        computes it, as outside a view). A set only one of the view's questions reads is not
        copied: the copy would cost what that question's own query costs."""
        if self._work is None:
            return expr
        if self._planning is not None:  # the first pass: what each set's questions read
            self._uses[key] = self._uses.get(key, 0) + 1
            if columns is None or (key in self._planning and self._planning[key] is None):
                self._planning[key] = None
            else:
                self._planning.setdefault(key, set()).update(columns)
            return expr
        if key not in self._work and self._uses.get(key, 0) < 2:
            return expr  # read by one question only: a copy would cost that question's own query
        if key not in self._work:
            wanted = self._wanted.get(key)
            if wanted is not None:
                expr_cols = [c for c in expr.columns if c in wanted or c == "tessera_id"]
                made = expr.select(*expr_cols)
            else:
                made = expr
            name = WORK + uuid.uuid4().hex[:16]
            try:
                self._work[key] = (name, self.src.adapter.create_table(name, made, temp=True))
            except TesseraError as exc:
                log.warning("dashboard filters computed per question: the work table was refused (%s)", exc)
                self._work[key] = (None, expr)
        table = self._work[key][1]
        have = set(table.columns)
        if not ((set(expr.columns) if columns is None else set(columns) & set(expr.columns)) <= have):
            return expr
        return table

    def _facts_table(self, dataset: str):
        """The order facts of ``dataset`` built for the current publications, or None."""
        if self._facts is None:
            bundle = self._prepared() if self.store is not None else {}
            self._facts = (bundle.get("facts") or {}) if bundle.get("stamp") == self._stamp() else {}
        if dataset not in self._facts_tables:
            self._facts_tables[dataset] = order_facts.table(self.src.adapter, self._facts.get(dataset))
        return self._facts_tables[dataset]

    def _published_target(self, dataset: str) -> Any:
        if dataset not in self._published:
            self._published[dataset] = self.src.adapter.published_target(dataset)
        return self._published[dataset]

    def _publication_count(self) -> int:
        """The publications the store recorded: an incremental run patches the published tables in
        place (the same names) and records one more."""
        if self._publications is None:
            self._publications = self.store.read_state()[1] if self.store is not None else 0
        return self._publications

    def _all_versions(self) -> tuple:
        """Every publication a question may read, and the last segment refresh: the key of a
        result looked up before its query is even planned."""
        return (tuple(self._published_target(d.name) for d in self.src.config.datasets), self._publication_count(),
                self._segment_refresh())

    def _stamp(self) -> str:
        """The publications and ``as_of`` the prepared results must have been computed on."""
        return prepared.digest(self.src.as_of, self._all_versions())

    def _prepared(self) -> dict:
        return prepared.load(self.store, self.key, self._stamp())

    def needs_preparing(self) -> bool:
        """Whether :meth:`prepare` has work: the workspace is large enough and the kept results are
        not of the current publications."""
        return (self._prepared().get("stamp") != self._stamp()
                and prepared.worth_preparing(self.store, roles(self.src.config).values()))

    def prepare(self, progress=None, *, again: bool = False) -> dict | None:
        """Build the order facts (:mod:`tessera.analytics.facts`) and every customer's segments of
        the RFM migrations (:func:`tessera.analytics.analyses.prepare_rfm_segments`), compute every dashboard without
        filters, and the filters' choices, and keep them in the
        metadata store (see :mod:`tessera.analytics.prepared`): a job of the server after each run
        (and at its start), beside the readers. A chart that cannot run is left out (it says why
        when it is viewed).

        Returns the counts, or None when nothing was done: the kept results are of the same
        publications, or the workspace is small enough for its dashboards to be computed when
        viewed (:func:`tessera.analytics.prepared.worth_preparing`); ``again`` computes them anyway.
        """
        progress = progress or (lambda *a: None)
        stamp = self._stamp()
        todo = self._all()
        if not again and not self.needs_preparing():
            return None
        # the orders joined to their customers once: the charts below, and every question after,
        # read them instead of joining (tessera.analytics.facts)
        built: dict[str, dict] = {}
        found = roles(self.src.config)
        if found.get("orders") and found.get("customers"):
            progress("dashboards", "order facts", 0, len(todo))
            try:
                entry = order_facts.build(self.src, found["orders"], found["customers"])
            except Exception as exc:  # noqa: BLE001 - the run has published: the questions join as before
                log.warning("the order facts were not built (%s): questions join the orders to their customers",
                            exc)
                entry = None
            if entry is not None:
                built[found["orders"]] = entry
        if found.get("orders") and found.get("items"):
            # the order lines with their order's columns, in the order of its date: a chart of lines
            # with a period, a store or a channel reads them as one scan (tessera.analytics.facts)
            try:
                entry = order_facts.build_lines(self.src, found["items"], found["orders"])
            except Exception as exc:  # noqa: BLE001 - the questions join the lines to their orders
                log.warning("the order lines' facts were not built (%s): questions join the lines to their "
                            "orders", exc)
                entry = None
            if entry is not None:
                built[found["items"]] = entry
        order_facts_of = set(built)
        # every customer's RFM segments at the dates a migration shows without a period: its
        # views with other filters count the kept customers' rows instead of scoring everyone
        for d, lacking, _kind in todo:
            for q in d.questions:
                if q.analysis is None or q.analysis.kind != "rfm_migration" or q.name in lacking:
                    continue
                try:
                    made = prepare_rfm_segments(self.src, q)
                except Exception as exc:  # noqa: BLE001 - the migration then scores the customers when asked
                    log.warning("the RFM segments of the migration were not kept (%s)", exc)
                    made = None
                if made is not None:
                    built.setdefault(*made)
        self._facts, self._facts_tables = built, {}
        results: dict[str, dict] = {}
        failed: list[str] = []
        for i, (d, lacking, _kind) in enumerate(todo):
            progress("dashboards", d.name, i, len(todo))
            for q in d.questions:
                if q.name in lacking:
                    continue
                try:
                    r = self.run(q, Filters(), where=f"dashboard '{d.name}' ({q.name})", soft=True, fresh=True)
                except Exception:  # noqa: BLE001 - the run has published: a chart is computed when viewed
                    failed.append(f"{d.name}.{q.name}")
                    continue
                if not r.get("unavailable"):
                    results[self._result_key(q, Filters())] = {k: v for k, v in r.items() if k != "cached"}
        progress("dashboards", "done", len(todo), len(todo))
        # vl-convert's first picture in a process starts its JavaScript engine (seconds): started
        # here, the first download after a run in the server is drawn at the speed of the others
        drawn = next((r["spec"] for r in results.values() if r.get("spec")), None)
        if drawn is not None:
            try:
                self.draw(drawn, "png")
            except Exception:  # noqa: BLE001 - a picture is drawn again when asked
                pass
        key, values = self._filter_values_of_orders(fresh=True)
        if self.store is not None:
            prepared.keep(self.store, self.key, stamp, {"stamp": stamp, "results": results, "facts": built,
                                                        "filter_values": {"key": key, "value": values}})
        return {"dashboards": len(todo), "charts": len(results), "facts": sorted(order_facts_of),
                "rfm_segments": sorted(k for k in built if k not in order_facts_of),
                **({"failed": failed} if failed else {})}

    def _result_key(self, q: QuestionConfig, filters: Filters) -> str:
        return prepared.digest(self.src.as_of, q.model_dump_json(), filters.key(), self._all_versions())

    def _segment_refresh(self) -> Any:
        if self._segments_version is None:
            adapter = self.src.adapter
            self._segments_version = (str(adapter.execute(adapter.table(SIZES).refreshed_at.max()))
                                      if self.src.config.segments and adapter.exists(SIZES) else "")
        return self._segments_version

    # -- definitions
    def _all(self) -> list[tuple[DashboardConfig, dict[str, str], str]]:
        out = [(d, lacking, "default") for d, lacking in default_dashboards(self.src.config)]
        out += [(d, {}, "custom") for d in self.src.config.dashboards]
        return out

    def find(self, name: str) -> tuple[DashboardConfig, dict[str, str], str]:
        for d, lacking, kind in self._all():
            if d.name == name:
                return d, lacking, kind
        known = ", ".join(d.name for d, _, _ in self._all())
        raise NotFoundError(f"unknown dashboard '{name}' (dashboards: {known})")

    def question(self, dashboard: str, name: str) -> tuple[QuestionConfig, str | None]:
        d, lacking, _ = self.find(dashboard)
        q = next((q for q in d.questions if q.name == name), None)
        if q is None:
            raise NotFoundError(f"dashboard '{dashboard}' has no question '{name}' (questions: "
                                f"{', '.join(q.name for q in d.questions)})")
        return q, lacking.get(name)

    def list(self) -> list[dict]:
        return [{"name": d.name, "title": d.title or d.name, "description": d.description, "kind": kind,
                 "questions": len(d.questions), "filters": list(d.filters),
                 "unavailable": len(lacking)} for d, lacking, kind in self._all()]

    def definition(self, name: str) -> dict:
        """A dashboard as in the YAML, with its ``kind`` (default or custom) and ``version`` (a
        digest of the definition: a change sent with an older one is refused)."""
        d, _, kind = self.find(name)
        spec = d.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        return {"kind": kind, "version": spec_version(spec), **spec}

    # -- running
    def run_dashboard(self, name: str, filters: Filters | None = None, *, later: bool = False) -> dict:
        """A dashboard with every question's result under ``filters``. ``later``: the questions with
        an ``analysis`` (the costly ones) are not run but marked ``later`` (a page asks for them
        one by one, so that the others are shown at once)."""
        d, lacking, kind = self.find(name)
        filters = filters or Filters()
        usable = Filters(**{k: v for k, v in vars(filters).items()})
        for f in ("period", "store", "channel", "segment"):
            if f not in d.filters:
                if f == "period":
                    usable.date_from = usable.date_to = None
                elif f == "segment":
                    usable.segment = None
                else:
                    setattr(usable, f + "s", [])
        results = []
        # the sets the filters keep (the customers who bought in the period, at the stores...) are
        # computed once for the whole view into work tables, dropped when it is drawn
        own = self._work is None and self.src.once is None
        if own and usable.active():
            self._work, self.src.once, self._planning, self._uses = {}, self._once, {}, {}
            for q in d.questions:  # planned first: the columns each work table needs
                if q.name not in lacking and q.analysis is None and self._whole_key(q, usable) not in _CACHE:
                    try:
                        self.plan(q, usable)
                    except TesseraError:
                        pass  # said by the question itself below
            self._wanted, self._planning = self._planning, None
        try:
            for i, q in enumerate(d.questions):
                if q.name in lacking:
                    results.append(self._unavailable(q, lacking[q.name]))
                    continue
                if later and q.analysis is not None:
                    results.append({"name": q.name, "title": q.title or q.name, "chart": q.chart,
                                    "dataset": q.dataset, "later": True, "columns": [], "rows": [], "spec": None})
                    continue
                results.append(self.run(q, usable, where=f"dashboard '{name}'.questions[{i}] ({q.name})",
                                        soft=True))
        finally:
            if own and self._work is not None:
                work, self._work, self.src.once, self._wanted, self._uses = self._work, None, None, {}, {}
                for table, _expr in work.values():
                    if table is not None:
                        try:
                            self.src.adapter.drop_table(table)
                        except TesseraError as exc:  # a temporary table: gone with the connection
                            log.warning("work table %s not dropped: %s", table, exc)
        return {"name": d.name, "title": d.title or d.name, "description": d.description, "kind": kind,
                "version": spec_version(d.model_dump(mode="json", exclude_defaults=True, by_alias=True)),
                "filters": list(d.filters), "filter_values": {k: v for k, v in {
                    "period": _period_text(usable), "store": usable.stores, "channel": usable.channels,
                    "segment": usable.segment}.items() if v},
                "questions": results}

    @staticmethod
    def _unavailable(q: QuestionConfig, message: str) -> dict:
        return {"name": q.name, "title": q.title or q.name, "chart": q.chart, "dataset": q.dataset,
                "unavailable": message, "columns": [], "rows": [], "spec": None}

    def plan(self, q: QuestionConfig, filters: Filters | None = None, where: str | None = None) -> Plan:
        if q.analysis is not None:
            return plan_analysis(self.src, q, filters, where=where)
        return plan(self.src, q, filters, where=where)

    def run(self, q: QuestionConfig, filters: Filters | None = None, *, where: str | None = None,
            soft: bool = False, fresh: bool = False) -> dict:
        """One question's result: columns, rows (at most ``CHART_ROWS``), its Vega-Lite spec and the
        dashboard filters it applied or ignored. ``soft``: a question that cannot run on this
        workspace answers with ``unavailable`` (its reason) instead of raising. ``fresh``: not taken
        from the results prepared at publication (what :meth:`prepare` uses)."""
        whole = self._whole_key(q, filters)
        with _LOCK:
            hit = _CACHE.get(whole)
            if hit is not None:
                _CACHE.move_to_end(whole)
                return {**hit, "cached": True}
        if not fresh:
            hit = self._prepared().get("results", {}).get(self._result_key(q, filters or Filters()))
            if hit is not None:
                with _LOCK:
                    _CACHE[whole] = hit
                return {**hit, "cached": True}
        try:
            p = self.plan(q, filters, where)
        except Unavailable as exc:
            if not soft:
                raise
            return self._unavailable(q, "; ".join(exc.problems))
        except TesseraError as exc:
            if not soft:
                raise
            return self._unavailable(q, str(exc))
        # only the filters this question applies: a filter that does not concern it finds it cached
        f = filters or Filters()
        used = Filters(f.date_from, f.date_to, f.stores, f.channels, f.segment)
        for name in ("period", "store", "channel", "segment"):
            if name not in p.applied:
                if name == "period":
                    used.date_from = used.date_to = None
                elif name == "segment":
                    used.segment = None
                else:
                    setattr(used, name + "s", [])
        key = (self.key, self.src.as_of, q.model_dump_json(), used.key(), self._versions(p))
        with _LOCK:
            hit = _CACHE.get(key)
            if hit is not None:  # the filters that changed do not concern this question
                _CACHE.move_to_end(key)
                _CACHE[whole] = hit
                return {**hit, "cached": True}
        try:
            fetched = self.src.adapter.to_arrow(p.expr.limit(CHART_ROWS + 1)).to_pylist()
        except TesseraError as exc:  # the engine refused it: this chart says so, the others are drawn
            if not soft:
                raise
            return self._unavailable(q, str(exc))
        rows = [_json_row(r) for r in fetched]
        truncated = len(rows) > CHART_ROWS
        rows = rows[:CHART_ROWS]
        result = {"name": q.name, "title": q.title or q.name, "description": q.description, "chart": q.chart,
                  "dataset": q.dataset,
                  "columns": [column_dict(c) for c in p.columns],
                  "rows": rows, "truncated": truncated,
                  "filters": {"applied": p.applied, "ignored": p.ignored}, "notes": p.notes,
                  "spec": spec(q.chart, q.title or q.name, p.columns, rows)}
        with _LOCK:
            _CACHE[key] = _CACHE[whole] = result
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return {**result, "cached": False}

    def _whole_key(self, q: QuestionConfig, filters: Filters | None) -> tuple:
        """The key of a result in the cache by every filter of the dashboard (as_of too: age
        bands and the analyses' default dates move with it)."""
        return (self.key, self.src.as_of, q.model_dump_json(), (filters or Filters()).key(), self._all_versions())

    def _versions(self, p: Plan) -> tuple:
        """What a result depends on: the published tables of its datasets, the last segment refresh."""
        out: list[Any] = [self._published_target(d) for d in sorted(p.datasets)] + [self._publication_count()]
        if p.segments or "segment" in p.applied:
            out.append(self._segment_refresh())
        return tuple(out)

    def csv(self, q: QuestionConfig, filters: Filters | None = None) -> Iterator[bytes]:
        """Every row of the question's result as CSV (a header of labels), streamed in batches."""
        p = self.plan(q, filters)
        reader = self.src.adapter.to_batches(p.expr, 50_000)
        labels = [c.label for c in p.columns]

        def stream() -> Iterator[bytes]:
            yield (",".join(_csv_field(x) for x in labels) + "\n").encode("utf-8")
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            for batch in reader:
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf, write_options=options)
                yield buf.getvalue()

        return stream()

    def picture(self, q: QuestionConfig, fmt: str, filters: Filters | None = None) -> bytes:
        return self.draw(self.run(q, filters)["spec"], fmt)

    def draw(self, vl_spec: dict | None, fmt: str) -> bytes:
        """A chart's specification as PNG or SVG (cached by the specification)."""
        result = {"spec": vl_spec}
        key = ("picture", fmt, json.dumps(result["spec"], sort_keys=True, default=str))
        with _LOCK:
            hit = _CACHE.get(key)
        if hit is None:
            hit = render(result["spec"], fmt)
            with _LOCK:
                _CACHE[key] = hit
                while len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
        return hit

    def columns(self, dataset: str) -> list[tuple[str, str]]:
        """What a question on ``dataset`` may group by or measure: (reference, type) of its columns,
        then of the datasets it links to (``contacts.birth_date``)."""
        from tessera.segments.related import links_to

        config = self.src.config
        out: list[tuple[str, str]] = []
        for d in [dataset] + [x.name for x in config.datasets if x.name != dataset]:
            if d != dataset and links_to(config, dataset, d) is None:
                continue
            try:
                schema = self.src.table(d).schema()
            except TesseraError:
                continue
            for col, typ in schema.items():
                if col.startswith("_") or col == "tessera_id" or (col.startswith("tessera_") and col.endswith("_id")):
                    continue
                out.append((col if d == dataset else f"{d}.{col}", str(typ).lower()))
        return out

    def filter_values(self) -> dict:
        """The choices of the dashboards' filters: stores, channels, segments and the period the
        orders cover."""
        config = self.src.config
        return {**self._filter_values_of_orders()[1], "segment": [s.name for s in config.segments],
                "as_of": self.src.as_of.isoformat()}

    def _filter_values_of_orders(self, fresh: bool = False) -> tuple[str | None, dict]:
        """Stores, channels and period of the orders, with the key of the orders' publication they
        were read from: cached in memory, prepared at publication (:meth:`prepare`), else queried."""
        config = self.src.config
        out: dict[str, Any] = {"store": [], "channel": [], "period": None}
        orders = roles(config).get("orders")
        if orders is None:
            return None, out
        sem = _semantics(config, orders)
        fields = [sem.get(f) for f in ("Store", "Channel", "OrderDate")]
        key = prepared.digest(orders, self._published_target(orders), fields)
        memory = ("filter_values", self.key, key)
        if not fresh:
            with _LOCK:
                hit = _CACHE.get(memory)
            if hit is None:
                kept = self._prepared().get("filter_values") or {}
                hit = kept.get("value") if kept.get("key") == key else None
            if hit is not None:
                with _LOCK:
                    _CACHE[memory] = hit
                return key, dict(hit)
        try:
            t = self.src.table(orders)
        except TesseraError:
            return None, out
        adapter = self.src.adapter
        for name, col in (("store", fields[0]), ("channel", fields[1])):
            if col in t.columns:
                v = t.select(v=t[col].cast("string")).filter(lambda x: x.v.notnull()).distinct().order_by("v")
                out[name] = [r["v"] for r in adapter.to_arrow(v.limit(1000)).to_pylist()]
        col = fields[2]
        if col in t.columns:
            row = adapter.to_arrow(t.aggregate(lo=t[col].min(), hi=t[col].max())).to_pylist()[0]
            out["period"] = {"from": _json_value(row["lo"])[:10] if row["lo"] else None,
                             "to": _json_value(row["hi"])[:10] if row["hi"] else None}
        with _LOCK:
            _CACHE[memory] = out
        return key, dict(out)


def _period_text(f: Filters) -> str | None:
    if not (f.date_from or f.date_to):
        return None
    return f"{f.date_from.isoformat() if f.date_from else ''}..{f.date_to.isoformat() if f.date_to else ''}"


def _json_value(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def _json_row(row: dict) -> dict:
    return {k: _json_value(v) for k, v in row.items()}


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def validate_question(data: dict, where: str = "question") -> QuestionConfig:
    """A question from a mapping, every problem named with its path."""
    from pydantic import ValidationError

    try:
        return QuestionConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                           if e["loc"] else f"{where}: {e['msg'].removeprefix('Value error, ')}"
                           for e in exc.errors()]) from None


__all__ = ["Analytics", "DEFAULTS", "dashboard_problems", "parse_filters", "validate_question"]
