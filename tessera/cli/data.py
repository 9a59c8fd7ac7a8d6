"""Reading published data: ``tessera explain``, ``columns``, ``rejects``, ``export-data``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from tessera.cli.common import app, console, open_workspace

@app.command()
def explain(tessera_id: str = typer.Argument(..., help="A unified id (tessera_id)."),
            dataset: Optional[str] = typer.Option(None, help="Dataset (default: the first deduplicated one).")) -> None:
    """Show the source records of a unified record and the chain of keys that merged them."""
    with open_workspace() as ws:
        exp = ws.explain(tessera_id, dataset)
    for line in exp.lines():
        console.print(line, markup=False, highlight=False)


@app.command()
def columns(dataset: str = typer.Argument(..., help="Dataset name.")) -> None:
    """Show a dataset's columns with their type, semantic field and merge rule."""
    with open_workspace() as ws:
        cols = ws.describe(dataset)
    t = Table(title=f"Dataset {dataset}")
    for col in ("column", "type", "semantic field", "merge rule", "identity key", "from sources"):
        t.add_column(col, no_wrap=col == "column")
    for c in cols:
        semantic = f"{c['semantic']} ({c['semantic_from']})" if c["semantic"] else "-"
        origin = (escape(f"= {c['computed']}") if c.get("computed")
                  else ", ".join(f"{s}.{col}" for s, col in c["sources"].items()))
        t.add_row(c["column"], c["type"], semantic, c["merge"] or "-", "yes" if c["identity_key"] else "", origin)
    console.print(t)


@app.command("export-data")
def export_data(dataset: str = typer.Argument(..., help="Published dataset name."),
                output: Path = typer.Option(..., "--output", "-o", help="File to write (.csv or .parquet)."),
                fmt: Optional[str] = typer.Option(None, "--format", help="csv or parquet (default: from the file name).")) -> None:
    """Export a published dataset to CSV or Parquet."""
    with open_workspace() as ws:
        path = ws.export_data(dataset, output, fmt)
    console.print(f"Wrote {path}")


@app.command()
def rejects(source: Optional[str] = typer.Option(None, help="Only this source."),
            limit: int = typer.Option(20, help="Rows to show.")) -> None:
    """List rejected rows with their file, line and reason."""
    with open_workspace() as ws:
        rows = ws.adapter.to_arrow(ws.rejects(source).limit(limit)).to_pylist()
    t = Table(title="Rejected rows")
    for col in ("source", "file", "line", "column", "reason"):
        t.add_column(col, no_wrap=col in ("source", "line"))
    for r in rows:
        t.add_row(r["source"], r["file"], str(r["line"]), r["column_name"] or "", r["reason"])
    console.print(t)


