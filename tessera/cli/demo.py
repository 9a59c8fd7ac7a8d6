"""The demo company: ``tessera demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from tessera.cli.common import app, console, progress_bars
from tessera.cli.runs import print_run

@app.command()
def demo(path: Path = typer.Argument(Path("demo-workspace"), help="Folder of the demo workspace."),
         size: int = typer.Option(2000, help="Number of people of the demo company."),
         seed: int = typer.Option(7, help="Random seed (same seed, same data).")) -> None:
    """Generate the demo company's files, run the pipeline and export the datasets."""
    from tessera.demo.generator import generate
    from tessera.workspace import Workspace

    path = path.resolve()
    ws = Workspace.init(path)
    company = path / "company"
    console.print(f"Generating the demo company ({size} people) in {company} ...")
    info = generate(company, size=size, seed=seed)
    ws.apply(company / "workspace.yaml")
    bar, update = progress_bars()
    with bar:
        result = ws.run(progress=update)
    print_run(result)
    exports = path / "exports"
    for name in ws.datasets():
        ws.export_data(name, exports / f"{name}.csv")
    ws.close()
    console.print(f"\nDatasets exported to [bold]{exports}[/]; workspace at [bold]{path}[/].")
    console.print(f"Try: .venv/bin/tessera -w {path} status | rejects | segments list | explain <tessera_id>")
    console.print(f"Serve it (REST API, events, schedules): .venv/bin/tessera -w {path} serve")
    _ = info


