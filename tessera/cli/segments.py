"""``tessera segments``: list, show, count, members and history of the segments."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from tessera.cli.common import console, follow_job, open_workspace, server

app = typer.Typer(help="Segments: saved audiences with live counts and a history of entries and exits.",
                  no_args_is_help=True)


def _open():
    """The command's workspace (the server's reader when the server answers the command)."""
    return open_workspace()


@app.command("list")
def list_() -> None:
    """List the segments with their size at the last refresh."""
    with _open() as ws:
        rows = ws.segments()
    datasets = sorted({r["dataset"] for r in rows})
    one = len(datasets) == 1  # the dataset goes in the title, leaving its width to the descriptions
    t = Table(title=f"Segments of {datasets[0]}" if one else "Segments")
    for col in ("segment", *(() if one else ("dataset",)), "conditions", "size", "refreshed at (UTC)"):
        # these columns keep their width; the description wraps in what is left
        t.add_column(col, justify="right" if col in ("size", "conditions") else "left", no_wrap=True)
    t.add_column("description", ratio=1)
    for r in rows:
        refreshed = (r["refreshed_at"] or "never")[:16].replace("T", " ")  # to the minute
        t.add_row(r["name"], *(() if one else (r["dataset"],)), f"{r['conditions']} ({r['match']})",
                  "-" if r["size"] is None else str(r["size"]), refreshed, escape(r["description"] or ""))
    console.print(t)
    if not rows:
        console.print("No segment yet: declare some under segments: in the YAML and run tessera apply.")


@app.command()
def show(name: str = typer.Argument(..., help="Segment name.")) -> None:
    """Show a segment's definition, each condition in words, and its size."""
    with _open() as ws:
        info = ws.segment(name)
    console.print(f"[bold]{name}[/] on dataset {info['dataset']}: {info['size'] if info['size'] is not None else '-'} "
                  f"member(s), definition version {info['version'] or '-'}, match {info['match']}")
    if info["description"]:
        console.print(escape(info["description"]))
    for i, text in enumerate(info["condition_texts"], 1):
        console.print(f"  {i}. {escape(text)}")
    console.print(escape(json.dumps(info["definition"], indent=2, default=str)), highlight=False)


@app.command()
def count(name: str = typer.Argument(..., help="Segment name.")) -> None:
    """Count a segment now, with the count after each top-level condition."""
    with _open() as ws:
        result = ws.segment_count(name)
    t = Table(title=f"Segment {name}: {result['count']} of {result['records']} {result['dataset']}")
    t.add_column("#", justify="right")
    t.add_column("condition")
    t.add_column("count" if result["match"] == "all" else "count (any so far)", justify="right")
    for i, s in enumerate(result["steps"], 1):
        t.add_row(str(i), escape(s["condition"]), str(s["count"]))
    console.print(t)


@app.command()
def members(name: str = typer.Argument(..., help="Segment name."),
            limit: int = typer.Option(20, help="Rows to show."),
            columns: str = typer.Option("", help="Dataset columns to show, comma-separated.")) -> None:
    """List the current members of a segment, newest entries first."""
    cols = [c.strip() for c in columns.split(",") if c.strip()] or None
    with _open() as ws:
        rows = ws.segment_members(name, limit=limit, columns=cols)
    shown = list(rows[0]) if rows else ["tessera_id", "entered_at"]
    if cols is None:
        shown = shown[:8]
    t = Table(title=f"Members of {name}")
    for col in shown:
        t.add_column(col)
    for r in rows:
        t.add_row(*[escape("" if r.get(c) is None else str(r.get(c))) for c in shown])
    console.print(t)


@app.command()
def history(name: str = typer.Argument(..., help="Segment name."),
            limit: int = typer.Option(20, help="Entries and exits to show.")) -> None:
    """Show a segment's size at each refresh and its latest entries and exits."""
    with _open() as ws:
        h = ws.segment_history(name, limit=limit)
    sizes = Table(title=f"Size of {name} over time")
    for col in ("refreshed at", "size", "entered", "exited", "version"):
        sizes.add_column(col, justify="left" if col == "refreshed at" else "right")
    for s in h["sizes"]:
        sizes.add_row(s["refreshed_at"], str(s["size"]), str(s["entered"]), str(s["exited"]), str(s["version"]))
    console.print(sizes)
    changes = Table(title="Latest entries and exits")
    for col in ("tessera_id", "change", "entered at", "exited at", "version", "condition that stopped holding"):
        changes.add_column(col)
    for c in h["changes"]:
        changes.add_row(c["tessera_id"], c["change"], c["entered_at"] or "", c["exited_at"] or "", str(c["version"]),
                        escape(c["exit_condition"] or ""))
    console.print(changes)


@app.command()
def refresh(names: list[str] = typer.Argument(None, help="Segments to refresh (default: all).")) -> None:
    """Recompute segment membership now, without a run (a job of the server when one runs)."""
    client = server()
    if client is not None:
        done = follow_job(client, "segments_refresh", {"segments": names or None}, bars=False)["result"]
    else:
        with _open() as ws:
            done = ws.refresh_segments(names or None)
    for r in done:
        if r.get("skipped"):
            console.print(f"{r['segment']}: not refreshed, {r['skipped']} ({r['size']} member(s))",
                          markup=False, highlight=False)
            continue
        console.print(f"{r['segment']}: {r['size']} member(s), {r['entered']} entered, {r['exited']} exited")
