"""Segments carry the version of their definition too: a change made from an old one is refused."""

from __future__ import annotations


def test_a_segment_change_from_an_old_version_is_refused(shop):
    editor = shop["clients"]["editor"]
    made = editor.post("/api/segments", json={"name": "french", "dataset": "contacts",
                                              "conditions": [{"column": "country", "op": "=", "value": "FR"}]})
    assert made.status_code == 201, made.text
    version = made.json()["config_version"]
    changed = editor.put("/api/segments/french", params={"version": version}, json={"description": "in France"})
    assert changed.status_code == 200 and changed.json()["config_version"] != version
    stale = editor.put("/api/segments/french", params={"version": version}, json={"description": "other"})
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    assert editor.get("/api/segments/french").json()["definition"]["description"] == "in France"
    assert editor.delete("/api/segments/french", params={"version": version}).status_code == 409
    gone = editor.delete("/api/segments/french", params={"version": changed.json()["config_version"]})
    assert gone.status_code == 200 and gone.json()["removed"] == ["segment french"]
