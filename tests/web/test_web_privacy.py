"""The customer 360 page's privacy card (admins): export everything as a zip, erase everywhere
after typing the customer's id again; the customer is then gone from search and from the page."""

from __future__ import annotations

import io
import re
import zipfile

import pytest


@pytest.fixture(scope="module")
def customer(web):
    def pick(ws):
        t = ws.table("contacts")
        q = t.filter((t.tessera_record_count >= 2) & t.email.notnull()).order_by("tessera_id").limit(1)
        return ws.adapter.to_arrow(q.select("tessera_id", "email")).to_pylist()[0]

    return web.app.state.owner.read(pick)


def test_only_admins_see_the_privacy_card(web, customer):
    page = f"/customers/{customer['tessera_id']}"
    assert 'id="privacy"' in web.client("admin").get(page).text
    assert 'id="privacy"' not in web.client("editor").get(page).text


def test_export_then_erase_from_the_360_page(web, customer):
    tid, email = customer["tessera_id"], customer["email"]
    admin = web.client("admin")
    answer = admin.post(f"/customers/{tid}/export", data={"csrf_token": admin.csrf})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as z:
        assert any(email in z.read(n).decode() for n in z.namelist())

    wrong = admin.post(f"/customers/{tid}/erase", data={"csrf_token": admin.csrf, "confirm": "T000"})
    assert wrong.status_code == 400 and "nothing was erased" in wrong.text
    assert tid in admin.get("/customers/search", params={"q": email}).text

    from tessera.analytics import dashboards

    assert admin.get("/dashboards/customer_knowledge").status_code == 200  # charts cached now
    assert dashboards._CACHE
    done = admin.post(f"/customers/{tid}/erase", data={"csrf_token": admin.csrf, "confirm": tid})
    assert done.status_code == 200 and "Customer erased" in done.text, done.text
    assert re.search(r"\d+ rows removed", done.text)
    assert not dashboards._CACHE  # no cached chart still counts the customer
    assert tid not in admin.get("/customers/search", params={"q": email}).text
    assert admin.get(f"/customers/{tid}").status_code == 404
    audit = admin.get("/admin/audit").text
    assert "privacy.erase" in audit and "privacy.export" in audit
