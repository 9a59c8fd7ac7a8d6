"""The ``tessera`` command line: ``tessera <verb>`` over the Workspace facade."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tessera.errors import ConfigError, ConnectionFailed, TesseraError
from tessera.workspace import Workspace

app = typer.Typer(help="Tessera, the open-source Customer Data Platform.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
console = Console()
err = Console(stderr=True)
STATE = {"debug": False}

WorkspaceOpt = typer.Option(
    None, "--workspace", "-w", help="Workspace folder (default: $TESSERA_WORKSPACE or the current folder)."
)


def _ws_path() -> Path:
    return Path(STATE.get("workspace") or os.environ.get("TESSERA_WORKSPACE") or ".")


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
          workspace: Optional[Path] = WorkspaceOpt) -> None:
    STATE["debug"] = debug
    STATE["workspace"] = workspace


def _progress() -> tuple[Progress, callable]:
    bar = Progress(TextColumn("[bold]{task.description:<8}"), TextColumn("{task.fields[label]:<24}"), BarColumn(),
                   TaskProgressColumn(), TimeElapsedColumn(), console=console, transient=False)
    tasks: dict[str, int] = {}

    def update(step: str, label: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(step, total=max(total, 1), label=label)
        bar.update(tasks[step], completed=done, total=max(total, 1), label=label)

    return bar, update


def print_run(result) -> None:
    steps = Table(title=f"Run {result.run_id}: {result.status} in {result.seconds:.2f} s")
    for col in ("step", "seconds", "counts"):
        steps.add_column(col)
    for s in result.steps:
        counts = ", ".join(f"{k}={v}" for k, v in s.items() if k not in ("step", "seconds"))
        steps.add_row(s["step"], f"{s['seconds']:.2f}", counts)
    console.print(steps)
    src = Table(title="Sources")
    for col in ("source", "new files", "rows read", "staged", "rejected"):
        src.add_column(col, justify="right" if col != "source" else "left")
    for name, c in result.sources.items():
        src.add_row(name, str(c.get("files_new", 0)), str(c.get("rows_read", 0)), str(c.get("staged", "")),
                    str(c.get("rejected", "")))
    console.print(src)
    ds = Table(title="Datasets")
    for col in ("dataset", "source records", "unified", "duplicates merged", "shared values"):
        ds.add_column(col, justify="right" if col != "dataset" else "left")
    for name, c in result.datasets.items():
        ds.add_row(name, str(c.get("records", "")), str(c.get("rows", "")), str(c.get("duplicates_merged", "")),
                   str(c.get("shared_values", "")))
    console.print(ds)
    for name, c in result.datasets.items():
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


@app.command()
def init(path: Path = typer.Argument(..., help="Folder of the new workspace."),
         warehouse: str = typer.Option("duckdb", help="Engine: duckdb (embedded) or spark."),
         metadata_url: Optional[str] = typer.Option(None, help="SQLAlchemy URL of the metadata store.")) -> None:
    """Create a workspace folder."""
    ws = Workspace.init(path, warehouse=warehouse, metadata_url=metadata_url)
    console.print(f"Workspace ready at [bold]{ws.path}[/] (engine {ws.adapter.name}).")
    console.print(f"Next: tessera -w {path} apply workspace.yaml")
    ws.close()


@app.command()
def apply(file: Path = typer.Argument(..., help="YAML configuration file."),
          prune: bool = typer.Option(False, "--prune", help="Accept a file that declares nothing: remove every "
                                                            "connection, source, dataset and sync.")) -> None:
    """Apply a YAML configuration (connections, sources, datasets) to the workspace."""
    with Workspace.open(_ws_path()) as ws:
        changes = ws.apply(file, prune=prune)
    if not any(changes.values()):
        console.print("No change.")
    for kind, items in changes.items():
        for item in items:
            console.print(f"{kind}: {item}")


@app.command("export")
def export_config(output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: stdout).")) -> None:
    """Print the workspace configuration as YAML."""
    with Workspace.open(_ws_path()) as ws:
        text = ws.export_config()
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"Wrote {output}")
    else:
        sys.stdout.write(text)


@app.command()
def run(workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Import new files, unify the datasets and publish them."""
    with Workspace.open(_ws_path()) as ws:
        bar, update = _progress()
        with bar:
            result = ws.run(progress=update)
        print_run(result)


@app.command()
def status(workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Show published datasets and the last runs."""
    with Workspace.open(_ws_path()) as ws:
        st = ws.status()
    t = Table(title=f"Workspace {st['path']} ({st['engine']})")
    for col in ("dataset", "rows", "version", "published at"):
        t.add_column(col)
    for d in st["datasets"]:
        t.add_row(d["dataset"], str(d["rows"] if d["rows"] is not None else "-"), str(d["version"]),
                  str(d["published_at"] or "never"))
    console.print(t)
    r = Table(title="Last runs")
    for col in ("run", "status", "started", "seconds", "error"):
        r.add_column(col)
    for run_ in st["runs"]:
        secs = sum(s.get("seconds", 0) or 0 for s in run_.get("steps", []))
        r.add_row(str(run_["id"]), run_["status"], str(run_["started_at"]), f"{secs:.2f}",
                  (run_.get("error") or "")[:80])
    console.print(r)


@app.command()
def explain(tessera_id: str = typer.Argument(..., help="A unified id (tessera_id)."),
            dataset: Optional[str] = typer.Option(None, help="Dataset (default: the first deduplicated one).")) -> None:
    """Show the source records of a unified record and the chain of keys that merged them."""
    with Workspace.open(_ws_path()) as ws:
        exp = ws.explain(tessera_id, dataset)
    for line in exp.lines():
        console.print(line, markup=False, highlight=False)


@app.command()
def columns(dataset: str = typer.Argument(..., help="Dataset name.")) -> None:
    """Show a dataset's columns with their type, semantic field and merge rule."""
    with Workspace.open(_ws_path()) as ws:
        cols = ws.describe(dataset)
    t = Table(title=f"Dataset {dataset}")
    for col in ("column", "type", "semantic field", "merge rule", "identity key", "from sources"):
        t.add_column(col)
    for c in cols:
        semantic = f"{c['semantic']} ({c['semantic_from']})" if c["semantic"] else "-"
        origin = (escape(f"= {c['computed']}") if c.get("computed")
                  else ", ".join(f"{s}.{col}" for s, col in c["sources"].items()))
        t.add_row(c["column"], c["type"], semantic, c["merge"] or "-", "yes" if c["identity_key"] else "", origin)
    console.print(t)


scores_app = typer.Typer(help="The score library.", no_args_is_help=True)
app.add_typer(scores_app, name="scores")


@scores_app.command("list")
def scores_list() -> None:
    """List the library's scores with the semantic fields each needs and the columns it adds."""
    from tessera.enrich.scores import LIBRARY

    t = Table(title="Score library (docs/scores.md)")
    for col in ("score", "needs", "columns", "what"):
        t.add_column(col)
    for d in LIBRARY.values():
        needs = ", ".join(n.replace("item:", "order items: ") for n in d.needs)
        t.add_row(d.name, needs, "\n".join(d.columns), d.description)
    t.add_row("predictive (scores.predictive: true)", "OrderDate, OrderAmount",
              "score_probability_alive\nscore_churn_risk\nscore_expected_purchases_90d\nscore_predicted_clv\n"
              "score_days_to_next_order\nscore_next_order_date",
              "BG/NBD and Gamma-Gamma models fitted on the workspace's orders.")
    console.print(t)


@app.command("export-data")
def export_data(dataset: str = typer.Argument(..., help="Published dataset name."),
                output: Path = typer.Option(..., "--output", "-o", help="File to write (.csv or .parquet)."),
                fmt: Optional[str] = typer.Option(None, "--format", help="csv or parquet (default: from the file name).")) -> None:
    """Export a published dataset to CSV or Parquet."""
    with Workspace.open(_ws_path()) as ws:
        path = ws.export_data(dataset, output, fmt)
    console.print(f"Wrote {path}")


@app.command()
def rejects(source: Optional[str] = typer.Option(None, help="Only this source."),
            limit: int = typer.Option(20, help="Rows to show.")) -> None:
    """List rejected rows with their file, line and reason."""
    with Workspace.open(_ws_path()) as ws:
        rows = ws.adapter.to_arrow(ws.rejects(source).limit(limit)).to_pylist()
    t = Table(title="Rejected rows")
    for col in ("source", "file", "line", "column", "reason"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["source"], r["file"], str(r["line"]), r["column_name"] or "", r["reason"])
    console.print(t)


@app.command()
def demo(path: Path = typer.Argument(Path("demo-workspace"), help="Folder of the demo workspace."),
         size: int = typer.Option(2000, help="Number of people of the demo company."),
         seed: int = typer.Option(7, help="Random seed (same seed, same data).")) -> None:
    """Generate the demo company's files, run the pipeline and export the datasets."""
    from tessera.demo.generator import generate

    path = path.resolve()
    ws = Workspace.init(path)
    company = path / "company"
    console.print(f"Generating the demo company ({size} people) in {company} ...")
    info = generate(company, size=size, seed=seed)
    ws.apply(company / "workspace.yaml")
    bar, update = _progress()
    with bar:
        result = ws.run(progress=update)
    print_run(result)
    exports = path / "exports"
    for name in ws.datasets():
        ws.export_data(name, exports / f"{name}.csv")
    ws.close()
    console.print(f"\nDatasets exported to [bold]{exports}[/]; workspace at [bold]{path}[/].")
    console.print(f"Try: .venv/bin/tessera -w {path} status | rejects | explain <tessera_id>")
    _ = info


@app.command("import")
def import_(sources: Optional[list[str]] = typer.Argument(None, help="Sources to import (default: all)."),
            retry_refused: bool = typer.Option(False, "--retry-refused",
                                               help="Read again the files refused by earlier imports.")) -> None:
    """Import the new data of sources (files, database rows) without running the pipeline."""
    with Workspace.open(_ws_path()) as ws:
        bar, update = _progress()
        with bar:
            per_source = ws.import_sources(sources or None, progress=update, retry_refused=retry_refused)
    t = Table(title="Import")
    for col in ("source", "new batches", "skipped", "rows read", "rejected"):
        t.add_column(col, justify="left" if col == "source" else "right")
    for name, c in per_source.items():
        t.add_row(name, str(c["files_new"]), str(c["files_skipped"]), str(c["rows_read"]), str(c["rejected_on_read"]))
    console.print(t)
    print_warnings([w for c in per_source.values() for w in c.get("warnings", [])])


def print_warnings(warnings: list[str]) -> None:
    """What the user should look at although the work succeeded (refused files and how to retry)."""
    for w in warnings:
        console.print(f"Warning: {w}", markup=False, highlight=False)


connections_app = typer.Typer(help="Connections to files, databases, servers and destinations.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")


@connections_app.command("list")
def connections_list() -> None:
    """List the connections (secrets are never shown)."""
    with Workspace.open(_ws_path()) as ws:
        config = ws.config
    t = Table(title="Connections")
    for col in ("connection", "type", "where", "used by"):
        t.add_column(col)
    for c in config.connections:
        where = getattr(c, "path", None) if c.type in ("local", "sqlite") else \
            getattr(c, "url", None) or f"{getattr(c, 'host', '')}:{getattr(c, 'port', '')}".strip(":")
        if c.type == "bigquery":
            where = c.project
        users = [f"source {s.name}" for s in config.sources if s.connection == c.name] + \
            [f"sync {s.name}" for s in config.syncs if s.connection == c.name]
        t.add_row(c.name, c.type, escape(str(where or "")), ", ".join(users))
    console.print(t)


@connections_app.command("test")
def connections_test(name: str = typer.Argument(..., help="Connection name.")) -> None:
    """Connect for real and check what the connection's sources read (exit 1 with a diagnosis)."""
    with Workspace.open(_ws_path()) as ws:
        lines = ws.test_connection(name)
    for line in lines:
        console.print(f"[green]ok[/] {escape(line)}")
    console.print(f"Connection {name}: OK")


sync_app = typer.Typer(help="Syncs of datasets to destinations.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")


@sync_app.command("list")
def sync_list() -> None:
    """List the syncs with their dataset, destination and mode."""
    with Workspace.open(_ws_path()) as ws:
        config = ws.config
    t = Table(title="Syncs")
    for col in ("sync", "dataset", "destination", "mode", "schedule"):
        t.add_column(col)
    for s in config.syncs:
        t.add_row(s.name, s.dataset, s.connection + (f" ({s.table})" if s.table else ""), s.mode, s.schedule or "-")
    console.print(t)


@sync_app.command("run")
def sync_run(names: Optional[list[str]] = typer.Argument(None, help="Syncs to run (default: all)."),
             dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, send nothing.")) -> None:
    """Send what changed in each dataset to its destinations (insert, update, delete)."""
    with Workspace.open(_ws_path()) as ws:
        results = ws.sync(names or None, dry_run=dry_run)
    t = Table(title="Sync plan (dry run)" if dry_run else "Syncs")
    cols = ("sync", "status", "new", "updated", "deleted", "unchanged") if dry_run else \
        ("sync", "status", "inserted", "updated", "deleted", "failed", "unchanged", "seconds")
    for col in cols:
        t.add_column(col, justify="left" if col in ("sync", "status") else "right")
    for r in results:
        if dry_run:
            t.add_row(r.name, r.status, str(r.inserted), str(r.updated), str(r.deleted), str(r.unchanged))
        else:
            t.add_row(r.name, r.status, str(r.inserted), str(r.updated), str(r.deleted), str(r.failed),
                      str(r.unchanged), f"{r.seconds:.2f}")
    console.print(t)
    for r in results:
        for note in r.notes:
            console.print(f"{r.name}: {note}", markup=False, highlight=False)
        for e in r.errors[:5]:
            err.print(f"{r.name}: {e}", markup=False, highlight=False)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@sync_app.command("reset")
def sync_reset(name: str = typer.Argument(..., help="Sync name.")) -> None:
    """Forget what a sync has sent: its next run sends every record as new."""
    from tessera.syncs import reset_sync

    with Workspace.open(_ws_path()) as ws:
        if name not in {s.name for s in ws.config.syncs}:
            raise ConfigError(f"unknown sync '{name}'")
        with ws.writing():
            reset_sync(ws, name)
    console.print(f"Sync {name} reset: its next run sends everything.")


schedule_app = typer.Typer(help="Cron schedules of imports, runs and syncs.", invoke_without_command=True)
app.add_typer(schedule_app, name="schedule")


@schedule_app.callback()
def schedule_list(ctx: typer.Context) -> None:
    """List the scheduled jobs and their next runs."""
    if ctx.invoked_subcommand is not None:
        return
    with Workspace.open(_ws_path()) as ws:
        jobs = ws.scheduler().next_runs()
    if not jobs:
        console.print("No schedule: set schedule on sources, syncs or pipeline.")
        return
    t = Table(title="Schedules")
    for col in ("job", "schedule", "next run", "last started", "last status"):
        t.add_column(col)
    for j in jobs:
        state = "running" if j["running"] else (j["last_status"] or "-")
        t.add_row(j["job"], j["schedule"], j["next_run"], j["last_started"] or "-", state)
    console.print(t)


@schedule_app.command("run")
def schedule_run(loop: bool = typer.Option(False, "--loop", help="Keep running due jobs until stopped."),
                 interval: float = typer.Option(15.0, help="Seconds between two checks with --loop.")) -> None:
    """Start the jobs that are due (once, or in a loop like the server does)."""
    with Workspace.open(_ws_path()) as ws:
        scheduler = ws.scheduler(interval=interval)
        if loop:
            console.print("Scheduler running; Ctrl-C stops it.")
            try:
                scheduler.loop()
            except KeyboardInterrupt:
                return
        done = scheduler.tick()
    if not done:
        console.print("Nothing is due.")
    for d in done:
        console.print(f"{d['job']}: {d['status']} {d.get('detail') or d.get('reason', '')}", markup=False)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
          port: int = typer.Option(8080, help="TCP port."),
          schedules: bool = typer.Option(True, "--schedules/--no-schedules",
                                         help="Start the scheduled imports, runs and syncs."),
          access_log: bool = typer.Option(False, help="Log every request.")) -> None:
    """Serve the workspace: the event collection API (/v1), the REST API (/api) and the schedules."""
    from tessera.collect.server import serve as serve_workspace

    path = _ws_path()
    Workspace.open(path).close()
    console.print(f"Serving {path.resolve()} on http://{host}:{port} (event collection at /v1)")
    serve_workspace(path, host=host, port=port, access_log=access_log, schedules=schedules)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        if STATE["debug"]:
            raise
        err.print(f"Error: {exc}", markup=False, highlight=False)
        sys.exit(1)
    except ConnectionFailed as exc:
        if STATE["debug"]:
            raise
        err.print(f"Error ({exc.reason.replace('_', ' ')}): {exc}", markup=False, highlight=False)
        sys.exit(1)
    except TesseraError as exc:
        if STATE["debug"]:
            raise
        err.print(f"Error: {exc}", markup=False, highlight=False)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - a bug of ours still ends in one line, not a traceback
        if STATE["debug"]:
            raise
        detail = (str(exc).strip().splitlines() or [""])[0][:500]
        err.print(f"Error: unexpected {type(exc).__name__}{': ' + detail if detail else ''}. This is a bug of "
                  "Tessera, not of your input: rerun with --debug for the traceback and report it.",
                  markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
