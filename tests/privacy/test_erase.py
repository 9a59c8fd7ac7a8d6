"""Erase one customer everywhere: published datasets, raw batches, archived files, events, syncs;
the suppression list keeps them out of every later import; the receipt counts what went where."""

from __future__ import annotations

import json
import shutil

from privacy_helpers import CRM, ORDERS, customer, webhook_connection

from tessera.syncs import run_syncs

HOOK = {"name": "hook", "dataset": "contacts", "connection": "hook", "key": "customer_id", "mode": "upsert",
        "fields": {"id": "customer_id", "mail": "email"}}


def _raw_text(ws) -> str:
    """Every raw batch, as text."""
    out = []
    for name in ws.adapter.list_tables():
        if name.startswith("_tessera_raw_"):
            out.append(json.dumps(ws.adapter.to_arrow(ws.adapter.table(name)).to_pylist(), default=str))
    return "\n".join(out)


def test_erase_removes_the_customer_everywhere_and_a_reimport_does_not_bring_them_back(shop, receiver, tmp_path,
                                                                                        engine):
    ws = shop([HOOK], [webhook_connection(receiver.url)])
    ana = customer(ws, "C1")
    assert ana["email"] == "ana@example.com" and ana["phone"] == "+33612345678"
    [sent] = run_syncs(ws)
    assert sent.inserted == 3
    receiver.clear()

    receipt = ws.erase(" ANA@example.com", actor="dpo@shop.example")  # found as the sources normalize it
    assert receipt["tessera_ids"] == [ana["tessera_id"]]
    assert receipt["identifiers"] == {"customer_id": 1, "email": 1, "phone": 1, "anonymous_id": 1}
    assert receipt["suppressed"] == 4
    removed = {r["where"]: r["rows"] for r in receipt["removed"]}
    assert removed["dataset contacts (rows)"] == 1
    assert removed["dataset contacts (source records and lineage)"] == 2  # the CRM row and the identify
    assert removed["dataset orders (rows)"] == 2
    assert removed["dataset events (rows)"] == 2  # the identify and the anonymous page view
    assert removed["raw batch 1 of source crm (crm_1.csv)"] == 1
    assert removed["raw batch 2 of source orders (orders_1.csv)"] == 2
    assert removed["archived file crm_1.csv of source crm"] == 1
    assert removed["archived file orders_1.csv of source orders"] == 2
    assert removed["collected events"] == 2
    assert removed["sync hook (a delete is sent at its next run)"] == 1
    assert receipt["rows_removed"] == sum(removed.values())

    # Gone from every table and file; the others stay whole.
    assert customer(ws, "C1") is None and customer(ws, "C2")["first_name"] == "Bo"
    raw = _raw_text(ws)
    assert "ana@" not in raw.lower() and "06 12 34" not in raw and "bo@example.com" in raw
    files = {f["name"]: f for f in ws.store.list_imported_files()}
    crm_archived = open(files["crm_1.csv"]["archive_path"]).read()
    assert crm_archived == CRM.replace('C1, Ana@Example.com ,06 12 34 56 78,Ana,"likes\nred",yes,2024-11-01 09:00:00\n', "")
    orders_archived = open(files["orders_1.csv"]["archive_path"]).read()
    assert orders_archived == "order_id,customer_email,amount\nO2,bo@example.com,20\nO4,cy@example.com,7\n"
    events = ws.collected_events()
    assert sorted(e["message_id"] for e in events) == ["t1"]
    orders = ws.adapter.to_arrow(ws.table("orders")).column("order_id").to_pylist()
    assert sorted(orders) == ["O2", "O4"]

    # The receipt is in the audit log, naming the customer by id, never by e-mail or phone.
    [line] = ws.store.list_audit(action="privacy.erase")
    assert line["actor"] == "dpo@shop.example" and line["target"] == f"customer {ana['tessera_id']}"
    assert line["details"]["removed"] == receipt["removed"]
    assert "ana@" not in json.dumps(line).lower() and "+3361" not in json.dumps(line)
    assert ws.privacy_requests()[0]["status"] == "done"

    # The webhook of an upsert sync receives the delete at the sync's next run.
    [after] = run_syncs(ws)
    assert after.deleted == 1
    assert [(r["op"], r["key"]) for r in receiver.accepted()] == [("delete", "C1")]

    # The same files under new names, and a new export that still holds Ana: she stays out.
    data = tmp_path / "data"
    shutil.copy(data / "crm_1.csv", data / "crm_copy.csv")
    (data / "crm_2.csv").write_text(CRM.replace("C3,cy@", "C4,dee@").replace("Cy,", "Dee,"))
    (data / "orders_2.csv").write_text(ORDERS.replace("O", "P"))
    result = ws.run()
    assert result.sources["crm"]["rows_suppressed"] == 1
    assert result.sources["orders"]["rows_suppressed"] == 2
    assert customer(ws, "C1") is None and customer(ws, "C4")["first_name"] == "Dee"
    assert "ana@" not in _raw_text(ws).lower()
    orders = ws.adapter.to_arrow(ws.table("orders")).column("order_id").to_pylist()
    assert sorted(orders) == ["O2", "O4", "P2", "P4"]
    listing = ws.suppressions()
    assert listing["count"] == 4 and listing["kinds"] == {"customer_id": 1, "email": 1, "phone": 1, "anonymous_id": 1}


def _log(path, messages: list[dict]) -> int:
    """Write one request of ``messages`` to the workspace's event log, as the server does."""
    import time

    from tessera.collect.loader import log_directory
    from tessera.collect.log import LogWriter
    from tessera.collect.messages import build_record, check_messages

    writer = LogWriter(log_directory(path))
    writer.open()
    checked = check_messages(messages, "batch", connection="web")
    writer.write([build_record("web", time.time_ns() // 1000, None, checked)])
    end = writer.end
    writer.close()
    return end


def test_events_after_the_erase_are_dropped_and_the_log_forgets_the_customer(shop):
    from tessera.collect.loader import Loader, log_directory
    from tessera.collect.log import list_segments, read_records
    from tessera.collect.scrub import scrub_log

    ws = shop()
    # Collected through the log before the erase: one of Ana's, one of Bo's.
    end = _log(ws.path, [
        {"type": "track", "userId": "C1", "event": "Viewed", "messageId": "before-ana"},
        {"type": "track", "userId": "C2", "event": "Viewed", "messageId": "before-bo",
         "context": {"traits": {"email": "bo@example.com"}}},
    ])
    assert Loader(ws).load(end).events == 2
    receipt = ws.erase("C1", event_log=scrub_log(ws.path))
    removed = {r["where"]: r for r in receipt["removed"]}
    assert removed["collected events"]["rows"] == 3  # the identify, the page view and the track
    assert removed["event log (messages not loaded yet or kept in the last segment)"]["rows"] == 1
    [(_, segment)] = list_segments(log_directory(ws.path))
    assert b"before-ana" not in segment.read_bytes() and b"before-bo" in segment.read_bytes()
    records, _ = read_records(log_directory(ws.path), 0, end)  # offsets and CRCs still hold
    assert len(records) == 1

    # After the erase, the same e-mail (any case), user id or anonymous id is dropped at load.
    end = _log(ws.path, [
        {"type": "identify", "userId": "new-id", "messageId": "after-1", "traits": {"email": " ANA@example.com"}},
        {"type": "track", "userId": "C1", "event": "Viewed", "messageId": "after-2"},
        {"type": "page", "anonymousId": "a1", "messageId": "after-3"},
        {"type": "track", "userId": "C3", "event": "Viewed", "messageId": "after-4"},
    ])
    result = Loader(ws).load(end)
    assert (result.events, result.suppressed, result.duplicates) == (1, 3, 0)
    assert sorted(e["message_id"] for e in ws.collected_events()) == ["after-4", "before-bo", "t1"]
    ws.run()
    assert ws.adapter.count(ws.table("contacts").filter(ws.table("contacts").customer_id == "new-id")) == 0


def test_an_erase_forgets_the_identity_overrides_of_the_customer(shop):
    ws = shop()
    ana, bo = customer(ws, "C1"), customer(ws, "C2")
    ws.identity_override("split", ["crm:C1"], user="test")
    ws.identity_override("merge", ["crm:C2", "crm:C3"], user="test")
    receipt = ws.erase(ana["tessera_id"])
    assert {r["where"]: r["rows"] for r in receipt["removed"]}["identity overrides of dataset contacts"] == 1
    assert [o["records"] for o in ws.identity_overrides()] == [["crm:C2", "crm:C3"]]
    assert customer(ws, "C2")["tessera_id"] == bo["tessera_id"]
