"""The segments' REST routes: list, show, live count of a draft, members, history, create,
change, delete, and one error shape for bad definitions."""

from __future__ import annotations

import asyncio

import httpx
from segment_helpers import make_workspace

from tessera.api.app import create_app

SEGMENTS = """
pipeline: {as_of: 2024-12-31}
segments:
  - name: gold
    conditions: [{column: tier, op: "=", value: gold}]
"""


def test_segment_routes(tmp_path):
    ws = make_workspace(tmp_path, segments=SEGMENTS)
    ws.run()
    ws.close()
    app = create_app(ws.path, collect=False)  # the server owns the workspace; changes are jobs of its queue
    headers = {"Authorization": f"Bearer {app.state.owner.local_token}"}

    async def calls() -> dict:
        out = {}
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers) as client:
            out["list"] = (await client.get("/api/segments")).json()
            out["count"] = (await client.post("/api/segments/count", json={"conditions": [
                {"column": "age", "op": ">=", "value": 30}, {"column": "optin", "op": "is_true"}]})).json()
            out["bad"] = await client.post("/api/segments/count", json={"conditions": [{"column": "nope", "op": "is_true"}]})
            out["create"] = await client.post("/api/segments", json={
                "name": "young", "conditions": [{"column": "age", "op": "<", "value": 30}]})
            out["twice"] = await client.post("/api/segments", json={
                "name": "young", "conditions": [{"column": "age", "op": "<", "value": 30}]})
            out["change"] = (await client.put("/api/segments/young", json={
                "conditions": [{"column": "age", "op": "<", "value": 20}]})).json()
            out["young_count"] = (await client.get("/api/segments/young/count")).json()
            out["members"] = (await client.get("/api/segments/gold/members?columns=name")).json()
            out["history"] = (await client.get("/api/segments/gold/history")).json()
            out["delete"] = await client.delete("/api/segments/young")
            out["missing"] = await client.get("/api/segments/young")
            out["anonymous"] = await client.get("/api/segments", headers={"Authorization": ""})
            out["jobs"] = (await client.get("/api/jobs")).json()
        return out

    out = asyncio.run(calls())
    assert out["list"]["count"] == 1 and out["list"]["data"][0]["size"] == 2
    assert [s["count"] for s in out["count"]["steps"]] == [4, 3]  # age >= 30: Ana, Cy, Ed, Fa; opted in: Ana, Cy, Fa
    assert out["bad"].status_code == 400
    assert "'nope' is not a column of dataset 'contacts'" in str(out["bad"].json())
    assert out["create"].status_code == 201 and out["create"].json()["definition"]["conditions"][0]["value"] == 30
    assert out["twice"].status_code == 409
    assert out["change"]["definition"]["conditions"][0]["value"] == 20
    assert out["young_count"]["count"] == 1  # Bo
    assert sorted(m["name"] for m in out["members"]["data"]) == ["Ana", "Cy"]
    assert out["history"]["sizes"][0]["size"] == 2
    assert out["delete"].status_code == 200 and out["missing"].status_code == 404
    assert out["anonymous"].status_code == 401
    assert [j["kind"] for j in out["jobs"]] == ["segment_delete", "segment_save", "segment_save"]
