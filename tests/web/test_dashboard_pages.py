"""The dashboards' pages over the ASGI app: the list, every default dashboard on the demo company,
the filters, downloads through the session, and the chart builder (preview, save, edit, remove)."""

from __future__ import annotations

import re

from tessera.analytics import NAMES

NO_EVENTS = {"engagement"}  # the demo company collects no web events


def test_the_list_shows_the_seven_default_dashboards_in_both_languages(web):
    page = web.client("viewer").get("/dashboards")
    assert page.status_code == 200
    assert all(f'href="/dashboards/{n}"' in page.text for n in NAMES)
    assert 'id="new-dashboard"' not in page.text  # a viewer builds nothing
    fr = web.client("viewer").get("/dashboards", headers={"Accept-Language": "fr"})
    assert "Connaissance client" in fr.text and "Produits et catégories" in fr.text


def test_every_default_dashboard_draws_on_the_demo(web):
    client = web.client("viewer")
    columns = web.app.state.owner.read(lambda ws: ws.table("contacts").columns)
    # a demo this small may have no predictions (the model needs more repeat buyers): the chart says so
    lacking = set() if "score_churn_risk" in columns else {("retention", "churn_risk")}
    for name in NAMES:
        page = client.get(f"/dashboards/{name}")
        assert page.status_code == 200, (name, page.text[:500])
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text) and not re.search(r"\sstyle=", page.text)
        data = client.get(f"/api/dashboards/{name}").json()
        for q in data["questions"]:
            if name in NO_EVENTS:
                assert "no dataset of events" in q["unavailable"], q
                continue
            if (name, q["name"]) in lacking:
                assert "has no column 'score_churn_risk'" in q["unavailable"]
                continue
            assert not q.get("unavailable"), (name, q["name"], q.get("unavailable"))
            assert q["rows"], (name, q["name"])
            shown = f'id="q-{q["name"]}"'
            assert shown in page.text
            if q["chart"] not in ("number", "table"):
                assert q["spec"]["data"]["values"] and q["spec"]["$schema"].endswith("/v6.json")
        assert 'class="chart" data-spec=' in page.text or name in NO_EVENTS


def test_filters_narrow_the_charts_and_the_downloads(web):
    client = web.client("viewer")
    whole = client.get("/api/dashboards/sales").json()["questions"][0]["rows"][0]["orders"]
    page = client.get("/dashboards/sales?period=last_90_days&store=S01")
    assert page.status_code == 200
    assert "period=last_90_days&amp;store=S01" in page.text  # the download links carry the filters
    narrowed = client.get("/api/dashboards/sales?period=last_90_days&store=S01").json()
    assert 0 < narrowed["questions"][0]["rows"][0]["orders"] < whole
    csv = client.get("/api/dashboards/sales/revenue_by_store.csv?period=last_90_days&store=S01")
    assert csv.status_code == 200 and csv.text.splitlines()[0] == "store,revenue"
    assert [line.split(",")[0].strip('"') for line in csv.text.splitlines()[1:]] == ["S01"]
    png = client.get("/api/dashboards/sales/revenue_by_month.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def _form(client, **more) -> dict:
    return {"csrf_token": client.csrf, "dashboard": "mine", "dashboard_title": "Mine", "title": "Orders by channel",
            "dataset": "orders", "chart": "stacked_bar", "d0.column": "channel", "d1.column": "contacts.birth_date",
            "d1.band": "age", "m0.fn": "count", **more}


def test_the_builder_previews_saves_edits_and_removes_a_chart(web):
    viewer, editor = web.client("viewer"), web.client("editor")
    assert viewer.get("/dashboards/new").status_code == 403
    page = editor.get("/dashboards/new")
    assert page.status_code == 200 and 'name="d1.band"' in page.text and "score_rfm_segment" in page.text
    assert 'class="alert error"' not in page.text  # an empty form is not an error
    orders = editor.post("/dashboards/form", data=_form(editor))  # the dataset changed: its columns
    assert "contacts.birth_date" in orders.text and 'value="orders" selected' in orders.text
    preview = editor.post("/dashboards/preview", data=_form(editor))
    assert preview.status_code == 200 and 'class="chart" data-spec=' in preview.text and "25-34" in preview.text
    bad = editor.post("/dashboards/preview", data=_form(editor, **{"d0.band": "month"}))
    assert "month is a band of a date" in bad.text
    assert viewer.post("/dashboards/save", data=_form(viewer)).status_code == 403
    saved = editor.post("/dashboards/save", data=_form(editor), follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/dashboards/mine"
    shown = viewer.get("/dashboards/mine")
    assert "Orders by channel" in shown.text and 'id="q-orders_by_channel"' in shown.text
    again = editor.post("/dashboards/save", data=_form(editor), follow_redirects=False)
    assert again.status_code == 400 and "exists already" in again.text  # a new dashboard under a taken name
    edit = editor.get("/dashboards/mine/orders_by_channel/edit")
    assert edit.status_code == 200 and 'value="contacts.birth_date" selected' in edit.text
    second = editor.post("/dashboards/save", data=_form(editor, existing="1", title="Revenue",
                                                          chart="number", **{"d0.column": "", "d1.column": "",
                                                                             "m0.fn": "sum", "m0.column": "amount"}),
                         follow_redirects=False)
    assert second.status_code == 303
    definition = viewer.get("/api/dashboards/mine/definition").json()
    assert [q["name"] for q in definition["questions"]] == ["orders_by_channel", "revenue"]
    assert definition["questions"][0]["dimensions"] == [{"column": "channel"},
                                                         {"column": "contacts.birth_date", "band": "age"}]
    removed = editor.post("/dashboards/mine/revenue/remove", data={"csrf_token": editor.csrf},
                          follow_redirects=False)
    assert removed.status_code == 303
    assert [q["name"] for q in viewer.get("/api/dashboards/mine/definition").json()["questions"]] == \
        ["orders_by_channel"]
    gone = editor.post("/dashboards/mine/delete", data={"csrf_token": editor.csrf}, follow_redirects=False)
    assert gone.status_code == 303 and viewer.get("/dashboards/mine").status_code == 404


def test_a_change_made_from_an_old_version_shows_the_conflict(web):
    editor = web.client("editor")
    created = editor.post("/dashboards/save", data=_form(editor, dashboard="theirs"), follow_redirects=False)
    assert created.status_code == 303
    page = editor.get("/dashboards/theirs/orders_by_channel/edit")
    opened = re.search(r'name="version" value="([0-9a-f]+)"', page.text).group(1)
    shown = editor.get("/dashboards/theirs")
    assert f'name="version" value="{opened}"' in shown.text  # the remove and delete forms carry it too
    # another editor changes the dashboard meanwhile
    changed = editor.put("/api/dashboards/theirs", params={"version": opened}, json={"title": "Changed"},
                         headers={"X-CSRF-Token": editor.csrf})
    assert changed.status_code == 200, changed.text
    stale = _form(editor, dashboard="theirs", existing="1", original="orders_by_channel", version=opened,
                  title="Mine now")
    refused = editor.post("/dashboards/save", data=stale, follow_redirects=False)
    assert refused.status_code == 409 and "Someone changed this dashboard" in refused.text
    assert f'value="{changed.json()["version"]}"' in refused.text  # saving again is a choice made knowingly
    assert editor.get("/api/dashboards/theirs/definition").json()["questions"][0]["title"] == "Orders by channel"
    fr = editor.post("/dashboards/save", data=stale, headers={"Accept-Language": "fr"}, follow_redirects=False)
    assert fr.status_code == 409 and "Quelqu'un a modifié ce tableau de bord" in fr.text.replace("&#39;", "'")
    removed = editor.post("/dashboards/theirs/orders_by_channel/remove",
                          data={"csrf_token": editor.csrf, "version": opened}, follow_redirects=False)
    assert removed.status_code == 409 and 'href="/dashboards/theirs"' in removed.text
    again = editor.post("/dashboards/save", data={**stale, "version": changed.json()["version"]},
                        follow_redirects=False)
    assert again.status_code == 303
    assert editor.get("/api/dashboards/theirs/definition").json()["questions"][0]["title"] == "Mine now"


def _specs(page: str) -> list[dict]:
    import html
    import json

    return [json.loads(html.unescape(s)) for s in re.findall(r'data-spec="([^"]*)"', page)]


def test_default_charts_speak_the_users_language(web):
    client = web.client("viewer")
    fr = client.get("/dashboards/sales", headers={"Accept-Language": "fr"})
    titles = {(s["encoding"]["x"].get("title"), s["encoding"].get("y", {}).get("title")) for s in _specs(fr.text)
              if "x" in s["encoding"]}
    assert ("mois", "chiffre d'affaires") in titles and ("magasin", "chiffre d'affaires") in titles
    en = client.get("/dashboards/sales")
    assert ("month", "revenue") in {(s["encoding"]["x"].get("title"), s["encoding"].get("y", {}).get("title"))
                                    for s in _specs(en.text) if "x" in s["encoding"]}
    # band names too, and the RFM migration's dated axes
    people = client.get("/dashboards/customer_knowledge", headers={"Accept-Language": "fr"}).text
    assert any("moins de 18 ans" in s["encoding"]["x"].get("sort", []) for s in _specs(people) if "x" in s["encoding"])
    # the costly ready-made analyses come after the page, each in a request of its own
    page = client.get("/dashboards/rfm?period=last_90_days", headers={"Accept-Language": "fr"}).text
    assert 'hx-get="/dashboards/rfm/rfm_migration/chart?period=last_90_days"' in page
    card = client.get("/dashboards/rfm/rfm_migration/chart?period=last_90_days", headers={"Accept-Language": "fr"})
    assert card.status_code == 200 and "/dashboards/rfm/rfm_migration.png?period=last_90_days" in card.text
    (migration,) = _specs(card.text)
    assert migration["mark"]["type"] == "rect" and "segment RFM au" in migration["encoding"]["x"]["title"]
    assert migration["encoding"]["color"]["title"] == "clients" and "title" not in migration
    svg = client.get("/dashboards/sales/revenue_by_month.svg", headers={"Accept-Language": "fr"})
    import html

    assert svg.status_code == 200 and "Chiffre d'affaires par mois" in html.unescape(svg.text)
    png = client.get("/dashboards/sales/revenue_by_month.png?period=last_90_days", headers={"Accept-Language": "fr"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert client.get("/dashboards/sales/revenue_by_month.gif").status_code == 404
