"""``tessera audit``: the audit log of the workspace (logins, user and token changes, jobs, overrides)."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from tessera.cli.common import console, open_workspace

app = typer.Typer(help="The audit log: who did what, when.", invoke_without_command=True)


@app.callback()
def audit(ctx: typer.Context,
          limit: int = typer.Option(50, "--limit", "-n", help="Lines to show."),
          action: Optional[str] = typer.Option(None, "--action", help="Actions starting with this (job, login...)."),
          actor: Optional[str] = typer.Option(None, "--actor", help="Only what this user did."),
          as_json: bool = typer.Option(False, "--json", help="One JSON object a line.")) -> None:
    """Show the latest lines of the audit log, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    with open_workspace() as ws:
        rows = ws.store.list_audit(max(1, min(limit, 10_000)), action=action, actor=actor)
    if as_json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return
    if not rows:
        console.print("The audit log is empty.")
        return
    t = Table(title="Audit log")
    for col in ("id", "when", "who", "action", "target", "details"):
        t.add_column(col)
    for r in rows:
        details = json.dumps(r.get("details"), sort_keys=True) if r.get("details") else ""
        t.add_row(str(r["id"]), (r["at"] or "")[:19], escape(r.get("actor") or ""), r["action"],
                  escape(r.get("target") or ""), escape(details[:120]))
    console.print(t)
