"""The guided setup on the demo company's files, its hand-written configuration removed: the proposed
configuration runs as it is and unifies the contacts as well as the hand-written one."""

from __future__ import annotations

import csv

import pytest

from tessera.demo.generator import generate
from tessera.setup import propose_config
from tessera.workspace import Workspace


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("setup-demo")
    info = generate(tmp / "company", size=400, seed=11)
    info.workspace_path.unlink()  # the hand-written configuration is gone
    proposal = propose_config(info.out_dir / "data")
    (tmp / "proposed.yaml").write_text(proposal.yaml, encoding="utf-8")
    ws = Workspace.init(tmp / "ws")
    ws.apply(tmp / "proposed.yaml")  # as it is: no hand edit
    result = ws.run()
    yield ws, info, proposal, result
    ws.close()


def _source_of(proposal, rel_file: str) -> str:
    rel = rel_file.removeprefix("data/")
    return next(s["name"] for s in proposal.sources if rel in s["files"])


def pairwise_f1(ws, info, proposal) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of the unified contacts against truth.csv."""
    from tessera.demo.generator import CRM_FILE, ESHOP_CUSTOMERS_FILE, POS_CUSTOMERS_FILE

    names = {"crm_contacts": _source_of(proposal, CRM_FILE),
             "eshop_customers": _source_of(proposal, ESHOP_CUSTOMERS_FILE),
             "pos_customers": _source_of(proposal, POS_CUSTOMERS_FILE)}
    lineage = ws.adapter.to_arrow(ws.table("contacts__lineage").select("_tessera_record", "tessera_id")).to_pylist()
    tid = {r["_tessera_record"]: r["tessera_id"] for r in lineage}
    excluded = set(map(tuple, info.unlinkable)) | set(map(tuple, info.rejected))
    truth = {}
    with open(info.truth_path, newline="") as fh:
        for row in csv.DictReader(fh):
            if (row["source"], row["record_key"]) in excluded:
                continue
            truth[f"{names[row['source']]}:{row['record_key']}"] = row["person_id"]
    missing = [r for r in truth if r not in tid]
    assert not missing, f"records lost: {missing[:5]}"

    def pairs(groups):
        return sum(n * (n - 1) // 2 for n in groups.values())

    by_tid, by_person, by_both = {}, {}, {}
    for rec, person in truth.items():
        by_tid[tid[rec]] = by_tid.get(tid[rec], 0) + 1
        by_person[person] = by_person.get(person, 0) + 1
        by_both[(tid[rec], person)] = by_both.get((tid[rec], person), 0) + 1
    tp = pairs(by_both)
    precision, recall = tp / max(pairs(by_tid), 1), tp / max(pairs(by_person), 1)
    return precision, recall, 2 * precision * recall / (precision + recall)


def test_proposed_configuration_unifies_contacts_as_well_as_the_hand_written_one(demo):
    ws, info, proposal, result = demo
    assert result.status == "succeeded"
    precision, recall, f1 = pairwise_f1(ws, info, proposal)
    print(f"pairwise precision {precision:.4f}, recall {recall:.4f}, F1 {f1:.4f}")
    assert f1 >= 0.99, (precision, recall)


def test_sources_entities_and_keys_are_found_in_the_data(demo):
    _, _, proposal, _ = demo
    by_file = {f: s for s in proposal.sources for f in s["files"]}
    assert by_file["crm/contacts_crm.csv"]["entity"] == "contacts"
    assert by_file["crm/contacts_crm.csv"]["record_keys"] == ["id_client"]
    assert by_file["pos/customers_pos.csv"]["record_keys"] == ["card_number"]
    assert by_file["eshop/order_items.ndjson"]["record_keys"] == ["order_id", "line_no"]
    assert by_file["pos/tickets.csv"]["entity"] == "orders"
    assert by_file["pos/ticket_items.csv"]["entity"] == "order_items"
    assert by_file["catalog/products.csv"]["entity"] == "products"
    assert by_file["catalog/stores.csv"]["entity"] == "stores"
    crm = next(s for s in proposal.config["sources"] if s["name"] == by_file["crm/contacts_crm.csv"]["name"])
    assert crm["csv"] == {"delimiter": ";"}
    assert crm["normalize"]["date_naissance"] == [{"date": {"format": "%d/%m/%Y"}}]  # day first, from the values
    assert {"phone": {"country": "FR"}} in crm["normalize"]["telephone"]
    assert {"null_like": ["0000000000"]} in crm["normalize"]["telephone"]  # the placeholder actually present
    assert crm["normalize"]["pays"] == ["country"]
    assert crm["normalize"]["civilite"] == ["gender"]  # Mme / M. to F / M
    assert crm["normalize"]["nom"] == ["trim", "title"]  # names in capitals


def test_every_proposal_carries_its_evidence_and_doubts_are_flagged(demo):
    _, _, proposal, _ = demo
    text = proposal.yaml
    assert "# record key: unique and present in" in text
    assert "% of eshop_orders.customer_email found in contacts.email" in text
    # the card number written twice and the one left empty are doubts, in the file and the list
    assert any("card_number" in d and "rejected" in d for d in proposal.doubts)
    assert "# DOUBT: source 'pos_customers_pos': record key 'card_number'" in text


def test_orders_are_linked_to_their_contacts_and_scored(demo):
    ws, _, proposal, _ = demo
    orders = ws.table("orders")
    linked = ws.adapter.execute(orders.tessera_contacts_id.notnull().sum())
    total = ws.adapter.execute(orders.count())
    assert linked / total > 0.8
    contacts = ws.table("contacts")
    library = next(d for d in proposal.config["datasets"] if d["name"] == "contacts")["scores"]["library"]
    assert {"rfm", "order_stats", "purchase_timing", "stores", "channels", "categories"} <= set(library)
    scored = ws.adapter.execute(contacts.score_rfm_segment.notnull().sum())
    assert scored > 100
    assert ws.adapter.execute(contacts.score_favorite_store.notnull().sum()) > 50
    assert ws.adapter.execute(contacts.score_categories.notnull().sum()) > 50
