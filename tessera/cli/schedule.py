"""Schedules: ``tessera schedule [run]``."""

from __future__ import annotations


import typer
from rich.table import Table

from tessera.cli.common import app, console, open_workspace, server
from tessera.errors import BusyError

schedule_app = typer.Typer(help="Cron schedules of imports, runs and syncs.", invoke_without_command=True)
app.add_typer(schedule_app, name="schedule")


@schedule_app.callback()
def schedule_list(ctx: typer.Context) -> None:
    """List the scheduled jobs and their next runs."""
    if ctx.invoked_subcommand is not None:
        return
    with open_workspace() as ws:
        jobs = ws.scheduler().next_runs()
    if not jobs:
        console.print("No schedule: set schedule on sources, syncs or pipeline.")
        return
    t = Table(title="Schedules")
    for col in ("job", "schedule", "next run", "last started", "last status"):
        t.add_column(col, no_wrap=col == "job")
    for j in jobs:
        state = "running" if j["running"] else (j["last_status"] or "-")
        t.add_row(j["job"], j["schedule"], j["next_run"], j["last_started"] or "-", state)
    console.print(t)


@schedule_app.command("run")
def schedule_run(loop: bool = typer.Option(False, "--loop", help="Keep running due jobs until stopped."),
                 interval: float = typer.Option(15.0, help="Seconds between two checks with --loop.")) -> None:
    """Start the jobs that are due (once, or in a loop like the server does)."""
    client = server()
    if client is not None:
        raise BusyError(f"the server at {client.url} (pid {client.pid}) runs the schedules of this workspace; "
                        "see them with: tessera schedule")
    with open_workspace() as ws:
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


