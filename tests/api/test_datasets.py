"""Datasets through the API: definitions with their version and columns, rows with a filter, a
sort and keyset paging, exports streamed as CSV and Parquet, and a stale change refused (409)."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="module")
def api(shop):
    return shop["clients"]


def all_pages(client, **params) -> list[dict]:
    rows, cursor = [], None
    for _ in range(100):
        answer = client.get("/api/datasets/contacts/rows", params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["count"] == len(page["data"]) <= params.get("limit", 50)
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("paging did not end")


def test_keyset_paging_has_no_duplicates_nor_gaps(api):
    viewer = api["viewer"]
    everything = viewer.get("/api/datasets/contacts/rows", params={"limit": 1000, "total": True}).json()
    assert everything["total"] == everything["count"] > 40
    # a sort with ties and empty values (country is empty for a quarter of the contacts), descending
    for sort in ("-country,updated_at", "country", "-updated_at"):
        rows = all_pages(viewer, sort=sort, limit=7)
        ids = [r["tessera_id"] for r in rows]
        assert len(ids) == len(set(ids)) == everything["total"], sort
        key = sort.split(",")[0].lstrip("-")
        values = [r[key] for r in rows]
        present = [v for v in values if v is not None]
        assert values[len(present):] == [None] * (len(values) - len(present)), "empty values come last"
        assert present == sorted(present, reverse=sort.startswith("-"))


def test_a_filter_structured_and_sql_with_a_sort(api):
    viewer = api["viewer"]
    conditions = [{"column": "country", "op": "in", "value": ["FR", "BE"]}]
    page = viewer.get("/api/datasets/contacts/rows", params={
        "filter": json.dumps(conditions), "sql": "crm_id >= 'C030'", "sort": "-crm_id", "limit": 5,
        "columns": "tessera_id,crm_id,country", "total": True}).json()
    assert [set(r) for r in page["data"]] == [{"tessera_id", "crm_id", "country"}] * 5
    assert all(r["country"] in ("FR", "BE") and r["crm_id"] >= "C030" for r in page["data"])
    assert [r["crm_id"] for r in page["data"]] == sorted((r["crm_id"] for r in page["data"]), reverse=True)
    rest = all_pages(viewer, filter=json.dumps(conditions), sql="crm_id >= 'C030'", limit=4)
    assert len(rest) == page["total"]


def test_bad_filters_are_refused_with_every_problem(api):
    viewer = api["viewer"]
    bad = viewer.get("/api/datasets/contacts/rows", params={
        "filter": json.dumps([{"column": "colour", "op": "=", "value": "red"}]), "sql": "1; DROP TABLE contacts"})
    assert bad.status_code == 400
    body = bad.json()
    assert body["code"] == "invalid" and len(body["errors"]) == 2
    assert "colour" in body["errors"][0]
    assert viewer.get("/api/datasets/contacts/rows", params={"sort": "nope"}).json()["code"] == "invalid_request"
    assert viewer.get("/api/datasets/contacts/rows", params={"cursor": "garbage"}).status_code == 400
    other = viewer.get("/api/datasets/contacts/rows", params={"sort": "crm_id", "limit": 2}).json()["next_cursor"]
    mixed = viewer.get("/api/datasets/contacts/rows", params={"sort": "-crm_id", "cursor": other})
    assert mixed.status_code == 400 and "keep the same sort" in mixed.json()["error"]
    assert viewer.get("/api/datasets/nothing/rows").status_code == 404


def test_exports_stream_csv_and_parquet_and_are_audited(shop, api):
    editor = api["editor"]
    total = editor.get("/api/datasets/orders/rows", params={"limit": 1, "total": True}).json()["total"]
    answer = editor.get("/api/datasets/orders/export", params={"format": "csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == total and {"order_id", "amount", "tessera_contacts_id"} <= set(rows[0])
    parquet = editor.get("/api/datasets/orders/export", params={"format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == total
    assert sorted(table.column("order_id").to_pylist()) == sorted(r["order_id"] for r in rows)
    audit = shop["local"].get("/api/audit", params={"action": "export",
                                                    "limit": 5},
                              headers={"Authorization": f"Bearer {shop['app'].state.owner.local_token}"}).json()
    assert [line["details"]["format"] for line in audit["data"][:2]] == ["parquet", "csv"]
    assert audit["data"][0]["actor"] == "editor@example.com"


def test_a_viewer_exports_only_when_granted(api):
    viewer, admin = api["viewer"], api["admin"]
    refused = viewer.get("/api/datasets/orders/export")
    assert refused.status_code == 403 and "grant export" in refused.json()["error"]
    assert admin.put("/api/users/viewer@example.com/grants", json={"grants": ["export"]}).json()["grants"] == ["export"]
    try:
        assert viewer.get("/api/datasets/orders/export").status_code == 200
    finally:
        admin.put("/api/users/viewer@example.com/grants", json={"grants": []})
    assert viewer.get("/api/datasets/orders/export").status_code == 403


def test_dataset_definition_and_a_stale_change(api):
    editor = api["editor"]
    listed = {d["name"]: d for d in editor.get("/api/datasets").json()["data"]}
    assert listed["contacts"]["rows"] > 0 and listed["contacts"]["deduplicate"] is True
    shown = editor.get("/api/datasets/orders").json()
    assert {c["column"] for c in shown["columns"]} >= {"order_id", "amount"}
    spec = shown["spec"]
    changed = editor.put("/api/datasets/orders", params={"version": shown["version"]},
                         json={**spec, "computed": [{"name": "big", "sql": "amount > 40"}]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] != shown["version"]
    assert any(c["column"] == "big" for c in changed.json()["columns"])
    stale = editor.put("/api/datasets/orders", params={"version": shown["version"]}, json=spec)
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    bad = editor.put("/api/datasets/orders", params={"version": changed.json()["version"]},
                     json={**spec, "computed": [{"name": "bad", "sql": "nope + 1"}]})
    assert bad.status_code == 400 and "nope" in bad.json()["error"]
    back = editor.put("/api/datasets/orders", params={"version": changed.json()["version"]}, json=spec)
    assert back.status_code == 200 and back.json()["version"] == shown["version"]


def test_generated_queries_of_the_data_routes_never_fail_the_server(shop):
    """Generated filters, SQL, sorts, cursors, columns and identity values (Hypothesis) answer 4xx
    at worst, never a server error, always in the one error body."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    client = shop["clients"]["editor"]
    words = st.sampled_from(["country", "-crm_id", "email", "tessera_id", "nope", "", ",", "-", "'", "1=1",
                             "crm_id >= 'C030'", "[]", "{}", "null", "\u0000"])
    junk = st.one_of(st.text(max_size=40), words,
                     st.lists(words, max_size=3).map(",".join),
                     st.lists(st.dictionaries(st.sampled_from(["column", "op", "value", "sql", "all", "not"]),
                                              st.one_of(words, st.integers(), st.none()), max_size=3),
                              max_size=2).map(json.dumps))
    params = st.dictionaries(st.sampled_from(["filter", "sql", "sort", "cursor", "columns", "limit", "match",
                                              "total"]), junk, max_size=4)
    lookups = st.dictionaries(st.sampled_from(["email", "phone", "id", "tessera_id", "dataset", "limit"]), junk,
                              min_size=1, max_size=2)

    @given(rows=params, lookup=lookups)
    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(rows, lookup):
        for path, query in (("/api/datasets/contacts/rows", rows), ("/api/customers", lookup)):
            answer = client.get(path, params=query)
            assert answer.status_code < 500, (path, query, answer.text)
            if answer.status_code >= 400:
                body = answer.json()
                assert body["ok"] is False and body["status"] == answer.status_code and body["errors"], body

    check()


def test_an_export_has_the_segments_column_of_the_cli_export(shop, api, tmp_path):
    """Issue 13: a segment is a column in dataset exports, over the API as in ``tessera`` exports."""
    editor, owner = api["editor"], shop["app"].state.owner
    made = editor.post("/api/segments", json={"name": "french", "dataset": "contacts",
                                               "conditions": [{"column": "country", "op": "=", "value": "FR"}]})
    assert made.status_code == 201, made.text
    try:
        owner.run_job("segments_refresh", {})
        answer = editor.get("/api/datasets/contacts/export", params={"format": "csv"})
        assert answer.status_code == 200, answer.text
        rows = {r["tessera_id"]: r for r in csv.DictReader(io.StringIO(answer.text))}
        cli = owner.read(lambda ws: ws.export_data("contacts", tmp_path / "contacts.csv"))
        with open(cli, newline="") as fh:
            expected = {r["tessera_id"]: r["segments"] for r in csv.DictReader(fh)}
        assert {tid: r["segments"] for tid, r in rows.items()} == expected
        assert {r["segments"] for r in rows.values()} == {"french", ""}
        assert all(r["segments"] == ("french" if r["country"] == "FR" else "") for r in rows.values())
        parquet = pq.read_table(io.BytesIO(editor.get("/api/datasets/contacts/export",
                                                      params={"format": "parquet"}).content))
        assert dict(zip(parquet.column("tessera_id").to_pylist(), parquet.column("segments").to_pylist())) == expected
    finally:
        version = editor.get("/api/segments/french").json().get("config_version")
        assert editor.delete("/api/segments/french", params={"version": version} if version else {}).status_code == 200
    assert "segments" not in editor.get("/api/datasets/contacts/export").text.splitlines()[0].split(",")
