"""Runs and imports: ``tessera run``, ``tessera import``."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import typer
from rich.table import Table

from tessera.cli.common import app, console, open_workspace, progress_bars, server, follow_job

def print_run(result) -> None:
    steps = Table(title=f"Run {result.run_id}: {result.status} in {result.seconds:.2f} s")
    for col in ("step", "seconds", "counts"):
        steps.add_column(col)
    for s in result.steps:
        counts = ", ".join(f"{k}={v}" for k, v in s.items() if k not in ("step", "seconds"))
        steps.add_row(s["step"], f"{s['seconds']:.2f}", counts)
    console.print(steps)
    if getattr(result, "unchanged", False):
        console.print("Nothing new since the last run: the published datasets were kept as they are "
                      "(tessera run --full rebuilds them).", markup=False, highlight=False)
    src = Table(title="Sources")
    for col in ("source", "new files", "rows read", "staged", "rejected"):
        src.add_column(col, justify="right" if col != "source" else "left", no_wrap=col == "source")
    for name, c in result.sources.items():
        src.add_row(name, str(c.get("files_new", 0)), str(c.get("rows_read", 0)), str(c.get("staged", "")),
                    str(c.get("rejected", "")))
    console.print(src)
    ds = Table(title="Datasets")
    for col in ("dataset", "source records", "unified", "duplicates merged", "shared values"):
        ds.add_column(col, justify="right" if col != "dataset" else "left", no_wrap=col == "dataset")
    for name, c in result.datasets.items():
        ds.add_row(name, str(c.get("records", "")), str(c.get("rows", "")), str(c.get("duplicates_merged", "")),
                   str(c.get("shared_values", "")))
    console.print(ds)
    for name, c in result.datasets.items():
        if c.get("refused_by_limits"):
            console.print(f"{name}: {c['refused_by_limits']} record(s) kept apart by the identity key limits "
                          "(their merge would give a customer more values of a limited key; see tessera explain)",
                          markup=False, highlight=False)
        if c.get("refused_by_guards") or "matched_pairs" in c:
            console.print(f"{name}: {c.get('refused_by_guards', 0)} shared value(s) refused by guards"
                          + (f", {c['matched_pairs']} pair(s) merged by matching, {c.get('review_pairs', 0)} to "
                             f"review, {c.get('refused_pairs', 0)} refused" if "candidate_pairs" in c else ""),
                          markup=False, highlight=False)
        if c.get("aggregates") or c.get("scores") or c.get("predictive"):
            console.print(f"{name}: {c.get('aggregates', 0)} aggregate(s), {c.get('scores', 0)} score group(s)"
                          + (f", predictive {c['predictive']}" if c.get("predictive") else ""),
                          markup=False, highlight=False)
    print_warnings(result.warnings)
    if result.refused:
        console.print(f"{len(result.refused)} file(s) refused; the other files and sources were published. "
                      "Fix or replace them and run again, or retry them as they are with: tessera import "
                      + " ".join(sorted({r['source'] for r in result.refused})) + " --retry-refused",
                      markup=False, highlight=False)


def print_warnings(warnings: list[str]) -> None:
    """What the user should look at although the work succeeded (refused files and how to retry)."""
    for w in warnings:
        console.print(f"Warning: {w}", markup=False, highlight=False)


@app.command()
def run(as_of: Optional[datetime] = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"],
        help="The date scores, time windows and predictions are computed at (default: the workspace's "
             "pipeline.as_of, else today)."),
        full: bool = typer.Option(False, "--full",
                                  help="Rebuild and publish even when nothing changed since the last run.")) -> None:
    """Import new files, unify the datasets and publish them (through the server when one runs).

    A run that finds nothing new (same configuration, imported files, events, identity overrides
    and date) keeps the published datasets as they are."""
    day = as_of.date() if as_of else None
    client = server()
    if client is not None:
        params = {"as_of": day.isoformat()} if day else {}
        if full:
            params["full"] = True
        job = follow_job(client, "run", params)
        from tessera.pipeline import RunResult

        print_run(RunResult(**job["result"]))
        return
    with open_workspace() as ws:
        bar, update = progress_bars()
        with bar:
            result = ws.run(progress=update, as_of=day, full=full)
        print_run(result)


@app.command("import")
def import_(sources: Optional[list[str]] = typer.Argument(None, help="Sources to import (default: all)."),
            retry_refused: bool = typer.Option(False, "--retry-refused",
                                               help="Read again the files refused by earlier imports.")) -> None:
    """Import the new data of sources (files, database rows) without running the pipeline."""
    client = server()
    if client is not None:
        per_source = follow_job(client, "import", {"sources": sources or None,
                                                   "retry_refused": retry_refused})["result"]
    else:
        with open_workspace() as ws:
            bar, update = progress_bars()
            with bar:
                per_source = ws.import_sources(sources or None, progress=update, retry_refused=retry_refused)
    t = Table(title="Import")
    for col in ("source", "new batches", "skipped", "rows read", "rejected"):
        t.add_column(col, justify="left" if col == "source" else "right")
    for name, c in per_source.items():
        t.add_row(name, str(c["files_new"]), str(c["files_skipped"]), str(c["rows_read"]), str(c["rejected_on_read"]))
    console.print(t)
    print_warnings([w for c in per_source.values() for w in c.get("warnings", [])])


