"""Runs that find nothing new keep the published state as it is; anything a run reads that
changes (a file, the configuration, an identity override, the date) makes it build again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import date
from pathlib import Path

from tests.test_pipeline import CONFIG, CRM, ORDERS, SHOP, rows

ROOT = Path(__file__).resolve().parents[1]
FILES = {"crm_1.csv": CRM.encode("utf-8"), "shop.json": json.dumps(SHOP),
         "orders.ndjson": "\n".join(json.dumps(o) for o in ORDERS) + "\n"}
VIEWS = ("contacts", "contacts__records", "orders", "tessera_rejects")


def published(ws) -> dict[str, str]:
    return {v: ws.adapter.published_target(v) for v in VIEWS}


def test_a_run_with_nothing_new_keeps_the_publication(make_workspace, tmp_path):
    ws = make_workspace(CONFIG, FILES)
    first = ws.run()
    assert not first.unchanged
    before, contacts = published(ws), rows(ws, "contacts", ["tessera_id"])
    versions = len(ws.store.list_publications("contacts"))

    again = ws.run()
    assert again.unchanged and again.status == "succeeded"
    assert [s["step"] for s in again.steps] == ["import", "unchanged"]
    assert again.sources["crm"]["files_skipped"] == 1 and again.sources["crm"]["staged"] == 5
    assert again.datasets["contacts"]["rows"] == first.datasets["contacts"]["rows"] == 6
    assert published(ws) == before  # the same tables, not rebuilt copies
    assert len(ws.store.list_publications("contacts")) == versions
    assert rows(ws, "contacts", ["tessera_id"]) == contacts
    assert ws.runs(1)[0]["counts"]["unchanged"] is True

    # --full rebuilds all the same, to the same content
    forced = ws.run(full=True)
    assert not forced.unchanged and published(ws)["contacts"] != before["contacts"]
    assert rows(ws, "contacts", ["tessera_id"]) == contacts

    # a new file is read and published
    (tmp_path / "data" / "crm_2.csv").write_text("id;prenom;nom;courriel;telephone;date_naissance;maj\n"
                                                 "7;Nina;Simone;nina@example.com;;;2024-05-01\n")
    grown = ws.run()
    assert not grown.unchanged
    assert "nina@example.com" in {c["email"] for c in rows(ws, "contacts")}
    assert ws.run().unchanged


def test_what_a_run_reads_changing_makes_it_build_again(make_workspace, tmp_path):
    ws = make_workspace(CONFIG, FILES)
    ws.run()
    # the configuration
    (tmp_path / "workspace.yaml").write_text(textwrap.dedent(CONFIG.replace("shared_value_threshold: 10",
                                                                            "shared_value_threshold: 11")))
    ws.apply(tmp_path / "workspace.yaml")
    assert not ws.run().unchanged
    assert ws.run().unchanged
    # an identity override
    jean = [r["_tessera_record"] for r in rows(ws, "contacts__records") if r["email"] == "jean.dupont@example.com"]
    ws.identity_override("split", jean[:1])
    split = ws.run()
    assert not split.unchanged
    assert len([c for c in rows(ws, "contacts") if c["email"] == "jean.dupont@example.com"]) == 2
    # the day scores and segments are computed at
    assert not ws.run(as_of=date(2030, 1, 1)).unchanged
    assert ws.run(as_of=date(2030, 1, 1)).unchanged
    # a published table gone (dropped by hand): the next run builds it again
    ws.adapter.drop_table(ws.adapter.published_target("orders"))
    assert not ws.run(as_of=date(2030, 1, 1)).unchanged
    assert len(rows(ws, "orders")) == 3


def test_the_run_command_says_nothing_was_new(make_workspace, tmp_path):
    ws = make_workspace(CONFIG, FILES, run=True)
    ws.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TESSERA_WORKSPACE": str(ws.path), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", "run"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Nothing new since the last run" in proc.stdout


# ---------------------------------------------------------------------- incremental identity
def _contacts_workspace_files(folder: Path) -> None:
    """Generated contacts (3 sources, duplicates, varied writings), orders linked by e-mail, and a
    configuration reading every ``src_*`` file, with aggregates of the orders on the contacts."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from tessera.demo.identity_bench import generate_identity_bench

    generate_identity_bench(folder, n_records=3000, seed=5)
    # a household landline: Ann and Bob disagree (first names, e-mails), so the guard refuses it
    c = pq.read_table(folder / "src_c.parquet")
    stamp = c.column("updated_at")[0].as_py()
    house = [{"record_id": rid, "first_name": first, "last_name": "Martin", "email": email,
              "phone": "+33 1 40 00 00 01", "customer_id": cid, "updated_at": stamp}
             for rid, first, email, cid in (("H1", "Ann", "ann@house.fr", None), ("H2", "Bob", "bob@house.fr", None),
                                            ("H3", "Cid", None, "CU-HOUSE-3"))]
    pq.write_table(pa.Table.from_pylist(house, schema=c.schema), folder / "src_c_house.parquet")
    config = yaml.safe_load((folder / "workspace.yaml").read_text())
    for src in config["sources"]:
        src["pattern"] = src["pattern"].replace(".parquet", "*.parquet")
    a = pq.read_table(folder / "src_a.parquet")
    emails = a.column("email").to_pylist()[:400]
    pq.write_table(pa.table({"order_id": [f"O{i}" for i in range(400)], "email": emails,
                             "amount": [float(i % 37) for i in range(400)]}), folder / "orders.parquet")
    config["sources"].append({"name": "shop_orders", "connection": "bench_files", "pattern": "orders.parquet",
                              "record_keys": ["order_id"], "normalize": {"email": ["email"]},
                              "relations": [{"column": "email", "to": "contacts.email"}]})
    contacts = config["datasets"][0]
    contacts["aggregates"] = [{"name": "orders_count", "from": "orders", "function": "count"},
                              {"name": "spent", "from": "orders", "function": "sum", "column": "amount"}]
    contacts["computed"] = [{"name": "big", "sql": "coalesce(spent, 0) > 20"}]
    config["datasets"].append({"name": "orders", "columns": [{"name": "amount", "semantic": "OrderAmount"}],
                               "mappings": [{"source": "shop_orders",
                                             "columns": {"order_id": "order_id", "amount": "amount"}}]})
    (folder / "workspace.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _delta(folder: Path) -> None:
    """About 3% new or changed records: changed e-mails that merge two people, a changed phone that
    splits one, new records carrying known keys, and one phone number carried beyond the threshold
    (50) that stops linking the people who had it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    a, b = pq.read_table(folder / "src_a.parquet"), pq.read_table(folder / "src_b.parquet")
    rows = a.slice(0, 20).to_pylist()
    others = b.slice(100, 20).to_pylist()
    for i, row in enumerate(rows[:10]):
        row["email"] = others[i]["email"]  # now the same person as a src_b record
    for row in rows[10:]:
        row["phone"] = None
        row["customer_id"] = None  # keeps only its e-mail
    stamp = max(r["updated_at"] for r in a.to_pylist())
    for row in rows:
        row["updated_at"] = stamp
    shared_phone = b.column("phone").to_pylist()[300] or "+33 6 11 22 33 44"
    new = [dict(others[10 + i], record_id=f"ANEW{i}", first_name="Zed", updated_at=stamp) for i in range(10)]
    new += [dict(rows[0], record_id=f"ASHARED{i}", email=None, customer_id=None, phone=shared_phone,
                 first_name=rows[0]["first_name"]) for i in range(55)]
    # Cid's customer id on a new record: Cid's unified record is touched, and with it the refused landline
    new.append(dict(rows[0], record_id="AHOUSE", first_name="Cid", email=None, phone=None,
                    customer_id="CU-HOUSE-3"))
    pq.write_table(pa.Table.from_pylist(rows + new, schema=a.schema), folder / "src_a_2.parquet")


def _snapshot(ws, table: str, order: list[str], drop=("tessera_first_seen", "tessera_last_seen",
                                                        "_tessera_imported_at")) -> list[dict]:
    t = ws.table(table)
    t = t.drop(*[c for c in drop if c in t.columns])
    return ws.adapter.to_arrow(t.order_by(order)).to_pylist()


def _clusters(ws) -> set[frozenset]:
    groups: dict[str, set] = {}
    for r in ws.adapter.to_arrow(ws.table("contacts__records").select("tessera_id", "_tessera_record")).to_pylist():
        groups.setdefault(r["tessera_id"], set()).add(r["_tessera_record"])
    return {frozenset(g) for g in groups.values()}


def _merged_and_left(folder: Path) -> tuple[dict, dict, dict]:
    """The src_b records of :func:`_second_delta`: two people it merges, one record that leaves."""
    import pyarrow.parquet as pq

    b = pq.read_table(folder / "src_b.parquet").to_pylist()
    one = next(r for r in b[200:] if r["email"])
    two = next(r for r in b[300:] if r["customer_id"] and r["customer_id"] != one["customer_id"])
    return one, two, b[500]


def _phone_sharer(folder: Path) -> dict:
    """The src_b record whose phone :func:`_delta` carries beyond the threshold."""
    import pyarrow.parquet as pq

    return pq.read_table(folder / "src_b.parquet").to_pylist()[300]


def _second_delta(folder: Path) -> None:
    """Files after the first incremental run: a new record carrying the e-mail of one person and the
    customer id of another (it merges them), a new record carrying the customer id of a person whose
    phone is the one shared beyond the threshold since the first delta (resolved again, that person
    still carries a value whose other records lie outside what is resolved again: it stays shared),
    and a src_b record imported again with keys of its own (it leaves its unified record)."""
    import pyarrow.parquet as pq

    one, two, left = _merged_and_left(folder)
    c = pq.read_table(folder / "src_c.parquet")
    stamp = max(r["updated_at"] for r in c.to_pylist())
    # (a customer id, not a phone: phones are guarded, and the bridge's first name is neither's)
    bridge = dict(c.slice(0, 1).to_pylist()[0], record_id="CBRIDGE", email=one["email"], phone=None,
                  customer_id=two["customer_id"], updated_at=stamp)
    mate = dict(bridge, record_id="CPHONEMATE", email=None, customer_id=_phone_sharer(folder)["customer_id"])
    pq.write_table(pq.read_table(folder / "src_c.parquet").from_pylist([bridge, mate], schema=c.schema),
                   folder / "src_c_3.parquet")
    leaver = dict(left, email="someone.else@example.org", phone=None, customer_id="CU-LEFT-1", updated_at=stamp)
    pq.write_table(pq.read_table(folder / "src_b.parquet").from_pylist([leaver], schema=pq.read_schema(
        folder / "src_b.parquet")), folder / "src_b_2.parquet")


def _published(ws) -> dict[str, list[dict]]:
    """The unified records, lineage, shared values and linked orders ``ws`` publishes."""
    return {"contacts": _snapshot(ws, "contacts", ["tessera_id"]),
            "contacts__records": _snapshot(ws, "contacts__records", ["_tessera_record"]),
            "contacts__shared_values": _snapshot(ws, "contacts__shared_values", ["key", "value"]),
            "orders": _snapshot(ws, "orders", ["order_id"]),
            # the search index: patched by an incremental run, rebuilt by a full one
            "contacts__search": _snapshot(ws, "contacts__search", ["token", "tessera_id"])}


COUNTS = ("records", "unified", "duplicates_merged", "shared_values", "refused_by_guards", "rows", "aggregates")


def _three_runs(folder: Path, path: Path, warehouse: str | None, *,
                full: bool) -> tuple[list[tuple[dict, dict]], set[frozenset]]:
    """A workspace on its own copy of the files, run after each of the three files (the first, the
    delta, the second delta), incrementally or ``full``: (counts of contacts, what it published) per
    run, and its clusters. One workspace at a time: Spark's session is shared by the workspaces of
    a process."""
    from tessera.workspace import Workspace

    _contacts_workspace_files(folder)
    out = []
    with Workspace.init(path, warehouse=warehouse) as ws:
        ws.apply(folder / "workspace.yaml")
        for change in (None, _delta, _second_delta):
            if change is not None:
                change(folder)
            result = ws.run(as_of=date(2025, 1, 1), full=full)
            out.append((result.datasets["contacts"], _published(ws)))
        assert ws.run(as_of=date(2025, 1, 1)).unchanged  # a run after nothing new keeps it all
        clusters = _clusters(ws)
    return out, clusters


def _warehouses(request, engine: str, n: int) -> list[str | None]:
    """``n`` warehouses of the test's engine, one per workspace (a database each on PostgreSQL)."""
    if not engine.startswith("postgresql"):
        return [None if engine == "duckdb" else engine] * n
    server = request.getfixturevalue("postgres_server")
    names = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(n)]
    request.addfinalizer(lambda: [server.drop_database(name) for name in names])
    return [server.create_database(name) for name in names]


def test_an_incremental_run_publishes_what_a_full_rebuild_does(tmp_path, engine, request):
    from tessera.workspace import Workspace

    warehouses = _warehouses(request, engine, 3)
    inc, clusters = _three_runs(tmp_path / "inc_data", tmp_path / "incremental", warehouses[0], full=False)
    full, _ = _three_runs(tmp_path / "full_data", tmp_path / "full", warehouses[1], full=True)
    assert "resolved_again" not in inc[0][0] and all("resolved_again" not in c for c, _ in full)
    # the first delta: changed e-mails merging people, a changed phone splitting one, new records, a
    # phone carried beyond the threshold, a refused landline touched; only the touched unified
    # records were resolved again
    counts = inc[1][0]
    assert 85 <= counts["resolved_again"] < counts["records"] / 10
    # the second, on the tables the first patched: a new record merging two people, a record
    # imported again leaving its unified record
    assert 0 < inc[2][0]["resolved_again"] < counts["records"] / 10
    for (a_counts, a), (b_counts, b) in zip(inc, full):
        assert {k: a_counts[k] for k in COUNTS} == {k: b_counts[k] for k in COUNTS}
        assert a == b
    published = inc[1][1]
    shared = [r for r in published["contacts__shared_values"] if r["records"] > 50]
    assert shared and shared[0]["key"] == "phone"
    house = [r for r in published["contacts__shared_values"] if r["value"] == "+33140000001"]
    assert house and house[0]["records"] == 3 and "first names" in house[0]["reason"]
    one, two, leaver = (f"src_b:{r['record_id']}" for r in _merged_and_left(tmp_path / "inc_data"))
    before = {r["_tessera_record"]: r["tessera_id"] for r in inc[1][1]["contacts__records"]}
    after = {r["_tessera_record"]: r["tessera_id"] for r in inc[2][1]["contacts__records"]}
    assert before[one] != before[two] and after[one] == after[two] == after["src_c:CBRIDGE"]
    mates = [r for r, t in before.items() if t == before[leaver] and r != leaver]
    assert mates and all(after[m] != after[leaver] for m in mates)
    sharer = _phone_sharer(tmp_path / "inc_data")
    assert sharer["phone"] and sharer["customer_id"]
    assert after[f"src_b:{sharer['record_id']}"] == after["src_c:CPHONEMATE"]
    phone = [r for r in inc[2][1]["contacts__shared_values"] if r["key"] == "phone" and r["records"] > 50]
    assert phone == shared
    # and the same people as a workspace that reads every file at once
    with Workspace.init(tmp_path / "scratch", warehouse=warehouses[2]) as scratch:
        scratch.apply(tmp_path / "inc_data" / "workspace.yaml")
        scratch.run(as_of=date(2025, 1, 1))
        assert _clusters(scratch) == clusters


def test_an_erased_customer_stays_erased_after_an_incremental_run(make_workspace, tmp_path):
    # an aggregate: the published contacts are the enriched table, the unified one is kept beside it
    config = CONFIG.replace("    source_priority: [crm, shop]\n",
                            "    source_priority: [crm, shop]\n"
                            "    aggregates: [{name: orders_count, from: orders, function: count}]\n")
    ws = make_workspace(config, FILES)
    ws.run()
    ana = next(r["tessera_id"] for r in rows(ws, "contacts") if r["email"] == "ana@example.com")
    receipt = ws.erase("ana@example.com")
    assert {r["where"] for r in receipt["removed"]} >= {"dataset contacts (rows)",
                                                        "dataset contacts (unified rows kept for the next run)"}
    (tmp_path / "data" / "crm_2.csv").write_text("id;prenom;nom;courriel;telephone;date_naissance;maj\n"
                                                 "7;Nina;Simone;nina@example.com;;;2024-05-01\n")
    index = ws.adapter.published_target("contacts__search")
    grown = ws.run()
    assert grown.datasets["contacts"]["resolved_again"] == 1
    assert ws.adapter.published_target("contacts__search") == index  # patched in place
    emails = {c["email"] for c in rows(ws, "contacts")}
    assert "nina@example.com" in emails and "ana@example.com" not in emails
    assert ana not in {c["tessera_id"] for c in rows(ws, "contacts")}
    search = ws.table("contacts__search")
    assert ws.adapter.count(search.filter(search.tessera_id == ana)) == 0
    assert ws.adapter.count(search.filter(search.token == "nina@example.com")) == 1
