"""``tessera init WS --from DIR`` and ``tessera setup propose DIR``: the guided setup."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from tessera.errors import WorkspaceError

if TYPE_CHECKING:
    from tessera.setup import Proposal

app = typer.Typer(help="Guided setup: a configuration proposed from a folder of exports.", no_args_is_help=True)
console = Console()


def print_proposal(proposal: Proposal) -> None:
    table = Table(title=f"Proposal for {proposal.folder}: {proposal.files} file(s), about "
                        f"{proposal.rows_estimate:,} rows, {proposal.seconds:.1f} s")
    for col in ("source", "files", "rows", "entity", "record keys", "relations"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for s in proposal.sources:
        table.add_row(s["name"], str(len(s["files"])), f"{s['rows']:,}", s["entity"], ", ".join(s["record_keys"]),
                      ", ".join(s["relations"]))
    console.print(table)
    datasets = ", ".join(d["name"] for d in proposal.config["datasets"])
    console.print(f"Datasets: {datasets}", markup=False, highlight=False)
    for d in proposal.doubts:
        console.print(f"Doubt: {d}", markup=False, highlight=False, style="yellow")


def init_from(path: Path, folder: Path, *, warehouse: str = "duckdb", metadata_url: str | None = None) -> None:
    """Create a workspace, propose a configuration from ``folder``, write it and apply it."""
    from tessera.setup import propose_config
    from tessera.workspace import Workspace

    if (Path(path) / "workspace.json").exists():
        with Workspace.open(path) as existing:
            configured = bool(existing.store.load_config())
        if configured:
            raise WorkspaceError(
                f"{Path(path).resolve()} already has a configuration: `init --from` never replaces one. Review a "
                f"proposal with `tessera setup propose {folder} -o proposal.yaml`, then "
                f"`tessera -w {path} apply proposal.yaml`, or choose a new folder.")
    proposal = propose_config(folder)
    ws = Workspace.init(path, warehouse=warehouse, metadata_url=metadata_url)
    try:
        target = ws.path / "workspace.yaml"
        target.write_text(proposal.yaml, encoding="utf-8")
        ws.apply(target)
    finally:
        ws.close()
    print_proposal(proposal)
    console.print(f"Workspace ready at [bold]{ws.path}[/] with the proposed configuration "
                  f"[bold]{target}[/] applied (evidence and doubts are comments in it).")
    console.print(f"Next: tessera -w {path} run")


@app.command()
def propose(folder: Path = typer.Argument(..., help="The folder of exported files."),
            output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                  help="File to write (default: stdout).")) -> None:
    """Propose a configuration for a folder of exports, without applying it."""
    from tessera.setup import propose_config

    proposal = propose_config(folder)
    if output:
        output.write_text(proposal.yaml, encoding="utf-8")
        print_proposal(proposal)
        console.print(f"Wrote {output}")
    else:
        typer.echo(proposal.yaml, nl=False)
