"""The customer search as you type (tessera.browse.customers.search_customers) and its index
(tessera.datasets.search): found by a name's start, an e-mail, a phone number written any way, any
id; never an erased customer; the index kept by the server's start for a workspace without one."""

from __future__ import annotations

import json

import pytest

from tests.test_pipeline import CONFIG, CRM, ORDERS, SHOP, rows

FILES = {"crm_1.csv": CRM.encode("utf-8"), "shop.json": json.dumps(SHOP),
         "orders.ndjson": "\n".join(json.dumps(o) for o in ORDERS) + "\n"}


def found(ws, text: str) -> list[str]:
    from tessera.browse.customers import search_customers

    return [r["tessera_id"] for r in search_customers(ws, text)["results"]]


@pytest.fixture
def shop(make_workspace, engine):
    ws = make_workspace(CONFIG, FILES)
    ws.run()
    by_email = {r["email"]: r for r in rows(ws, "contacts")}
    return ws, by_email


def test_search_by_name_email_phone_and_id_and_its_index_built_again(shop):
    ws, by_email = shop
    jean = by_email["jean.dupont@example.com"]["tessera_id"]  # crm 1 + shop W1, phone +33612345678
    luc = by_email["other@example.com"]["tessera_id"]  # crm 4 (luc@example.com) + shop W2
    marie = by_email["marie@example.com"]["tessera_id"]
    # a name's start, words in any order, any case
    for text in ("dup", "Dupont", "jean dup", "DUPONT Je", "je du"):
        assert found(ws, text) == [jean], text
    assert found(ws, "Dupont Marie") == []  # every word must match the same customer
    # an e-mail (whole, its start, its domain; an old address kept by a source record)
    assert found(ws, "Jean.Dupont@Example.com") == [jean]
    assert found(ws, "marie@") == [marie]
    assert found(ws, "luc@exa") == [luc]  # the CRM's address, not the one the merge kept
    assert jean in found(ws, "example.com") and marie in found(ws, "example.com")
    # a phone number written any way, whole or its start
    for text in ("06 12 34 56 78", "+33 6 12 34 56 78", "0033612345678", "06.12.34", "612345", "+33612345678",
                 "+33 (0)6 12 34"):
        assert found(ws, text) == [jean], text
    assert found(ws, "07 11 22") == [luc]
    # any id: the unified id, a source record's key
    assert found(ws, jean) == [jean]
    assert found(ws, jean[:6].lower()) and jean in found(ws, jean[:-2])
    assert found(ws, "W2") == [luc] and found(ws, "w2") == [luc]
    # nothing, and too short
    assert found(ws, "zzqx") == [] and found(ws, "j") == []
    # the start of a phone number too short to be searched says so
    from tessera.browse.customers import search_customers

    assert search_customers(ws, "06")["results"] == [] and search_customers(ws, "06")["short_number"]
    assert "short_number" not in search_customers(ws, "zzqx") and "short_number" not in search_customers(ws, "06 12 3")
    # the exact lookup (/api/customers) and the search share their core: the same customer
    from tessera.browse.customers import find_customers

    assert [r["tessera_id"] for r in find_customers(ws, phone="06 12 34 56 78")["data"]] == [jean]

    # built again from the published tables (a workspace published before the index existed gets
    # it at the server's start: Workspace.index_for_reads)
    before = ws.adapter.published_target("contacts__search")
    assert ws.build_search_index(missing_only=True) == []  # published by the run
    assert ws.build_search_index() == ["contacts"]
    after = ws.adapter.published_target("contacts__search")
    assert after != before and not ws.adapter.exists(before)  # the one it replaces is dropped
    assert found(ws, "dupont") == [jean] and found(ws, "+33 6 12") == [jean]
    assert "contacts__search.token" not in ws.index_for_reads()  # it exists: not built again


def test_an_erased_customer_is_never_found(shop):
    ws, by_email = shop
    ana = by_email["ana@example.com"]["tessera_id"]
    assert found(ws, "ana@example.com") == [ana] and found(ws, "lopez") == [ana]
    receipt = ws.erase("ana@example.com")
    assert "dataset contacts (search index)" in {r["where"] for r in receipt["removed"]}
    for text in ("ana@example.com", "ana", "lopez", ana):
        assert found(ws, text) == [], text
    t = ws.table("contacts__search")
    assert ws.adapter.count(t.filter(t.tessera_id == ana)) == 0
    # and after the next run too
    ws.run(full=True)
    assert found(ws, "lopez") == []


def test_a_large_dataset_gets_its_index_from_the_server_not_the_run(shop, monkeypatch):
    ws, by_email = shop
    jean = by_email["jean.dupont@example.com"]["tessera_id"]
    assert ws.adapter.published_target("contacts__search") is not None  # small: built by the run
    # from this many rows a full run leaves the index to the server (its last one withdrawn: it
    # would find the customers of the last publication)
    monkeypatch.setenv("TESSERA_SEARCH_INDEX_RUN_ROWS", "1")
    ws.run(full=True)
    assert ws.adapter.published_target("contacts__search") is None
    assert found(ws, "dupont") == [] and found(ws, "jean.dupont@example.com") == [jean]  # exact lookups only
    assert ws.run().unchanged  # nothing new: still nothing to do
    # what the server does after each run and at its start
    assert "contacts__search.token" in ws.index_for_reads()
    assert found(ws, "dupont") == [jean]
    assert ws.run().unchanged  # the index built since is not a change of the inputs
    monkeypatch.setenv("TESSERA_SEARCH_INDEX_RUN_ROWS", "many")
    with pytest.raises(Exception, match="TESSERA_SEARCH_INDEX_RUN_ROWS.*not a number"):
        ws.run(full=True)


def test_a_server_s_run_publishes_its_tables_indexed_and_its_search_index(shop, monkeypatch):
    """A server's run (``for_reads``) indexes its new tables before publishing them, and builds the
    search index whatever the dataset's size: nothing is left to index after it."""
    ws, by_email = shop
    jean = by_email["jean.dupont@example.com"]["tessera_id"]
    monkeypatch.setenv("TESSERA_SEARCH_INDEX_RUN_ROWS", "1")  # a CLI run would leave it to the server
    result = ws.run(full=True, for_reads=True)
    assert ws.adapter.published_target("contacts__search") is not None
    assert found(ws, "dupont") == [jean]
    records, data = (ws.adapter.published_target(v) for v in ("contacts__records", "contacts"))
    if ws.adapter.name == "duckdb":  # the engine with indexes here (PostgreSQL's too; Spark has none)
        assert {"contacts.tessera_id", "contacts__records.tessera_id", "contacts__records.email"} <= set(result.indexed)
        indexed = ws.adapter.sql("SELECT table_name FROM duckdb_indexes()").fetchall()
        assert (records,) in indexed and (data,) in indexed
    assert not [m for m in ws.index_for_reads() if m.startswith(("_tessera_r", "contacts"))]  # nothing left
