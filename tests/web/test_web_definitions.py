"""A source's or a dataset's definition changed as YAML by an editor: checked like tessera apply
(every problem at once with its place, nothing changed), a change from an old version refused."""

from __future__ import annotations

import html
import re


def editor_page(client, path: str) -> tuple[str, str]:
    page = client.get(path).text
    text = html.unescape(re.search(r'<textarea name="definition"[^>]*>(.*?)</textarea>', page, re.S).group(1))
    return text, re.search(r'name="version" value="([0-9a-f]+)"', page).group(1)


def stored(web, kind: str, name: str) -> dict:
    return web.app.state.owner.read(lambda ws: ws.config_object(kind, name))["spec"]


def test_change_a_source_then_a_dataset(web):
    editor = web.client("editor")
    assert 'href="/sources/crm_contacts/edit"' in editor.get("/sources/crm_contacts").text
    text, version = editor_page(editor, "/sources/crm_contacts/edit")
    assert text.startswith("name: crm_contacts\n") and "record_keys:" in text
    answer = editor.post("/sources/crm_contacts/edit", data={"definition": text + "on_duplicate_key: first\n",
                                                              "version": version, "csrf_token": editor.csrf},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert stored(web, "source", "crm_contacts")["on_duplicate_key"] == "first"
    assert "the next run uses it" in editor.get(answer.headers["location"]).text
    text, version = editor_page(editor, "/datasets/contacts/edit")
    changed = re.sub(r"(?m)^shared_value_threshold: \d+$", "shared_value_threshold: 37", text)
    assert changed != text
    answer = editor.post("/datasets/contacts/edit", data={"definition": changed,
                                                          "version": version, "csrf_token": editor.csrf},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert stored(web, "dataset", "contacts")["shared_value_threshold"] == 37


def test_every_problem_is_shown_at_once_and_nothing_changes(web):
    editor = web.client("editor")
    text, version = editor_page(editor, "/sources/eshop_orders/edit")
    before = stored(web, "source", "eshop_orders")
    broken = text.replace("record_keys:", "patern: '*.csv'\nmax_reject_rate: 7\nrecord_keys:")
    answer = editor.post("/sources/eshop_orders/edit", data={"definition": broken, "version": version,
                                                              "csrf_token": editor.csrf})
    assert answer.status_code == 400
    problems = answer.text.split('id="problems"')[1].split("</div>")[0]
    assert "2 problem(s)" in problems
    lines = broken.splitlines()
    patern, rate = lines.index("patern: '*.csv'") + 1, lines.index("max_reject_rate: 7") + 1
    assert f"line {patern}, patern: unknown setting" in problems, "placed in the text typed, with its line"
    assert f"line {rate}, max_reject_rate:" in problems
    assert "patern: &#39;*.csv&#39;" in answer.text, "the text typed stays in the editor"
    not_yaml = editor.post("/sources/eshop_orders/edit", data={"definition": "name: eshop_orders\n  bad: [\n",
                                                                "version": version, "csrf_token": editor.csrf})
    assert not_yaml.status_code == 400 and re.search(r"line \d+, column \d+: not valid YAML", not_yaml.text)
    renamed = editor.post("/sources/eshop_orders/edit", data={"definition": text.replace("name: eshop_orders",
                                                                                         "name: other"),
                                                               "version": version, "csrf_token": editor.csrf})
    assert renamed.status_code == 400 and "is not renamed here" in renamed.text
    assert stored(web, "source", "eshop_orders") == before


def test_a_change_from_an_old_version_is_refused(web):
    editor = web.client("editor")
    text, old = editor_page(editor, "/sources/pos_tickets/edit")
    assert editor.post("/sources/pos_tickets/edit", data={"definition": text + "on_duplicate_key: reject\n",
                                                           "version": old, "csrf_token": editor.csrf},
                       follow_redirects=False).status_code == 303
    late = editor.post("/sources/pos_tickets/edit", data={"definition": text + "on_duplicate_key: first\n",
                                                          "version": old, "csrf_token": editor.csrf})
    assert late.status_code == 409 and 'id="conflict"' in late.text
    assert stored(web, "source", "pos_tickets")["on_duplicate_key"] == "reject"


def test_viewers_cannot_edit_definitions(web):
    viewer = web.client("viewer")
    assert "/sources/crm_contacts/edit" not in viewer.get("/sources/crm_contacts").text
    assert viewer.get("/datasets/contacts/edit").status_code == 403
    assert viewer.post("/datasets/contacts/edit", data={"definition": "name: contacts\n",
                                                        "csrf_token": viewer.csrf}).status_code == 403
