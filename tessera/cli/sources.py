"""``tessera sources``: the source catalog in the command line (list, show, preview)."""

from __future__ import annotations

import typer
from rich.table import Table

from tessera.cli.common import console, open_workspace

app = typer.Typer(help="The source catalog: what each source reads, its columns, files and rejects.",
                  no_args_is_help=True)


def _text(value) -> str:
    return "" if value is None else str(value)


@app.command("list")
def sources_list() -> None:
    """List the sources with their connection, what they read, record keys and imported files."""
    with open_workspace() as ws:
        config = ws.config
        files = ws.store.list_imported_files()
    t = Table(title="Sources")
    for col in ("source", "connection", "reads", "record keys", "files", "rows", "rejected at import"):
        t.add_column(col, justify="right" if col in ("files", "rows", "rejected at import") else "left",
                     no_wrap=col == "source")
    for s in config.sources:
        mine = [f for f in files if f["source"] == s.name]
        t.add_row(s.name, s.connection, s.pattern or s.table or (s.query and "(query)") or "(events)",
                  ", ".join(s.record_keys), str(len(mine)), str(sum(f["rows"] or 0 for f in mine)),
                  str(sum(f["rejected"] or 0 for f in mine)))
    console.print(t)


@app.command("show")
def sources_show(name: str = typer.Argument(..., help="Source name.")) -> None:
    """Show a source: columns and types, record keys, relations, imported files and rejects."""
    with open_workspace() as ws:
        info = ws.source(name)
    console.print(f"Source [bold]{info['name']}[/] reads {info['what']} from connection "
                  f"{info['connection']} ({info['connection_type']}); record key(s): "
                  f"{', '.join(info['record_keys'])}; duplicate keys in a file: {info['on_duplicate_key']}; "
                  f"feeds: {', '.join(info['datasets']) or 'no dataset'}.", highlight=False)
    cols = Table(title="Columns")
    for col in ("column", "inferred type", "declared type", "normalization"):
        cols.add_column(col)
    for c in info["columns"]:
        cols.add_row(c["column"], c["inferred"], c["declared"] or "", ", ".join(c["normalize"]))
    if not info["columns"]:
        console.print("No column known yet: import the source (tessera run).")
    else:
        console.print(cols)
    if info["relations"]:
        rel = Table(title="Relations")
        rel.add_column("column")
        rel.add_column("points to")
        for r in info["relations"]:
            rel.add_row(r["column"], r["to"])
        console.print(rel)
    files = Table(title="Imported files")
    for col in ("file", "batch", "imported at", "rows", "rejected"):
        files.add_column(col)
    for f in info["files"]:
        files.add_row(f["name"], str(f["batch_id"]), _text(f["imported_at"])[:19], _text(f["rows"]),
                      _text(f["rejected"]))
    console.print(files)
    if info["rejected_rows"]:
        rej = Table(title=f"Rejected rows ({info['rejected_rows']}; all: tessera rejects --source {name})")
        for col in ("file", "line", "column", "reason"):
            rej.add_column(col)
        for r in info["rejects"]:
            rej.add_row(_text(r["file"]), _text(r["line"]), _text(r["column_name"]), _text(r["reason"]))
        console.print(rej)


@app.command("preview")
def sources_preview(name: str = typer.Argument(..., help="Source name."),
                    limit: int = typer.Option(10, help="Rows to show.")) -> None:
    """Show the first rows of a source after normalization and typing, as the next run sees them."""
    with open_workspace() as ws:
        rows = ws.preview_source(name, limit)
    t = Table(title=f"{name}: first {rows.num_rows} row(s) after normalization")
    shown = [c for c in rows.column_names if not c.startswith("_tessera_") or c == "_tessera_line"]
    for c in shown:
        t.add_column("line" if c == "_tessera_line" else c)
    for r in rows.to_pylist():
        t.add_row(*[_text(r[c]) for c in shown])
    console.print(t)
