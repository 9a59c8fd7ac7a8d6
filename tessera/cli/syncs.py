"""Syncs: ``tessera sync list | run | reset``."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from tessera.cli.common import app, console, err, open_workspace, server, follow_job
from tessera.errors import ConfigError

sync_app = typer.Typer(help="Syncs of datasets to destinations.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")


@sync_app.command("list")
def sync_list() -> None:
    """List the syncs with their dataset, destination and mode."""
    with open_workspace() as ws:
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
    client = server()
    if client is not None:
        job = follow_job(client, "sync", {"syncs": names or None, "dry_run": dry_run}, bars=False)
        from tessera.syncs.runner import SyncResult

        results = [SyncResult(**r) for r in job["result"]]
    else:
        with open_workspace() as ws:
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
    client = server()
    if client is not None:
        follow_job(client, "sync_reset", {"sync": name}, bars=False)
    else:
        with open_workspace() as ws:
            if name not in {s.name for s in ws.config.syncs}:
                raise ConfigError(f"unknown sync '{name}'")
            with ws.writing():
                from tessera.syncs import reset_sync

                reset_sync(ws, name)
    console.print(f"Sync {name} reset: its next run sends everything.")


