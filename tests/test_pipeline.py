"""Functional tests of a workspace on hand-written files: import, rejects, identity, merge, relations,
publication and re-runs. The same test bodies run on Spark with --spark."""

from __future__ import annotations

import json
import textwrap

import pytest

from tessera.errors import RunError, WorkspaceError
from tessera.workspace import Workspace

CRM = (
    "\ufeffid;prenom;nom;courriel;telephone;date_naissance;maj\r\n"
    "1;jean;DUPONT; Jean.Dupont@Example.com ;06 12 34 56 78;31/12/1980;2024-01-10\r\n"
    "2;Marie;Curie;marie@example.com;;01/02/1975;2024-01-11\r\n"
    "3;Paul;Martin;paul@example.com;+33 7 11 22 33 44;15/06/1990;2024-01-12;extra\r\n"
    "4;Luc;\"Bon;Net\";luc@example.com;0033711223344;15/06/1991;2024-01-13\r\n"
    ";Sans;Cle;sans@example.com;;;2024-01-13\r\n"
    "5;Test;Test;test@test.com;;;2024-01-13\r\n"
    "6;Ana;Lopez;ana@example.com;;;2024-01-14\r\n"
)
SHOP = [
    {"customer_id": "W1", "email": "jean.dupont@example.com", "first_name": "Jean", "last_name": "Dupont",
     "phone": None, "updated_at": "2024-03-01 10:00:00"},
    {"customer_id": "W2", "email": "other@example.com", "first_name": "Luc", "last_name": "Bonnet",
     "phone": "+33711223344", "updated_at": "2024-03-02 10:00:00"},
    {"customer_id": "W3", "email": "test@test.com", "first_name": "Zoe", "last_name": "Test",
     "phone": None, "updated_at": "2024-03-03 10:00:00"},
]
ORDERS = [
    {"order_id": "O1", "customer_id": "W1", "customer_email": "x@nowhere.com", "amount": "10.5"},
    {"order_id": "O2", "customer_id": None, "customer_email": "MARIE@example.com ", "amount": "20"},
    {"order_id": "O3", "customer_id": None, "customer_email": None, "amount": "abc"},
    {"order_id": "O4", "customer_id": "W9", "customer_email": None, "amount": "5"},
]

CONFIG = """
connections:
  - {name: files, type: local, path: data}
sources:
  - name: crm
    connection: files
    pattern: "crm_*.csv"
    record_keys: [id]
    normalize:
      courriel: [email]
      telephone: [{phone: {country: FR}}]
      date_naissance: [{date: {format: "%d/%m/%Y"}}]
      prenom: [trim, title]
      nom: [trim, title]
  - name: shop
    connection: files
    pattern: "shop.json"
    record_keys: [customer_id]
    normalize:
      email: [email]
      phone: [{phone: {country: FR}}]
  - name: shop_orders
    connection: files
    pattern: "orders.ndjson"
    record_keys: [order_id]
    types: {amount: float}
    normalize:
      customer_email: [email]
    relations:
      - {column: customer_id, to: shop.customer_id}
      - {column: customer_email, to: contacts.email}
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{column: email}, {column: phone}]
    shared_value_threshold: 10
    date_column: updated_at
    source_priority: [crm, shop]
    columns:
      - {name: email, semantic: Email}
      - {name: phone, semantic: Phone, merge: non_null_most_recent}
      - {name: first_name, merge: source_priority}
      - {name: last_name, merge: most_recent}
      - {name: birth_date, merge: non_null_most_recent}
      - {name: updated_at, type: timestamp, merge: max}
      - {name: crm_id, merge: concat_unique}
    mappings:
      - source: crm
        columns: {crm_id: id, email: courriel, phone: telephone, first_name: prenom, last_name: nom,
                  birth_date: date_naissance, updated_at: maj}
      - source: shop
        columns: {email: email, phone: phone, first_name: first_name, last_name: last_name,
                  updated_at: updated_at}
  - name: orders
    mappings:
      - source: shop_orders
        columns: {order_id: order_id, amount: amount}
"""


@pytest.fixture
def make_workspace(make_workspace, engine):
    """The shared factory (tests/conftest.py) with this module's files, on every engine."""

    def make(crm=CRM, shop=SHOP, orders=ORDERS, config=CONFIG, files=None):
        if files is None:
            files = {"crm_1.csv": crm.encode("utf-8"), "shop.json": json.dumps(shop),
                     "orders.ndjson": "\n".join(json.dumps(o) for o in orders) + "\n"}
        return make_workspace(config, files)

    return make


def rows(ws, name, order_by=None):
    t = ws.table(name)
    if order_by:
        t = t.order_by(order_by)
    return ws.adapter.to_arrow(t).to_pylist()


def test_run_unifies_contacts_across_sources(make_workspace):
    ws = make_workspace()
    result = ws.run()
    assert result.status == "succeeded"
    contacts = rows(ws, "contacts")
    by_email = {c["email"]: c for c in contacts}
    # CRM 1 and shop W1 share the email after normalization; CRM 4 and shop W2 share the phone.
    jean = by_email["jean.dupont@example.com"]
    assert jean["tessera_record_count"] == 2
    assert jean["phone"] == "+33612345678"
    assert jean["first_name"] == "Jean"  # source priority: crm first
    assert jean["last_name"] == "Dupont"
    assert str(jean["birth_date"]) == "1980-12-31"
    luc = [c for c in contacts if c["crm_id"] == "4"][0]
    assert luc["tessera_record_count"] == 2
    assert luc["email"] == "other@example.com"  # most recent (shop, March) wins
    # test@test.com is blocked: CRM 5 and shop W3 stay apart
    blocked = [c for c in contacts if c["email"] == "test@test.com"]
    assert len(blocked) == 2
    # 6 good CRM rows (row 3 has an extra column, one has no key) + 3 shop -> 7 records... merged into 7-2
    assert result.datasets["contacts"]["records"] == 8
    assert len(contacts) == 6


def test_rejects_keep_file_line_and_reason(make_workspace):
    ws = make_workspace()
    ws.run()
    rej = rows(ws, "tessera_rejects", ["source", "line"])
    crm = [r for r in rej if r["source"] == "crm"]
    assert [(r["line"]) for r in crm] == [4, 6]
    assert "column" in crm[0]["reason"]
    assert "record key" in crm[1]["reason"]
    assert all(r["file"] == "crm_1.csv" for r in crm)
    orders = [r for r in rej if r["source"] == "shop_orders"]
    assert [(r["line"], r["column_name"]) for r in orders] == [(3, "amount")]
    assert "abc" in orders[0]["reason"]


def test_orders_get_the_contact_id_whichever_identifier_they_carry(make_workspace):
    ws = make_workspace()
    ws.run()
    contacts = {c["email"]: c["tessera_id"] for c in rows(ws, "contacts")}
    orders = {o["order_id"]: o for o in rows(ws, "orders")}
    assert orders["O1"]["tessera_contacts_id"] == contacts["jean.dupont@example.com"]  # by shop customer id
    assert orders["O2"]["tessera_contacts_id"] == contacts["marie@example.com"]  # by email
    assert orders["O4"]["tessera_contacts_id"] is None  # unknown customer
    assert "O3" not in orders  # bad amount: rejected


def test_rerun_changes_nothing_and_ids_are_stable(make_workspace):
    ws = make_workspace()
    ws.run()
    before = rows(ws, "contacts", ["tessera_id"])
    again = ws.run()
    assert again.sources["crm"]["files_new"] == 0
    assert again.sources["crm"]["files_skipped"] == 1
    assert rows(ws, "contacts", ["tessera_id"]) == before


def test_new_file_updates_and_links_keep_ids(make_workspace, tmp_path):
    ws = make_workspace()
    ws.run()
    ids = {c["email"]: c["tessera_id"] for c in rows(ws, "contacts")}
    # a second CRM file: Ana now carries Marie's phone... no: a new person and an update of Ana
    (tmp_path / "data" / "crm_2.csv").write_text(
        "id;prenom;nom;courriel;telephone;date_naissance;maj\n"
        "6;Ana;Lopez-Garcia;ana@example.com;;;2024-05-01\n"
        "7;Nina;Simone;nina@example.com;;;2024-05-01\n"
    )
    result = ws.run()
    assert result.sources["crm"]["files_new"] == 1
    after = {c["email"]: c for c in rows(ws, "contacts")}
    assert after["ana@example.com"]["tessera_id"] == ids["ana@example.com"]
    assert after["ana@example.com"]["last_name"] == "Lopez-Garcia"
    assert "nina@example.com" in after
    for email, tid in ids.items():
        if email != "test@test.com":
            assert after[email]["tessera_id"] == tid


def test_merge_of_two_customers_keeps_one_of_their_ids(make_workspace, tmp_path):
    # Marie and Ana disagree on first name and e-mail: the phone's guard would keep them apart
    ws = make_workspace(config=CONFIG.replace("{column: phone}", "{column: phone, allow_conflicts: true}"))
    ws.run()
    ids = {c["email"]: c["tessera_id"] for c in rows(ws, "contacts")}
    # a new shop account carries Marie's email and Ana's... phone-less: link Marie and Ana by a new record
    (tmp_path / "data" / "crm_2.csv").write_text(
        "id;prenom;nom;courriel;telephone;date_naissance;maj\n"
        "2;Marie;Curie;marie@example.com;0611111112;;2024-05-01\n"
        "6;Ana;Lopez;ana@example.com;0611111112;;2024-05-01\n"
    )
    ws.run()
    merged = [c for c in rows(ws, "contacts") if c["phone"] == "+33611111112"]
    assert len(merged) == 1
    assert merged[0]["tessera_id"] in (ids["marie@example.com"], ids["ana@example.com"])


def test_explain_shows_the_chain(make_workspace):
    ws = make_workspace()
    ws.run()
    jean = [c for c in rows(ws, "contacts") if c["email"] == "jean.dupont@example.com"][0]
    exp = ws.explain(jean["tessera_id"])
    assert len(exp.records) == 2
    assert exp.links[0].key == "email"
    assert exp.links[0].value == "jean.dupont@example.com"
    text = "\n".join(exp.lines())
    assert "crm:1" in text and "shop:W1" in text


def test_failed_run_leaves_the_published_state(make_workspace, tmp_path):
    ws = make_workspace()
    ws.run()
    before = rows(ws, "contacts", ["tessera_id"])
    # a file with a reject rate above the source's maximum makes the run fail
    cfg = CONFIG.replace("record_keys: [order_id]", "record_keys: [order_id]\n    max_reject_rate: 0.1")
    (tmp_path / "workspace.yaml").write_text(textwrap.dedent(cfg))
    ws.apply(tmp_path / "workspace.yaml")
    with pytest.raises(RunError, match="max_reject_rate"):
        ws.run()
    assert rows(ws, "contacts", ["tessera_id"]) == before
    assert ws.runs(1)[0]["status"] == "failed"


def test_export_data(make_workspace, tmp_path):
    ws = make_workspace()
    ws.run()
    out = ws.export_data("contacts", tmp_path / "out" / "contacts.csv")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("tessera_id,")
    assert len(lines) == 1 + 6
    pq = ws.export_data("orders", tmp_path / "out" / "orders.parquet")
    import pyarrow.parquet as papq

    assert papq.read_table(pq).num_rows == 3


def test_second_writer_gets_a_clear_message(make_workspace):
    ws = make_workspace()
    with ws.writing():
        other = Workspace.open(ws.path)
        with pytest.raises(WorkspaceError, match="being written"):
            with other.writing(wait=0.3):
                pass


def test_metadata_store_on_postgresql(tmp_path, postgres_db_url, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "crm_1.csv").write_bytes(CRM.encode("utf-8"))
    (data / "shop.json").write_text(json.dumps(SHOP))
    (data / "orders.ndjson").write_text("\n".join(json.dumps(o) for o in ORDERS) + "\n")
    (tmp_path / "workspace.yaml").write_text(textwrap.dedent(CONFIG))
    monkeypatch.setenv("TESSERA_METADATA_URL", postgres_db_url)
    ws = Workspace.init(tmp_path / "ws")
    assert not (tmp_path / "ws" / "metadata.sqlite").exists()
    ws.apply(tmp_path / "workspace.yaml")
    assert ws.run().status == "succeeded"
    assert ws.run().sources["crm"]["files_skipped"] == 1  # the archive lives in PostgreSQL too
    assert len(rows(ws, "contacts")) == 6
    ws.close()


def test_describe_shows_semantic_fields(make_workspace):
    ws = make_workspace()
    cols = {c["column"]: c for c in ws.describe("contacts")}
    assert cols["email"]["semantic"] == "Email" and cols["email"]["semantic_from"] == "declared"
    assert cols["first_name"]["semantic"] == "FirstName" and cols["first_name"]["semantic_from"] == "suggested"
    assert cols["birth_date"]["semantic"] == "BirthDate"
    assert cols["email"]["identity_key"] and cols["email"]["sources"] == {"crm": "courriel", "shop": "email"}


def test_key_limit_splits_instead_of_merging(make_workspace):
    cards = (
        "row,card,email,phone\n"
        "1,C1,a@example.com,\n"
        "2,C2,a@example.com,\n"  # another card with the same email: must not merge with row 1
        "3,C3,b@example.com,0612345678\n"
        "4,,b@example.com,\n"  # no card: merges with row 3
        "5,,,06 12 34 56 78\n"  # same phone as row 3: merges too
    )
    ws = make_workspace(files={"cards.csv": cards}, config="""
        connections: [{name: files, type: local, path: data}]
        sources:
          - name: cards
            connection: files
            pattern: cards.csv
            record_keys: [row]
            normalize: {email: [email], phone: [{phone: {country: FR}}]}
        datasets:
          - name: contacts
            deduplicate: true
            identity_keys: [{column: card, limit: 1}, {column: email}, {column: phone}]
            columns: [{name: email, semantic: Email}, {name: phone, semantic: Phone}]
            mappings: [{source: cards, columns: {card: card, email: email, phone: phone, row: row}}]
    """)
    result = ws.run()
    lineage = {r["_tessera_record"]: r["tessera_id"] for r in rows(ws, "contacts__lineage")}
    assert lineage["cards:1"] != lineage["cards:2"]
    assert lineage["cards:3"] == lineage["cards:4"] == lineage["cards:5"]
    assert result.datasets["contacts"]["refused_by_limits"] == 2
