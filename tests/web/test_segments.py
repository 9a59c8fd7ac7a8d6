"""The segment builder over the ASGI app: the form parsed to a definition and back, the live count
with the narrowing per condition, the preview, save (editors only) and the saved segment's page."""

from __future__ import annotations

import re

from markupsafe import escape

from tessera import profiles
from tessera.web import segment_form as sf


def count_of(html: str) -> int | None:
    m = re.search(r'id="live-count">([\d\u202f]+)<', html)
    return int(m.group(1).replace("\u202f", "")) if m else None


def steps_of(html: str) -> dict[str, int]:
    return {p: int(n.replace("\u202f", "")) for p, n in re.findall(r'id="step-(c\d+)"[^>]*>→ ([\d\u202f]+) left', html)}


def engine_count(web, definition: dict) -> int:
    return web.app.state.owner.read(lambda ws: ws.segment_count(definition))["count"]


FORM = {"dataset": "contacts", "match": "all", "name": "", "original": "",
        "c0.kind": "column", "c0.column": "score_total_order_count", "c0.op": ">=", "c0.value": "2",
        "c1.kind": "any", "c1.label": "far or late",
        "c1.0.kind": "column", "c1.0.column": "country", "c1.0.op": "in", "c1.0.value": "BE, CH",
        "c1.1.kind": "column", "c1.1.column": "score_days_since_last_order", "c1.1.op": "between",
        "c1.1.value": "100", "c1.1.value2": "900",
        "c2.kind": "segment", "c2.segment": "lapsed", "c2.not": "1"}


def test_the_form_becomes_the_yaml_definition_and_back():
    draft = sf.parse(FORM, {"score_total_order_count": "int64", "score_days_since_last_order": "int64"})
    definition = sf.definition({**draft, "name": "x"})
    assert definition["conditions"] == [
        {"column": "score_total_order_count", "op": ">=", "value": 2},
        {"any": [{"column": "country", "op": "in", "value": ["BE", "CH"]},
                 {"column": "score_days_since_last_order", "op": "between", "value": [100, 900]}],
         "label": "far or late"},
        {"not": {"segment": "lapsed"}},
    ]
    again = sf.from_definition(definition)
    assert sf.definition({**again, "types": draft["types"]}) == definition


def test_incomplete_conditions_are_left_out_of_the_count():
    draft = sf.parse({"c0.kind": "column", "c0.column": "city", "c0.op": "=", "c0.value": "",
                      "c1.kind": "did", "c1.event": "", "c2.kind": "column", "c2.column": "city", "c2.op": "is_empty"})
    keep, conds, problems = sf.countable(draft)
    assert keep == [2] and conds == [{"column": "city", "op": "is_empty"}]
    assert problems == {0: "incomplete", 1: "incomplete"}


def test_add_and_remove_conditions():
    draft = sf.parse(FORM)
    sf.apply_action(draft, "add:c1")
    assert [c["kind"] for c in draft["conditions"][1]["children"]] == ["column", "column", "column"]
    sf.apply_action(draft, "remove:c1.0")
    assert draft["conditions"][1]["children"][0]["column"] == "score_days_since_last_order"
    sf.apply_action(draft, "addgroup:")
    assert draft["conditions"][-1]["kind"] == "any"
    sf.apply_action(draft, "remove:c9")  # no such condition: nothing happens
    assert len(draft["conditions"]) == 4


def test_live_count_and_narrowing_match_the_engine(web):
    client = web.client("viewer")
    answer = client.post("/segments/count", data=FORM, headers={"X-CSRF-Token": client.csrf})
    assert answer.status_code == 200
    draft = sf.parse(FORM, web.app.state.owner.read(lambda ws: {c: str(t) for c, t in ws.table("contacts").schema().items()}))
    conds = sf.definition({**draft, "name": "x"})["conditions"]
    expected = [engine_count(web, {"dataset": "contacts", "conditions": conds[:i + 1]}) for i in range(3)]
    assert steps_of(answer.text) == {"c0": expected[0], "c1": expected[1], "c2": expected[2]}
    assert count_of(answer.text) == expected[2]
    assert expected[0] >= expected[1] >= expected[2], "each condition narrows the audience"
    assert 'hx-swap-oob="true"' in answer.text


def test_the_count_changes_when_a_value_is_edited(web):
    client = web.client("viewer")
    counts = []
    for value in ("1", "3"):
        form = {"dataset": "contacts", "match": "all", "c0.kind": "column", "c0.column": "score_total_order_count",
                "c0.op": ">=", "c0.value": value}
        counts.append(count_of(client.post("/segments/count", data=form, headers={"X-CSRF-Token": client.csrf}).text))
    assert counts[0] > counts[1] > 0


def test_a_condition_the_engine_refuses_is_explained(web):
    client = web.client("viewer")
    form = {"dataset": "contacts", "match": "all", "c0.kind": "column", "c0.column": "no_such_column",
            "c0.op": "=", "c0.value": "x"}
    answer = client.post("/segments/count", data=form, headers={"X-CSRF-Token": client.csrf})
    assert answer.status_code == 200
    assert "no_such_column" in answer.text and 'class="alert error' in answer.text


def test_the_preview_lists_members_of_the_draft(web):
    client = web.client("viewer")
    form = {"dataset": "contacts", "match": "all", "c0.kind": "column", "c0.column": "score_rfm_segment",
            "c0.op": "=", "c0.value": "Champions"}
    html = client.post("/segments/count", data=form, headers={"X-CSRF-Token": client.csrf}).text
    ids = re.findall(r'id="preview".*', html, re.S)[0]
    shown = re.findall(r'href="/customers/(T[0-9a-f]+)"', ids)
    assert shown
    champions = web.app.state.owner.read(lambda ws: set(ws.adapter.to_arrow(
        ws.table("contacts").filter(ws.table("contacts").score_rfm_segment == "Champions").select("tessera_id"))
        .column("tessera_id").to_pylist()))
    assert set(shown) <= champions


def test_the_builder_redraws_with_a_new_condition(web):
    client = web.client("viewer")
    html = client.post("/segments/builder", data={**FORM, "action": "add:"}, headers={"X-CSRF-Token": client.csrf}).text
    assert 'name="c3.kind"' in html and 'name="c1.1.value2"' in html


def test_saving_needs_an_editor_and_a_name(web):
    form = {**FORM, "name": "web_test_segment"}
    viewer = web.client("viewer")
    assert viewer.post("/segments/save", data={**form, "csrf_token": viewer.csrf}).status_code == 403
    editor = web.client("editor")
    unnamed = editor.post("/segments/save", data={**form, "name": "", "csrf_token": editor.csrf})
    assert unnamed.status_code == 400 and "Give the segment a name" in unnamed.text
    taken = editor.post("/segments/save", data={**form, "name": "vip", "csrf_token": editor.csrf})
    assert taken.status_code == 400 and "has this name already" in taken.text
    saved = editor.post("/segments/save", data={**form, "csrf_token": editor.csrf}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/segments/web_test_segment"
    definition = web.app.state.owner.read(lambda ws: ws.segment("web_test_segment"))["definition"]
    assert definition["conditions"][2] == {"not": {"segment": "lapsed"}}
    page = editor.get("/segments/web_test_segment")
    assert page.status_code == 200 and 'value="web_test_segment"' in page.text and "readonly" in page.text
    assert 'name="c1.0.value" value="BE, CH"' in page.text
    listed = editor.get("/segments").text
    assert 'href="/segments/web_test_segment"' in listed


def test_a_saved_segment_shows_its_members_and_history(web):
    page = web.client("viewer").get("/segments/vip")
    assert page.status_code == 200
    members = page.text[page.text.index('id="members"'):]
    size = web.app.state.owner.read(lambda ws: ws.segment("vip"))["size"]
    assert f"Members ({size})" in members
    assert len(re.findall(r'href="/customers/T', members)) == min(size, 20)
    assert "Latest entries and exits" in page.text
    # the entries are shown by the customer's name, linked to their page
    changes = page.text[page.text.index('id="changes"'):page.text.index('id="members"')]
    entered = web.app.state.owner.read(lambda ws: ws.segment_history("vip", limit=1))["changes"][0]["tessera_id"]
    name = web.app.state.owner.read(lambda ws: profiles.display_names(ws, "contacts", [entered]))[entered]
    assert f'href="/customers/{entered}">{escape(name)}</a>' in changes and name != entered


def test_deleting_a_segment_needs_an_editor(web):
    editor = web.client("editor")
    form = {"dataset": "contacts", "match": "all", "name": "to_delete", "c0.kind": "column", "c0.column": "city",
            "c0.op": "is_not_empty", "csrf_token": editor.csrf}
    assert editor.post("/segments/save", data=form, follow_redirects=False).status_code == 303
    viewer = web.client("viewer")
    assert viewer.post("/segments/to_delete/delete", data={"csrf_token": viewer.csrf}).status_code == 403
    gone = editor.post("/segments/to_delete/delete", data={"csrf_token": editor.csrf}, follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/segments"
    assert "to_delete" not in [s["name"] for s in web.app.state.owner.read(lambda ws: ws.segments())]
    assert editor.get("/segments/to_delete").status_code == 404


def test_with_any_of_the_conditions_each_step_widens_the_audience(web):
    client = web.client("viewer")
    form = {**FORM, "match": "any"}
    html = client.post("/segments/count", data=form, headers={"X-CSRF-Token": client.csrf}).text
    steps = [int(n.replace("\u202f", "")) for n in re.findall(r'id="step-c\d+"[^>]*>→ ([\d\u202f]+) in all so far', html)]
    assert len(steps) == 3 and steps == sorted(steps), "each condition adds to the audience"
    assert steps[-1] == count_of(html)
