"""The workspace: ``tessera init``, ``apply``, ``export``, ``status``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table


from tessera.cli.common import app, console, open_workspace, server, follow_job
from tessera.cli.setup import init_from
from tessera.errors import ConfigError

@app.command()
def init(path: Path = typer.Argument(..., help="Folder of the new workspace."),
         warehouse: Optional[str] = typer.Option(
             None, help="Engine: duckdb (embedded), spark or a postgresql:// URL; default TESSERA_WAREHOUSE, "
                        "else duckdb. The workspace remembers it."),
         metadata_url: Optional[str] = typer.Option(None, help="SQLAlchemy URL of the metadata store."),
         from_: Optional[Path] = typer.Option(None, "--from", help="A folder of exports: propose and apply "
                                              "a configuration read from its files.")) -> None:
    """Create a workspace folder."""
    if from_ is not None:
        return init_from(path, from_, warehouse=warehouse or os.environ.get("TESSERA_WAREHOUSE") or "duckdb",
                         metadata_url=metadata_url)
    from tessera.workspace import Workspace

    ws = Workspace.init(path, warehouse=warehouse, metadata_url=metadata_url)
    console.print(f"Workspace ready at [bold]{ws.path}[/] (engine {ws.adapter.name}).")
    console.print(f"Next: tessera -w {path} apply workspace.yaml")
    ws.close()


@app.command()
def apply(file: Path = typer.Argument(..., help="YAML configuration file."),
          prune: bool = typer.Option(False, "--prune", help="Accept a file that declares nothing: remove every "
                                                            "connection, source, dataset and sync.")) -> None:
    """Apply a YAML configuration (connections, sources, datasets) to the workspace."""
    client = server()
    if client is not None:
        if not file.is_file():  # a typo is not worth a failed job in the server's list
            raise ConfigError(f"file not found: {file}")
        changes = follow_job(client, "apply", {"path": str(file.resolve()), "prune": prune}, bars=False)["result"]
    else:
        with open_workspace() as ws:
            changes = ws.apply(file, prune=prune)
    if not any(changes.values()):
        console.print("No change.")
    for kind, items in changes.items():
        for item in items:
            console.print(f"{kind}: {item}")


@app.command("export")
def export_config(output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: stdout).")) -> None:
    """Print the workspace configuration as YAML."""
    with open_workspace() as ws:
        text = ws.export_config()
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"Wrote {output}")
    else:
        console.file.write(text)


@app.command()
def status() -> None:
    """Show published datasets and the last runs."""
    with open_workspace() as ws:
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


