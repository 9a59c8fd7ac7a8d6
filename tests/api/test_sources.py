"""The source catalog through the API (columns with inferred types, record keys, relations, files,
rejects, a preview after normalization) and sources created, changed and deleted with their version."""

from __future__ import annotations


def test_catalog_and_preview(shop):
    viewer = shop["clients"]["viewer"]
    listed = {s["name"]: s for s in viewer.get("/api/sources").json()["data"]}
    assert listed["crm"]["files"] == 1 and listed["crm"]["rows"] == 60 and listed["crm"]["datasets"] == ["contacts"]
    crm = viewer.get("/api/sources/crm").json()
    assert crm["spec"]["record_keys"] == ["id"] and crm["version"]
    columns = {c["column"]: c for c in crm["catalog"]["columns"]}
    assert columns["phone"]["declared"] == "string" and columns["email"]["normalize"] == ["email"]
    assert crm["catalog"]["files"][0]["name"] == "crm.csv"
    orders = viewer.get("/api/sources/orders").json()
    assert orders["catalog"]["relations"] == [{"column": "customer_email", "to": "contacts.email"}]
    preview = viewer.get("/api/sources/crm/preview", params={"limit": 3}).json()
    assert preview["count"] == 3
    first = preview["data"][0]
    assert first["email"] == "person0@example.com" and first["first_name"] == "Name0"
    assert preview["data"][1]["phone"].startswith("+336")
    assert viewer.get("/api/sources/nope").status_code == 404


def test_create_change_delete_with_versions(shop):
    editor = shop["clients"]["editor"]
    made = editor.post("/api/sources", json={"name": "crm_copy", "connection": "files", "pattern": "crm.csv",
                                             "record_keys": ["id"]})
    assert made.status_code == 201, made.text
    version = made.json()["version"]
    again = editor.put("/api/sources/crm_copy", params={"version": version},
                       json={"name": "crm_copy", "connection": "files", "pattern": "crm.csv", "record_keys": ["id"],
                             "description": "a copy"})
    assert again.status_code == 200 and again.json()["spec"]["description"] == "a copy"
    stale = editor.put("/api/sources/crm_copy", params={"version": version},
                       json={"name": "crm_copy", "connection": "files", "pattern": "x.csv", "record_keys": ["id"]})
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    bad = editor.put("/api/sources/crm_copy", params={"version": again.json()["version"]},
                     json={"name": "crm_copy", "connection": "nowhere", "pattern": "crm.csv", "record_keys": ["id"],
                           "relations": [{"column": "id", "to": "nothing.id"}]})
    assert bad.status_code == 400 and len(bad.json()["errors"]) == 2
    renamed = editor.put("/api/sources/crm_copy", params={"version": again.json()["version"]},
                         json={"name": "other", "connection": "files", "pattern": "crm.csv", "record_keys": ["id"]})
    assert renamed.status_code == 400 and "not renamed" in renamed.json()["error"]
    in_use = editor.delete("/api/sources/crm")
    assert in_use.status_code == 400
    assert editor.delete("/api/sources/crm_copy", params={"version": version}).status_code == 409
    assert editor.delete("/api/sources/crm_copy", params={"version": again.json()["version"]}).status_code == 200
    assert editor.get("/api/sources/crm_copy").status_code == 404
