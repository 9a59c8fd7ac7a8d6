"""Export everything held on a customer (JSON, zip of CSV files), and consent with its history."""

from __future__ import annotations

import csv
import io
import json
import zipfile

from privacy_helpers import customer, webhook_connection
from event_helpers import add_events, event

from tessera.syncs import run_syncs


def test_the_export_holds_every_record_of_the_customer(shop, tmp_path):
    ws = shop()
    ana = customer(ws, "C1")
    doc = ws.export_customer("ana@example.com", tmp_path / "out" / "ana.json", actor="dpo@shop.example")
    assert doc["tessera_ids"] == [ana["tessera_id"]]
    assert [r["customer_id"] for r in doc["customer"]] == ["C1"]
    records = ws.table("contacts__records")
    expected = ws.adapter.count(records.filter(records.tessera_id == ana["tessera_id"]))
    assert len(doc["records"]) == expected == 2
    assert {(r["source"], r["attribute"], r["value"]) for r in doc["attribute_sources"]} >= {
        ("crm", "email", "ana@example.com"), ("crm", "phone", "+33612345678"), ("web_identities", "first_name", "Ana")}
    assert sorted(r["order_id"] for r in doc["related"]["orders"]) == ["O1", "O3"]
    assert sorted(r["message_id"] for r in doc["related"]["events"]) == ["i1", "p1"]
    assert [r["customer_id"] for r in doc["source_rows"]["crm"]] == ["C1"]
    assert doc["source_rows"]["crm"][0]["note"] == "likes\nred"
    assert sorted(r["order_id"] for r in doc["source_rows"]["orders"]) == ["O1", "O3"]
    assert sorted(e["message_id"] for e in doc["events"]) == ["i1", "p1"]
    assert doc["consent"]["current"]["email"]["granted"] is True
    assert json.loads((tmp_path / "out" / "ana.json").read_text())["tessera_ids"] == [ana["tessera_id"]]

    ws.export_customer(ana["tessera_id"], tmp_path / "ana.zip")
    with zipfile.ZipFile(tmp_path / "ana.zip") as z:
        names = set(z.namelist())
        assert {"customer.csv", "records.csv", "attribute_sources.csv", "events.csv", "consent.csv",
                "related_orders.csv", "related_events.csv", "source_rows_crm.csv", "source_rows_orders.csv",
                "segments.csv", "syncs.csv"} <= names
        rows = list(csv.DictReader(io.StringIO(z.read("records.csv").decode())))
        assert sorted(r["_tessera_record"] for r in rows) == sorted(r["_tessera_record"] for r in doc["records"])
    audit = ws.store.list_audit(action="privacy.export")
    assert len(audit) == 2 and audit[-1]["actor"] == "dpo@shop.example"
    assert audit[-1]["details"]["sections"]["records"] == 2 and "ana@" not in json.dumps(audit).lower()


def test_consent_follows_sources_and_events_with_its_history(shop, receiver):
    hook = {"name": "hook", "dataset": "contacts", "connection": "hook", "key": "customer_id", "mode": "mirror",
            "fields": {"id": "customer_id"}}
    ws = shop([hook], [webhook_connection(receiver.url, requires_consent=["email"])])
    ana = customer(ws, "C1")
    [sent] = run_syncs(ws)
    assert sorted(r["key"] for r in receiver.accepted()) == ["C1", "C3"]  # Bo said no in the CRM
    receiver.clear()
    # Ana withdraws through the website, Bo subscribes.
    add_events(ws, [
        event("track", "2024-12-05 09:00:00", user="C1", event="Consent Updated", message_id="c1",
              properties={"channel": "email", "granted": False}),
        event("track", "2024-12-05 09:00:00", user="C2", event="Consent Updated", message_id="c2",
              properties={"channel": "email", "granted": "yes"}),
    ])
    ws.run()
    consent = ws.profile(ana["tessera_id"])["consent"]
    assert consent["current"]["email"] == {"granted": False, "source": "events:web", "at": "2024-12-05T09:00:00"}
    assert [(h["granted"], h["source"]) for h in consent["history"]] == [(False, "events:web"), (True, "crm")]
    [after] = run_syncs(ws)
    assert sorted((r["op"], r["key"]) for r in receiver.accepted()) == [("delete", "C1"), ("insert", "C2")]
    # The same run again records nothing new: the history only keeps changes.
    ws.run()
    assert len(ws.consent_history(ana["tessera_id"])["history"]) == 2
