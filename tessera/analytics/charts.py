"""Vega-Lite specifications of questions, and their PNG and SVG drawn on the server.

The browser draws the same specification with vega-embed (served from the package, CSP-safe
interpreter); ``vl-convert`` renders it without a browser, so a download is the chart on screen.
"""

from __future__ import annotations

from typing import Any

from tessera.analytics.question import Column
from tessera.errors import UsageError

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
#: the most rows a chart is drawn with (the CSV has them all)
CHART_ROWS = 5000


def _field(c: Column, axis: str | None = None) -> dict:
    enc: dict[str, Any] = {"field": c.key, "type": c.vega_type, "title": c.label}
    if c.order and c.vega_type in ("ordinal", "nominal"):
        enc["sort"] = c.order
    if c.vega_type == "temporal":
        enc["timeUnit"] = "yearmonthdate"
    if c.vega_type == "quantitative" and axis:
        enc["axis"] = {"format": "~s"} if axis == "y" else {}
    return enc


def spec(chart: str, title: str, columns: list[Column], rows: list[dict]) -> dict | None:
    """The Vega-Lite specification of a question's result (``None`` for a table)."""
    dims = [c for c in columns if c.role == "dimension"]
    measures = [c for c in columns if c.role == "measure"]
    base: dict[str, Any] = {"$schema": SCHEMA, "title": title, "data": {"values": rows[:CHART_ROWS]},
                            "width": "container", "height": 260, "config": {"view": {"stroke": None}}}
    if chart == "table":
        return None
    if chart == "number":
        fold = [m.key for m in measures]
        return {**base, "height": 80,
                "transform": [{"fold": fold, "as": ["measure", "value"]}],
                "mark": {"type": "text", "fontSize": 28, "fontWeight": "bold"},
                "encoding": {"text": {"field": "value", "type": "quantitative", "format": ",.4~g"},
                             "x": {"field": "measure", "type": "nominal", "title": None,
                                   "axis": {"orient": "top", "labelAngle": 0},
                                   "sort": fold}}}
    if chart == "pie":
        return {**base, "mark": {"type": "arc", "tooltip": True},
                "encoding": {"theta": {"field": measures[0].key, "type": "quantitative", "title": measures[0].label},
                             "color": {**_field(dims[0]), "type": "nominal" if dims[0].vega_type != "ordinal"
                                       else "ordinal"}}}
    if chart == "heatmap":
        return {**base, "mark": {"type": "rect", "tooltip": True},
                "encoding": {"x": _field(dims[0]), "y": _field(dims[1]),
                             "color": {"field": measures[0].key, "type": "quantitative", "title": measures[0].label}}}
    x = _field(dims[0])
    if dims[0].vega_type == "temporal":
        x["timeUnit"] = "yearmonthdate"
    mark = {"type": "line", "point": True, "tooltip": True} if chart == "line" else {"type": "bar", "tooltip": True}
    if len(dims) == 2:
        color = {**_field(dims[1]), "type": "ordinal" if dims[1].vega_type == "ordinal" else "nominal"}
        color.pop("timeUnit", None)
        enc = {"x": x, "y": {"field": measures[0].key, "type": "quantitative", "title": measures[0].label,
                             **({"stack": None} if chart == "line" else {})},
               "color": color}
        if chart == "bar":  # grouped bars side by side
            enc["xOffset"] = {"field": dims[1].key}
        return {**base, "mark": mark, "encoding": enc}
    if len(measures) > 1:
        fold = [m.key for m in measures]
        enc = {"x": x, "y": {"field": "value", "type": "quantitative", "title": None},
               "color": {"field": "measure", "type": "nominal", "sort": fold, "title": None}}
        if chart == "bar":
            enc["xOffset"] = {"field": "measure", "sort": fold}
        return {**base, "transform": [{"fold": fold, "as": ["measure", "value"]}], "mark": mark, "encoding": enc}
    return {**base, "mark": mark,
            "encoding": {"x": x, "y": {"field": measures[0].key, "type": "quantitative", "title": measures[0].label}}}


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
        return vlc.vegalite_to_png(drawn, scale=scale)
    if fmt == "svg":
        return vlc.vegalite_to_svg(drawn).encode("utf-8")
    raise UsageError(f"unknown picture format '{fmt}': use png or svg")
