"""``tessera identity``: the review queue of probabilistic matching and manual overrides."""

from __future__ import annotations

import os
from typing import Optional

import typer
from rich.table import Table

from tessera.cli.common import console, open_workspace

app = typer.Typer(help="Review matches and override identity resolution (merge, split).", no_args_is_help=True)

DatasetOpt = typer.Option(None, "--dataset", "-d", help="Dataset (default: the first deduplicated one).")
NoteOpt = typer.Option(None, "--note", help="Why (kept with the decision).")
UserOpt = typer.Option(None, "--by", help="Who decides (kept with the decision; default: $USER).")


def _open(_ctx: typer.Context):
    return open_workspace()


def _user(by: str | None) -> str | None:
    return by or os.environ.get("USER")


@app.command()
def review(ctx: typer.Context, dataset: Optional[str] = DatasetOpt,
           limit: int = typer.Option(20, help="How many pairs to show.")) -> None:
    """List the pairs waiting for a decision, with the evidence of each comparison."""
    with _open(ctx) as ws:
        queue = ws.identity_review(dataset, limit=limit)
    if not queue:
        console.print("No pair waits for review.")
        return
    for p in queue:
        t = Table(title=f"{p['record_l']}  vs  {p['record_r']}   probability {p['probability']:.4f}",
                  title_justify="left")
        for col in ("comparison", "left", "right", "level"):
            t.add_column(col)
        for e in p["evidence"]:
            t.add_row(e["column"], str(e["left"] if e["left"] is not None else "-"),
                      str(e["right"] if e["right"] is not None else "-"), e["level"])
        console.print(t)
    console.print(f"Decide with: tessera identity accept|reject RECORD RECORD ({len(queue)} shown)")


@app.command()
def accept(ctx: typer.Context, record_l: str = typer.Argument(..., help="A source record id (e.g. crm:42)."),
           record_r: str = typer.Argument(..., help="The other record of the pair."),
           dataset: Optional[str] = DatasetOpt, note: Optional[str] = NoteOpt, by: Optional[str] = UserOpt) -> None:
    """Accept a pair: its records are merged from the next run on."""
    with _open(ctx) as ws:
        d = ws.identity_decide(record_l, record_r, accept=True, dataset=dataset, user=_user(by), note=note)
    console.print(f"Accepted (override {d['id']}): {record_l} and {record_r} merge on the next run.")


@app.command()
def reject(ctx: typer.Context, record_l: str = typer.Argument(..., help="A source record id (e.g. crm:42)."),
           record_r: str = typer.Argument(..., help="The other record of the pair."),
           dataset: Optional[str] = DatasetOpt, note: Optional[str] = NoteOpt, by: Optional[str] = UserOpt) -> None:
    """Reject a pair: matching never links these two records again."""
    with _open(ctx) as ws:
        d = ws.identity_decide(record_l, record_r, accept=False, dataset=dataset, user=_user(by), note=note)
    console.print(f"Rejected (override {d['id']}): {record_l} and {record_r} are not linked by matching.")


@app.command()
def split(ctx: typer.Context, records: list[str] = typer.Argument(..., help="Source record ids to split off."),
          dataset: Optional[str] = DatasetOpt, note: Optional[str] = NoteOpt, by: Optional[str] = UserOpt) -> None:
    """Split records off their unified record (kept across runs and re-imports)."""
    with _open(ctx) as ws:
        d = ws.identity_override("split", records, dataset=dataset, user=_user(by), note=note)
    console.print(f"Split (override {d['id']}): {', '.join(d['records'])} leave their unified record on the next run.")


@app.command()
def merge(ctx: typer.Context, records: list[str] = typer.Argument(..., help="Two or more source record ids."),
          dataset: Optional[str] = DatasetOpt, note: Optional[str] = NoteOpt, by: Optional[str] = UserOpt) -> None:
    """Always merge these records (kept across runs and re-imports)."""
    with _open(ctx) as ws:
        d = ws.identity_override("merge", records, dataset=dataset, user=_user(by), note=note)
    console.print(f"Merge (override {d['id']}): {', '.join(d['records'])} are one customer from the next run on.")


@app.command()
def overrides(ctx: typer.Context, dataset: Optional[str] = DatasetOpt,
              remove: Optional[int] = typer.Option(None, "--remove", help="Forget the override with this id.")) -> None:
    """List the manual overrides and review decisions (or remove one)."""
    with _open(ctx) as ws:
        if remove is not None:
            ws.identity_remove_override(remove, user=_user(None))
            console.print(f"Override {remove} removed; the next run no longer applies it.")
            return
        rows = ws.identity_overrides(dataset)
    t = Table(title="Identity overrides")
    for col in ("id", "dataset", "kind", "records", "origin", "by", "at", "note"):
        t.add_column(col)
    for o in rows:
        t.add_row(str(o["id"]), o["dataset"], o["kind"], ", ".join(o["records"]), o["origin"],
                  o.get("created_by") or "", str(o["created_at"])[:19], o.get("note") or "")
    console.print(t)
