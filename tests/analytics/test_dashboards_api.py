"""The dashboards' REST routes: list, run with filters, draft questions, CSV/PNG/SVG downloads, and
custom dashboards created, reopened, changed and deleted, with one error shape for bad ones."""

from __future__ import annotations

import asyncio
import csv
import io
import re

import httpx
import pytest
from analytics_helpers import SALES, make, rows

from tessera.api.app import create_app

MINE = {"name": "mine", "title": "Mine", "filters": ["period", "channel"], "questions": [
    {"name": "by_store", "dataset": "orders", "dimensions": [{"column": "store", "empty": "online"}],
     "measures": [{"fn": "sum", "column": "amount", "label": "revenue"}], "chart": "bar"}]}


def test_dashboard_routes(tmp_path):
    ws = make(tmp_path, dashboards=False)
    ws.run()
    ws.close()
    app = create_app(ws.path, collect=False)
    headers = {"Authorization": f"Bearer {app.state.owner.local_token}"}

    async def calls() -> dict:
        out = {}
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers) as c:
            out["list"] = (await c.get("/api/dashboards")).json()
            out["filters"] = (await c.get("/api/dashboards/filters")).json()
            out["sales"] = (await c.get("/api/dashboards/sales", params={"period": "2024-12-01..2024-12-31",
                                                                         "channel": "web"})).json()
            out["draft"] = (await c.post("/api/questions/run", json={
                "question": {"dataset": "orders", "chart": "number", "measures": [{"fn": "count"}]},
                "filters": {"store": "S1"}})).json()
            out["bad_draft"] = await c.post("/api/questions/run", json={
                "question": {"dataset": "orders", "chart": "pie", "dimensions": []}})
            out["create"] = await c.post("/api/dashboards", json=MINE)
            out["twice"] = await c.post("/api/dashboards", json=MINE)
            out["default_name"] = await c.post("/api/dashboards", json={**MINE, "name": "sales"})
            out["invalid"] = await c.post("/api/dashboards", json={**MINE, "name": "other", "questions": [
                {"name": "x", "dataset": "orders", "chart": "heatmap", "dimensions": [{"column": "store"}]}]})
            out["reopened"] = (await c.get("/api/dashboards/mine")).json()
            out["csv"] = await c.get("/api/dashboards/mine/by_store.csv")
            out["png"] = await c.get("/api/dashboards/mine/by_store.png", params={"channel": "shop"})
            out["svg"] = await c.get("/api/dashboards/mine/by_store.svg")
            first = (await c.get("/api/dashboards/mine/definition")).json()["version"]
            out["change"] = (await c.put("/api/dashboards/mine", params={"version": first},
                                         json={"title": "Revenue per store"})).json()
            # a second editor who opened the first version is told, and changes nothing
            out["stale"] = await c.put("/api/dashboards/mine", params={"version": first}, json={"title": "Old"})
            out["no_version"] = await c.put("/api/dashboards/mine", json={"title": "x"})
            out["stale_delete"] = await c.delete("/api/dashboards/mine", params={"version": first})
            out["after_stale"] = (await c.get("/api/dashboards/mine/definition")).json()
            out["change_default"] = await c.put("/api/dashboards/sales", params={"version": "x"}, json={"title": "x"})
            out["delete"] = await c.delete("/api/dashboards/mine", params={"version": out["change"]["version"]})
            out["missing"] = await c.get("/api/dashboards/mine")
            out["anonymous"] = await c.get("/api/dashboards", headers={"Authorization": ""})
        return out

    out = asyncio.run(calls())
    orders = rows(SALES)
    assert out["list"]["count"] == 7 and {d["kind"] for d in out["list"]["data"]} == {"default"}
    assert out["filters"]["store"] == ["S1", "S2"] and out["filters"]["channel"] == ["app", "shop", "web"]
    figures = next(q for q in out["sales"]["questions"] if q["name"] == "sales_figures")
    assert figures["rows"][0]["orders"] == sum(o["day"] >= "2024-12-01" and o["channel"] == "web" for o in orders)
    assert figures["spec"]["mark"]["type"] == "text"
    assert out["draft"]["rows"] == [{"rows": sum(o["store"] == "S1" for o in orders)}]
    bad = out["bad_draft"]
    assert bad.status_code == 400 and bad.json()["ok"] is False
    assert bad.json()["errors"] == ["question: a pie chart needs a dimension (or use chart: number)"]
    assert out["create"].status_code == 201 and out["create"].json()["kind"] == "custom"
    assert out["twice"].status_code == 409 and out["default_name"].status_code == 409
    invalid = out["invalid"]
    assert invalid.status_code == 400
    assert "dashboard.questions.0: a heatmap crosses two dimensions (it has 1)" in invalid.json()["errors"]
    revenue = {r["store"]: r["revenue"] for r in out["reopened"]["questions"][0]["rows"]}
    assert revenue["online"] == sum(float(o["amount"]) for o in orders if not o["store"])
    assert out["csv"].headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(out["csv"].text)))
    assert table[0] == ["store", "revenue"] and len(table) == 1 + 3
    assert out["png"].headers["content-type"] == "image/png" and out["png"].content[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["svg"].content.lstrip().startswith(b"<svg")
    assert out["change"]["title"] == "Revenue per store" and out["change"]["questions"][0]["name"] == "by_store"
    assert out["change"]["version"] != out["create"].json()["version"]
    stale = out["stale"]
    assert stale.status_code == 409 and stale.json()["ok"] is False
    assert f"dashboard 'mine' changed since version {out['create'].json()['version']}" in stale.json()["error"]
    assert out["stale_delete"].status_code == 409 and out["no_version"].status_code in (400, 422)
    assert out["after_stale"]["title"] == "Revenue per store" and out["after_stale"]["version"] == out["change"]["version"]
    assert out["change_default"].status_code == 409
    assert out["delete"].status_code == 200 and out["missing"].status_code == 404
    assert out["anonymous"].status_code == 401


def test_dashboards_cli(tmp_path, capsys, monkeypatch):
    from tessera.cli.common import console
    from tessera.cli.main import main

    monkeypatch.setattr(console, "width", 200)

    ws = make(tmp_path)
    ws.run()
    path = ws.path
    ws.close()

    def tessera(*args: str) -> tuple[int, str]:
        try:
            main(["-w", str(path), "dashboards", *args])
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out + out.err

    code, listed = tessera("list")
    assert code == 0 and "my_sales" in listed and "customer_knowledge" in listed
    code, shown = tessera("show", "my_sales", "--channel", "web")
    assert code == 0, shown
    assert "Orders by channel and age of the customer" in shown and "25-34" in shown
    assert "app" not in shown.split("Orders by channel")[1]  # the channel filter narrowed the chart
    out = tmp_path / "charts"
    code, text = tessera("export", "my_sales", "-o", str(out), "-f", "csv")
    assert code == 0, text
    table = list(csv.reader(io.StringIO((out / "revenue.csv").read_text())))
    assert table[0] == ["revenue"] and len(table) == 2
    assert float(table[1][0]) == pytest.approx(sum(float(o["amount"]) for o in rows(SALES)))
    code, text = tessera("export", "my_sales", "by_channel_and_age", "-o", str(tmp_path / "c.png"))
    assert code == 0 and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    code, text = tessera("show", "nope")
    assert code == 1 and "unknown dashboard 'nope'" in text
    code, shown = tessera("show", "customer_knowledge")
    assert code == 0, shown
    opt_in = shown.split("e-mail opt-in rate")[1].split("\n")[2]  # the row under the header's line
    assert re.search(r"\d{1,3}\.\d %", opt_in), shown  # a share in percent, not 0.x


def test_the_server_prepares_the_dashboards_after_a_run_and_at_its_start(tmp_path, monkeypatch):
    from tessera.analytics import prepared

    monkeypatch.setenv(prepared.ROWS_VARIABLE, "0")  # as a workspace above the size where it is worth it
    ws = make(tmp_path, dashboards=False)
    ws.run()  # a run without the server: nothing prepared yet
    assert ws.store.get_state(*prepared.STATE) is None
    ws.close()
    app = create_app(ws.path, collect=False)
    headers = {"Authorization": f"Bearer {app.state.owner.local_token}"}

    async def calls() -> dict:
        out = {}
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers) as c:
            async def finished(kind: str, count: int) -> list[dict]:
                for _ in range(600):  # bounded wait for the writer queue
                    jobs = [j for j in (await c.get("/api/jobs")).json() if j["kind"] == kind]
                    if len(jobs) >= count and all(j["state"] not in ("queued", "running") for j in jobs):
                        return jobs
                    await asyncio.sleep(0.1)
                raise AssertionError(f"no finished {kind} job")

            out["at_start"] = await finished("dashboards_prepare", 1)
            run = (await c.post("/api/jobs", json={"kind": "run", "params": {"full": True}})).json()
            await c.get(f"/api/jobs/{run['id']}", params={"wait": 60})
            out["after_run"] = await finished("dashboards_prepare", 2)
            out["sales"] = (await c.get("/api/dashboards/sales")).json()
        return out

    out = asyncio.run(calls())
    assert out["at_start"][0]["state"] == "succeeded" and out["at_start"][0]["result"]["charts"] > 0
    assert [j["state"] for j in out["after_run"]] == ["succeeded", "succeeded"]
    assert all(q.get("cached") or q.get("unavailable") for q in out["sales"]["questions"])
