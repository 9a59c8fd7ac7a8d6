"""Vega-Lite specifications of questions, and their PNG and SVG drawn on the server.

The browser draws the same specification with vega-embed (served from the package, CSP-safe
interpreter); ``vl-convert`` renders it without a browser, so a download is the chart on screen.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from tessera.analytics.question import Column
from tessera.errors import UsageError

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
VL_VERSION = "6.4"  # the Vega-Lite of vl-convert, the same as the vendored one of the web app
#: the most rows a chart is drawn with (the CSV has them all)
CHART_ROWS = 5000


def _field(c: Column, discrete: bool = False) -> dict:
    """The encoding of a column; ``discrete``: dates as ordered categories (heat map cells)."""
    enc: dict[str, Any] = {"field": c.key, "type": c.vega_type, "title": c.label}
    if c.order and c.vega_type in ("ordinal", "nominal"):
        enc["sort"] = c.order
    elif c.vega_type == "nominal":
        enc["sort"] = None  # the rows' order: the largest first when the question sorts by its measure
    if c.vega_type == "temporal":
        enc["timeUnit"] = c.time_unit or "yearmonthdate"
        if discrete:
            enc["type"] = "ordinal"
    return enc


def _measure(c: Column, channel: str = "axis") -> dict:
    """A measure's encoding on an axis, or on a legend (``channel="legend"``: colours) or a tooltip."""
    enc: dict[str, Any] = {"field": c.key, "type": "quantitative", "title": c.label}
    if c.percent:
        if channel == "tooltip":
            enc["format"] = ".1%"
        else:
            enc[channel] = {"format": "%"}
    return enc


def _text(c: Column, value: Any) -> str:
    """A figure as a person reads it: a share in percent, large numbers without decimals."""
    if value is None:
        return "-"
    if c.percent:
        return f"{100 * value:.1f} %"
    if isinstance(value, float) and abs(value) < 1000 and value != int(value):
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def spec(chart: str, title: str, columns: list[Column], rows: list[dict]) -> dict | None:
    """The Vega-Lite specification of a question's result (``None`` for a table)."""
    dims = [c for c in columns if c.role == "dimension"]
    measures = [c for c in columns if c.role == "measure"]
    dated = [c.key for c in dims if c.vega_type == "temporal"]
    if dated:  # a row without a date has no place on a time axis (the CSV keeps it)
        rows = [r for r in rows if all(r.get(k) is not None for k in dated)]
    base: dict[str, Any] = {"$schema": SCHEMA, "title": title, "data": {"values": rows[:CHART_ROWS]},
                            "width": "container", "height": 260,
                            "config": {"font": "system-ui, sans-serif", "view": {"stroke": None}}}
    if chart == "table":
        return None
    if chart == "number":
        row = rows[0] if rows else {}
        values = [{"measure": m.label, "value": row.get(m.key), "text": _text(m, row.get(m.key))} for m in measures]
        return {**base, "height": 80, "data": {"values": values},
                "mark": {"type": "text", "fontSize": 28, "fontWeight": "bold"},
                "encoding": {"text": {"field": "text", "type": "nominal"},
                             "x": {"field": "measure", "type": "nominal", "title": None,
                                   "axis": {"orient": "top", "labelAngle": 0, "domain": False, "ticks": False,
                                            "labelFontSize": 13},
                                   "sort": [m.label for m in measures]}}}
    if chart == "pie":
        return {**base, "mark": {"type": "arc", "tooltip": True},
                "encoding": {"theta": _measure(measures[0]),
                             "color": {**_field(dims[0]), "type": "nominal"}}}
    if chart == "heatmap":
        return {**base, "mark": {"type": "rect", "tooltip": True},
                "encoding": {"x": _field(dims[0], True), "y": _field(dims[1], True),
                             "color": _measure(measures[0], "legend"),
                             "tooltip": [_field(dims[0], True), _field(dims[1], True),
                                         *[_measure(m, "tooltip") for m in measures]]}}
    x = _field(dims[0], discrete=chart != "line")
    mark = {"type": "line", "point": True, "tooltip": True} if chart == "line" else {"type": "bar", "tooltip": True}
    if len(dims) == 2:
        color = {**_field(dims[1]), "type": "nominal"}  # distinct colours, in the bands' order
        color.pop("timeUnit", None)
        enc = {"x": x, "y": {**_measure(measures[0]), **({"stack": None} if chart == "line" else {})},
               "color": color}
        if chart == "bar":  # grouped bars side by side
            enc["xOffset"] = {"field": dims[1].key}
        return {**base, "mark": mark, "encoding": enc}
    if len(measures) > 1:
        # measures side by side, each named by its label
        labels = {m.key: m.label for m in measures}
        long = [{**{k: v for k, v in r.items() if k not in labels}, "measure": labels[k], "value": r[k]}
                for r in rows[:CHART_ROWS] for k in labels]
        order = [m.label for m in measures]
        enc = {"x": x, "y": {"field": "value", "type": "quantitative", "title": None},
               "color": {"field": "measure", "type": "nominal", "sort": order, "title": None}}
        if all(m.percent for m in measures):
            enc["y"]["axis"] = {"format": "%"}
        if chart == "bar":
            enc["xOffset"] = {"field": "measure", "sort": order}
        return {**base, "data": {"values": long}, "mark": mark, "encoding": enc}
    return {**base, "mark": mark, "encoding": {"x": x, "y": _measure(measures[0])}}


def column_dict(c: Column) -> dict:
    """A result's column as the API gives it (enough to draw the chart again in another language)."""
    out = {"key": c.key, "label": c.label, "role": c.role, "type": c.vega_type, "percent": c.percent}
    for name in ("order", "time_unit", "term", "args"):
        if getattr(c, name):
            out[name] = getattr(c, name)
    return out


_UNDER = re.compile(r"^under (-?[\d.]+)$")
_OVER = re.compile(r"^(-?[\d.]+) and over$")


def relabel(result: dict, words: Callable[[str, dict], str | None], title: str | None = None) -> dict:
    """A question's result with its labels in another language, its chart drawn again.

    ``words(key, values)`` gives the text of a catalog key (None when the catalog lacks it):
    ``chart.<term>`` for a column (its ``term``, else its label's slug, with its ``args``),
    ``chart.value.<text>`` for a fixed name of a band (``unknown``, ``returning``), ``chart.under``
    and ``chart.and_over`` for number bands. Anything without a translation keeps its text.
    """
    if result.get("unavailable") or not result.get("columns"):
        return result

    def value(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        found = words(f"chart.value.{v}", {})
        if found:
            return found
        m = _UNDER.match(v) or _OVER.match(v)
        if m:
            return words("chart.under" if m.re is _UNDER else "chart.and_over", {"n": m.group(1)}) or v
        return v

    columns, dims = [], []
    for c in result["columns"]:
        term = c.get("term") or re.sub(r"[^a-z0-9]+", "_", c["label"].lower()).strip("_")
        label = words(f"chart.{term}", dict(c.get("args") or {})) or c["label"]
        order = [value(v) for v in c["order"]] if c.get("order") else None
        columns.append(Column(c["key"], label, c["role"], c["type"], order, c.get("time_unit"), c.get("percent", False),
                              c.get("term"), c.get("args")))
        if c["role"] == "dimension" and c["type"] in ("nominal", "ordinal"):
            dims.append(c["key"])
    rows = [{k: (value(v) if k in dims else v) for k, v in r.items()} for r in result["rows"]]
    title = title or result.get("title") or result["name"]
    return {**result, "title": title, "columns": [column_dict(c) for c in columns], "rows": rows,
            "spec": spec(result["chart"], title, columns, rows)}


def render(vl_spec: dict | None, fmt: str, *, scale: float = 2.0) -> bytes:
    """The chart as PNG or SVG, drawn by vl-convert (no browser).

    Raises:
        UsageError: a table has no picture, or the format is not png or svg.
    """
    import vl_convert as vlc  # a compiled renderer: imported when a picture is asked

    if vl_spec is None:
        raise UsageError("a table has no picture: download it as CSV, or choose a chart type")
    drawn = {**vl_spec, "width": 640 if vl_spec.get("width") == "container" else vl_spec.get("width", 640)}
    if fmt == "png":
        return vlc.vegalite_to_png(drawn, vl_version=VL_VERSION, scale=scale)
    if fmt == "svg":
        return vlc.vegalite_to_svg(drawn, vl_version=VL_VERSION).encode("utf-8")
    raise UsageError(f"unknown picture format '{fmt}': use png or svg")
