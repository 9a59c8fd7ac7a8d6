"""``tessera privacy``: erase or export one customer everywhere, and the suppression list.

``erase`` is a write: with a server running it is sent to the server (a job of its writer
queue), else it runs here. ``export``, ``suppressions`` and ``requests`` are reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from tessera.cli.common import console, open_workspace, server
from tessera.cli.users import actor

app = typer.Typer(help="Privacy: erase or export one customer everywhere; the suppression list.",
                  no_args_is_help=True)

DatasetOpt = typer.Option(None, "--dataset", "-d", help="The customer dataset (default: every deduplicated one).")


def _print_receipt(receipt: dict) -> None:
    ids = ", ".join(receipt["tessera_ids"]) or "(no published record)"
    console.print(f"Erased {escape(receipt['subject'])} ({ids}): {receipt['rows_removed']} row(s) removed, "
                  f"{receipt['suppressed']} identifier(s) added to the suppression list "
                  f"(request {receipt['request']}, {receipt['seconds']} s).", highlight=False)
    t = Table(title="Receipt (also in the audit log: tessera audit --action privacy)")
    t.add_column("where")
    t.add_column("rows", justify="right")
    t.add_column("how")
    for r in receipt["removed"]:
        t.add_row(escape(r["where"]), str(r["rows"]), escape(str(r.get("how") or "deleted")))
    console.print(t)


@app.command()
def erase(customer: str = typer.Argument(..., help="A tessera_id, or an e-mail, a phone, a customer id..."),
          dataset: Optional[str] = DatasetOpt,
          yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Erase a customer everywhere now: datasets, raw batches, archived files, events, syncs."""
    if not yes:
        typer.confirm(f"Erase {customer} from every dataset, file and event of the workspace? This cannot be "
                      "undone", abort=True)
    client = server()
    if client is not None:
        # an erase at millions of rows takes tens of seconds: wait for it longer than for a read
        receipt = client.call("POST", "/api/privacy/erase", json={"customer": customer, "dataset": dataset},
                              timeout=900)
    else:
        from tessera.collect.scrub import scrub_log  # imported here: it loads the collector

        with open_workspace() as ws:
            receipt = ws.erase(customer, dataset=dataset, actor=actor(), event_log=scrub_log(ws.path))
    _print_receipt(receipt)


@app.command()
def export(customer: str = typer.Argument(..., help="A tessera_id, or an e-mail, a phone, a customer id..."),
           output: Path = typer.Option(..., "--output", "-o", help="File to write: .json, or .zip (CSV files)."),
           fmt: Optional[str] = typer.Option(None, "--format", help="json or zip (default: from the file's suffix)."),
           dataset: Optional[str] = DatasetOpt) -> None:
    """Export everything held on a customer (attributes and their sources, records, events...)."""
    with open_workspace() as ws:
        doc = ws.export_customer(customer, output, fmt, dataset=dataset, actor=actor())
    sizes = {k: len(doc[k]) for k in ("records", "events", "segments")}
    console.print(f"Wrote {doc['file']}: customer {', '.join(doc['tessera_ids']) or '(no published record)'}, "
                  f"{sizes['records']} source record(s), {sum(len(v) for v in doc['source_rows'].values())} raw "
                  f"row(s), {sizes['events']} event(s), {sizes['segments']} segment(s).", highlight=False)


@app.command()
def suppressions(limit: int = typer.Option(20, help="Entries to show."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The suppression list: salted hashes of the identifiers of erased customers."""
    with open_workspace() as ws:
        info = ws.suppressions(limit)
    if as_json:
        console.print_json(json.dumps(info))
        return
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(info["kinds"].items())) or "none"
    console.print(f"{info['count']} suppressed identifier(s) ({kinds}).")
    t = Table()
    for col in ("hash (prefix)", "kind", "request", "suppressed at"):
        t.add_column(col)
    for r in info["rows"]:
        t.add_row(r["hash"], r["kind"], str(r["request"]), r["suppressed_at"] or "")
    if info["rows"]:
        console.print(t)


@app.command()
def requests(limit: int = typer.Option(20, help="Requests to show.")) -> None:
    """Erase and export requests, newest first, with what each removed or exported."""
    with open_workspace() as ws:
        rows = ws.privacy_requests(limit)
    t = Table(title="Privacy requests")
    for col in ("id", "kind", "subject", "by", "at", "status", "rows"):
        t.add_column(col)
    for r in rows:
        receipt = r.get("receipt") or {}
        rows_n = receipt.get("rows_removed", sum(v for v in (receipt.get("sections") or {}).values()
                                                if isinstance(v, int)))
        t.add_row(str(r["id"]), r["kind"], escape(r["subject"]), r["requested_by"] or "", r["requested_at"],
                  r["status"], str(rows_n))
    console.print(t)
