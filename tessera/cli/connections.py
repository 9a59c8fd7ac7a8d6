"""Connections: ``tessera connections list | test``."""

from __future__ import annotations


import typer
from rich.markup import escape
from rich.table import Table

from tessera.cli.common import app, console, open_workspace

connections_app = typer.Typer(help="Connections to files, databases, servers and destinations.", no_args_is_help=True)
app.add_typer(connections_app, name="connections")


@connections_app.command("list")
def connections_list() -> None:
    """List the connections (secrets are never shown)."""
    with open_workspace() as ws:
        config = ws.config
    t = Table(title="Connections")
    for col in ("connection", "type", "where", "used by"):
        t.add_column(col, no_wrap=col == "connection")
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
    with open_workspace() as ws:
        lines = ws.test_connection(name)
    for line in lines:
        console.print(f"[green]ok[/] {escape(line)}")
    console.print(f"Connection {name}: OK")


