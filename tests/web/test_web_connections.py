"""Connections from the browser (admins): create, change and delete one with a form per type; the
password goes to the secret store and is never shown again; every problem next to its field; a
change made from an old version shows the conflict; viewers and editors cannot."""

from __future__ import annotations

import re

import pytest


def form_of(client, **fields) -> dict:
    return {"csrf_token": client.csrf, **fields}


def version_on(html: str) -> str:
    return re.search(r'name="version" value="([0-9a-f]+)"', html).group(1)


@pytest.fixture(scope="module")
def crm(web):
    """A PostgreSQL connection created through the form (nothing connects to it: it is not tested here)."""
    admin = web.client("admin")
    page = admin.get("/connections/new", params={"type": "postgresql"}).text
    assert 'name="database"' in page and 'value="5432"' in page and 'type="password"' in page
    answer = admin.post("/connections/new", data=form_of(admin, type="postgresql", name="crm_db", host="db.example.com",
                                                         port="5433", database="crm", user="tessera",
                                                         password="s3cret-pass", sslmode="require"),
                        follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return "crm_db"


def test_create_a_connection_its_password_stored_encrypted(web, crm):
    conn = web.app.state.owner.read(lambda ws: ws.config_object("connection", crm))["spec"]
    assert conn["host"] == "db.example.com" and conn["port"] == 5433 and conn["sslmode"] == "require"
    assert conn["password"] == {"secret": f"{crm}.password"}, "a reference to the secret store, not the value"
    revealed = web.app.state.owner.read(lambda ws: ws.connection(crm)).password
    assert revealed == "s3cret-pass"
    admin = web.client("admin")
    listed = admin.get("/connections").text
    assert f'href="/connections/{crm}/edit"' in listed
    edit = admin.get(f"/connections/{crm}/edit").text
    assert "s3cret-pass" not in edit and 'value="db.example.com"' in edit
    assert "stored encrypted" in edit and 'id="delete-connection"' in edit


def test_change_a_connection_keeps_the_password_left_empty_or_forgets_it(web, crm):
    admin = web.client("admin")
    version = version_on(admin.get(f"/connections/{crm}/edit").text)
    answer = admin.post(f"/connections/{crm}/edit", data=form_of(admin, version=version, host="db2.example.com",
                                                                  port="5433", database="crm", user="tessera",
                                                                  password=""), follow_redirects=False)
    assert answer.status_code == 303, answer.text
    conn = web.app.state.owner.read(lambda ws: ws.connection(crm))
    assert conn.host == "db2.example.com" and conn.sslmode is None and conn.password == "s3cret-pass"
    version = version_on(admin.get(f"/connections/{crm}/edit").text)
    answer = admin.post(f"/connections/{crm}/edit", data=form_of(admin, version=version, host="db2.example.com",
                                                                  port="5433", database="crm", user="tessera",
                                                                  forget="password"), follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert web.app.state.owner.read(lambda ws: ws.connection(crm)).password is None, "forgotten when asked"
    assert "password" not in web.app.state.owner.read(lambda ws: ws.config_object("connection", crm))["spec"]
    version = version_on(admin.get(f"/connections/{crm}/edit").text)
    assert admin.post(f"/connections/{crm}/edit", data=form_of(admin, version=version, host="db2.example.com",
                                                                port="5433", database="crm", user="tessera",
                                                                password="s3cret-pass"),
                      follow_redirects=False).status_code == 303


def test_a_change_from_an_old_version_shows_the_conflict(web, crm):
    admin = web.client("admin")
    old = version_on(admin.get(f"/connections/{crm}/edit").text)
    fields = dict(port="5433", database="crm", user="tessera")
    first = admin.post(f"/connections/{crm}/edit", data=form_of(admin, version=old, host="one.example.com", **fields),
                       follow_redirects=False)
    assert first.status_code == 303
    late = admin.post(f"/connections/{crm}/edit", data=form_of(admin, version=old, host="two.example.com", **fields))
    assert late.status_code == 409 and 'id="conflict"' in late.text and "nothing was saved" in late.text
    assert 'value="two.example.com"' in late.text, "what was typed is kept on the page"
    assert web.app.state.owner.read(lambda ws: ws.connection(crm)).host == "one.example.com"


def test_problems_are_shown_all_at_once_next_to_their_field(web):
    admin = web.client("admin")
    answer = admin.post("/connections/new", data=form_of(admin, type="postgresql", name="Bad Name", port="many",
                                                         password="typed-secret"))
    assert answer.status_code == 400
    text = answer.text
    assert re.search(r'id="error-name"[^>]*>[^<]*not a valid name', text)
    assert re.search(r'id="error-port"[^>]*>[^<]*valid integer', text)
    assert re.search(r'id="error-database"[^>]*>Fill this in', text)
    assert re.search(r'id="error-user"[^>]*>Fill this in', text)
    assert "4 problem(s)" in text and "typed-secret" not in text, "a password is never sent back"
    taken = admin.post("/connections/new", data=form_of(admin, type="local", name="demo_files", path="elsewhere"))
    assert taken.status_code == 409 and re.search(r'id="error-name"[^>]*>[^<]*exists already', taken.text)


def test_delete_a_connection_but_not_one_in_use(web):
    admin = web.client("admin")
    assert admin.post("/connections/new", data=form_of(admin, type="webhook", name="crm_hook",
                                                       url="https://hooks.example.com/in", secret="hmac-key",
                                                       headers="X-Team: marketing"),
                      follow_redirects=False).status_code == 303
    hook = web.app.state.owner.read(lambda ws: ws.config_object("connection", "crm_hook"))["spec"]
    assert hook["headers"] == {"X-Team": "marketing"} and hook["secret"] == {"secret": "crm_hook.secret"}
    used = admin.post("/connections/demo_files/delete", data=form_of(admin))
    assert used.status_code == 409 and 'id="delete-error"' in used.text and "It is used by crm_contacts" in used.text
    assert 'id="in-use"' in admin.get("/connections/demo_files/edit").text
    assert "demo_files" in web.app.state.owner.read(lambda ws: [c.name for c in ws.config.connections])
    old = version_on(admin.get("/connections/crm_hook/edit").text)
    changed = admin.post("/connections/crm_hook/edit", data=form_of(admin, version=old, url="https://hooks.example.com/v2"))
    assert changed.status_code == 200 and "crm_hook saved" in changed.text
    late = admin.post("/connections/crm_hook/delete", data=form_of(admin, version=old))
    assert late.status_code == 409 and "changed since version" in late.text
    version = version_on(admin.get("/connections/crm_hook/edit").text)
    gone = admin.post("/connections/crm_hook/delete", data=form_of(admin, version=version), follow_redirects=False)
    assert gone.status_code == 303
    assert "crm_hook" not in web.app.state.owner.read(lambda ws: [c.name for c in ws.config.connections])


def test_editors_and_viewers_cannot_change_connections(web, crm):
    for role in ("viewer", "editor"):
        client = web.client(role)
        listed = client.get("/connections").text
        assert "/connections/new" not in listed and f"/connections/{crm}/edit" not in listed
        for path in ("/connections/new", f"/connections/{crm}/edit", f"/connections/{crm}/delete"):
            answer = client.post(path, data=form_of(client, type="local", name="x", path="."))
            assert answer.status_code == 403, (role, path)
    assert "x" not in web.app.state.owner.read(lambda ws: [c.name for c in ws.config.connections])
