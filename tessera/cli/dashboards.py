"""``tessera dashboards``: list, show and export the dashboards (the seven defaults and your own)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from tessera.cli.common import console, open_workspace
from tessera.errors import ConfigError, UsageError

app = typer.Typer(help="Dashboards: the seven default ones and the workspace's own, with their charts' data.",
                  no_args_is_help=True)

PERIOD = typer.Option(None, "--period", help="2024-01-01..2024-12-31, ..2024-06-30, last_90_days, last_12_months.")
STORE = typer.Option(None, "--store", help="Stores, comma-separated.")
CHANNEL = typer.Option(None, "--channel", help="Channels, comma-separated.")
SEGMENT = typer.Option(None, "--segment", help="Only the members of this segment.")


def _filters(period, store, channel, segment) -> dict:
    return {"period": period, "store": store, "channel": channel, "segment": segment}


def _text(value, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent and isinstance(value, (int, float)):  # a share from 0 to 1
        return f"{100 * value:.1f} %"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


@app.command("list")
def list_() -> None:
    """List the dashboards with their number of charts."""
    with open_workspace() as ws:
        rows = ws.dashboards()
    t = Table(title="Dashboards")
    for col in ("dashboard", "title", "kind", "charts", "unavailable", "filters"):
        t.add_column(col, justify="right" if col in ("charts", "unavailable") else "left", no_wrap=col == "dashboard")
    for r in rows:
        t.add_row(r["name"], escape(r["title"]), r["kind"], str(r["questions"]), str(r["unavailable"] or ""),
                  ", ".join(r["filters"]))
    console.print(t)


@app.command()
def show(name: str = typer.Argument(..., help="Dashboard name."),
         rows: int = typer.Option(15, "--rows", help="Rows to show per chart."),
         period: str = PERIOD, store: str = STORE, channel: str = CHANNEL, segment: str = SEGMENT) -> None:
    """Run a dashboard and show each chart's figures as a table."""
    with open_workspace() as ws:
        d = ws.dashboard(name, _filters(period, store, channel, segment))
    console.print(f"[bold]{escape(d['title'])}[/] ({d['kind']})"
                  + (f": {escape(d['description'])}" if d["description"] else ""))
    if d["filter_values"]:
        console.print("Filters: " + ", ".join(f"{k} {v if isinstance(v, str) else ','.join(v)}"
                                               for k, v in d["filter_values"].items()))
    for q in d["questions"]:
        if q.get("unavailable"):
            console.print(f"\n[bold]{escape(q['title'])}[/]: [yellow]unavailable[/]: {escape(q['unavailable'])}")
            continue
        console.print(f"\n[bold]{escape(q['title'])}[/] ({q['chart'].replace('_', ' ')})")
        t = Table()
        for c in q["columns"]:
            t.add_column(escape(c["label"]), justify="right" if c["role"] == "measure" else "left")
        for r in q["rows"][:rows]:
            t.add_row(*[escape(_text(r.get(c["key"]), c.get("percent", False))) for c in q["columns"]])
        console.print(t)
        more = len(q["rows"]) - rows
        if more > 0:
            console.print(f"  ... {more} more row(s): tessera dashboards export {name} {q['name']} -o FILE.csv")
        ignored = q.get("filters", {}).get("ignored")
        if ignored:
            console.print(f"  (filters not applied to this chart: {', '.join(ignored)})")


@app.command()
def export(name: str = typer.Argument(..., help="Dashboard name."),
           question: str = typer.Argument(None, help="One chart (default: every chart, into the folder --output)."),
           output: Path = typer.Option(..., "--output", "-o", help="The file (one chart) or folder (all charts)."),
           fmt: str = typer.Option(None, "--format", "-f", help="csv, png or svg (default: from the file name, "
                                                                  "else csv)."),
           period: str = PERIOD, store: str = STORE, channel: str = CHANNEL, segment: str = SEGMENT) -> None:
    """Write a chart's data (CSV, every row) or picture (PNG, SVG), or every chart of a dashboard."""
    filters = _filters(period, store, channel, segment)
    fmt = (fmt or (output.suffix.lstrip(".") if question and output.suffix else "csv")).lower()
    if fmt not in ("csv", "png", "svg"):
        raise UsageError(f"unknown format '{fmt}': use csv, png or svg")
    with open_workspace() as ws:
        if question:
            _write(ws, name, question, fmt, output, filters)
            console.print(f"Wrote {output}")
            return
        d = ws.analytics().definition(name)
        output.mkdir(parents=True, exist_ok=True)
        for q in d["questions"]:
            target = output / f"{q['name']}.{fmt}"
            try:
                _write(ws, name, q["name"], fmt, target, filters)
                console.print(f"Wrote {target}")
            except UsageError as exc:  # a table has no picture, a chart this workspace cannot draw
                console.print(f"[yellow]Skipped {q['name']}[/]: {escape(str(exc))}")


def _write(ws, name: str, question: str, fmt: str, target: Path, filters: dict) -> None:
    try:
        if fmt == "csv":
            chunks = ws.question_csv((name, question), filters)  # planned before the file is opened
            with open(target, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
        else:
            target.write_bytes(ws.question_picture((name, question), fmt, filters))
    except ConfigError as exc:  # a chart this workspace cannot draw (a dataset or column it lacks)
        raise UsageError(str(exc)) from None
