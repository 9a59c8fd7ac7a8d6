"""Runs, syncs, connections, the source catalog, datasets and the admin pages, as HTML over the ASGI app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markupsafe import escape

from web_helpers import EMAILS


def job_id_of(answer) -> int:
    assert answer.status_code == 303, answer.text
    return int(re.fullmatch(r"/runs/jobs/(\d+)", answer.headers["location"]).group(1))


def test_start_an_import_and_follow_it(web):
    """(A whole run is started and followed in the browser test; an import, which finds no new file
    here, takes the same way through the writer queue, in a fraction of the time.)"""
    editor = web.client("editor")
    job_id = job_id_of(editor.post("/runs", data={"kind": "import", "csrf_token": editor.csrf},
                                   follow_redirects=False))
    live = editor.get(f"/runs/jobs/{job_id}/progress").text
    state = re.search(r'data-state="(\w+)"', live).group(1)
    if state in ("queued", "running"):
        assert f'hx-get="/runs/jobs/{job_id}/progress" hx-trigger="every 1s"' in live  # polled while it runs
    job = web.app.state.owner.jobs.wait(job_id, 300)
    assert job["state"] == "succeeded", job
    done = editor.get(f"/runs/jobs/{job_id}").text
    assert 'data-state="succeeded"' in done and "hx-trigger" not in done.split('id="job-progress"')[1][:300]
    assert "Import files" in done  # the steps, in words
    runs = editor.get("/runs").text
    assert f'href="/runs/jobs/{job_id}"' in runs and "import" in runs


def test_a_failed_job_shows_its_error(web):
    owner = web.app.state.owner
    job = owner.submit("sync", {"syncs": ["no_such_sync"]}, by=EMAILS["editor"])
    owner.jobs.wait(job["id"], 60)
    page = web.client("viewer").get(f"/runs/jobs/{job['id']}").text
    assert 'data-state="failed"' in page
    assert re.search(r'id="job-error">[^<]*no_such_sync', page)


@pytest.fixture(scope="module")
def file_sync(web):
    """A file sync of segment vip created through the form."""
    editor = web.client("editor")
    answer = editor.post("/syncs/new", data={"name": "vip_to_file", "segment": "vip", "connection": "demo_files",
                                             "mode": "mirror", "format": "csv", "folder": "audiences",
                                             "csrf_token": editor.csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/syncs/vip_to_file", answer.text
    return "vip_to_file"


def test_create_a_file_sync_from_a_segment(web, file_sync):
    sync = web.app.state.owner.read(lambda ws: next(s for s in ws.config.syncs if s.name == file_sync))
    assert (sync.segment, sync.dataset, sync.connection, sync.mode) == ("vip", "contacts", "demo_files", "mirror")
    listed = web.client("viewer").get("/syncs").text
    assert f'href="/syncs/{file_sync}"' in listed and "never sent" in listed


def test_a_file_sync_with_chosen_fields(web):
    editor = web.client("editor")
    answer = editor.post("/syncs/new", data={"name": "vip_emails", "segment": "vip", "connection": "demo_files",
                                             "mode": "upsert", "format": "csv", "folder": "audiences",
                                             "fields": "email\nsegment_rfm = score_rfm_segment\n",
                                             "csrf_token": editor.csrf}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    sync = web.app.state.owner.read(lambda ws: next(s for s in ws.config.syncs if s.name == "vip_emails"))
    assert sync.fields == {"email": "email", "segment_rfm": "score_rfm_segment"}
    assert "segment_rfm ← score_rfm_segment" in editor.get("/syncs/vip_emails").text


def test_a_sync_form_with_problems_says_them_all(web, file_sync):
    editor = web.client("editor")
    answer = editor.post("/syncs/new", data={"name": file_sync, "segment": "nope", "connection": "nope",
                                             "fields": "a b = c", "csrf_token": editor.csrf})
    assert answer.status_code == 400
    for text in ("Choose a segment", "Choose a destination", "has this name already", "Fields: write one per line"):
        assert text in answer.text


def test_dry_run_then_send_a_sync_to_a_file(web, file_sync):
    editor = web.client("editor")
    size = web.app.state.owner.read(lambda ws: ws.segment("vip"))["size"]
    plan = editor.post(f"/syncs/{file_sync}/plan", data={"csrf_token": editor.csrf})
    assert plan.status_code == 200
    assert re.search(rf'id="plan-counts">{size} new, 0 updated, 0 removed', plan.text.replace("\u202f", ""))
    job_id = job_id_of(editor.post(f"/syncs/{file_sync}/run", data={"csrf_token": editor.csrf}, follow_redirects=False))
    assert web.app.state.owner.jobs.wait(job_id, 120)["state"] == "succeeded"
    folder = web.app.state.owner.read(lambda ws: Path(next(c for c in ws.config.connections if c.name == "demo_files").path))
    written = list((folder / "audiences").glob(f"{file_sync}*.csv"))
    assert written and sum(1 for _ in written[0].open()) == size + 1  # a header and one line per member
    page = editor.get(f"/syncs/{file_sync}").text
    assert "succeeded" in page and f"{size} new" in page.replace("\u202f", "")
    member = web.app.state.owner.read(lambda ws: ws.segment_members("vip", limit=1))[0]["tessera_id"]
    timeline = editor.get(f"/customers/{member}").text.split('id="timeline"')[1]
    assert re.search(rf'Sent by <a href="/syncs/{file_sync}">', timeline), "the send is in the customer's timeline"


def test_test_a_connection(web):
    editor = web.client("editor")
    answer = editor.post("/connections/demo_files/test", data={"csrf_token": editor.csrf}, headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "demo_files works" in answer.text and "<html" not in answer.text
    assert "can be listed" in answer.text
    assert 'class="test-connection"' in editor.get("/connections").text
    assert 'class="test-connection"' not in web.client("viewer").get("/connections").text


def test_the_source_catalog(web):
    client = web.client("viewer")
    listed = client.get("/sources").text
    assert 'href="/sources/crm_contacts"' in listed
    page = client.get("/sources/crm_contacts").text
    for part in ('id="columns"', 'id="files"', 'id="rejects"', 'id="preview"'):
        assert part in page
    info = web.app.state.owner.read(lambda ws: ws.source("crm_contacts"))
    for col in info["columns"][:3]:
        assert f"<td>{col['column']}" in page
    if info["rejected_rows"]:
        assert str(escape(info["rejects"][0]["reason"])) in page
    preview = client.get("/sources/crm_contacts/preview").text
    assert "<th>id_client</th>" in preview and "<html" not in preview
    assert client.get("/sources/nope").status_code == 404
    assert client.get("/sources/nope/preview").status_code == 404


def test_datasets_and_their_columns(web):
    client = web.client("viewer")
    assert 'href="/datasets/contacts"' in client.get("/datasets").text
    page = client.get("/datasets/contacts").text
    assert "merge key" in page and "most_recent" in page and "First rows" in page
    assert re.search(r'href="/customers/T[0-9a-f]+"', page)
    assert client.get("/datasets/nope").status_code == 404


def test_admins_add_and_remove_users(web):
    admin = web.client("admin")
    short = admin.post("/admin/users", data={"email": "new@example.com", "role": "viewer", "password": "short",
                                             "csrf_token": admin.csrf})
    assert short.status_code == 400 and "password" in short.text.lower()
    added = admin.post("/admin/users", data={"email": "new@example.com", "role": "editor",
                                             "password": "a long passphrase", "csrf_token": admin.csrf},
                       follow_redirects=False)
    assert added.status_code == 303
    assert "new@example.com" in admin.get("/admin/users").text
    assert admin.post("/admin/users/new@example.com/remove", data={"csrf_token": admin.csrf},
                      follow_redirects=False).status_code == 303
    assert "new@example.com" not in admin.get("/admin/users").text


def test_admins_create_a_token_shown_once_and_revoke_it(web):
    admin = web.client("admin")
    page = admin.post("/admin/tokens", data={"email": EMAILS["viewer"], "role": "viewer", "expires": "1d",
                                             "csrf_token": admin.csrf})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    token = re.search(r"<code[^>]*>(tsk_[\w-]+)</code>", page.text).group(1)
    assert web.app.state.users.check_token(token) is not None
    assert 'x-data="copyable"' in page.text  # a copy button (Alpine.js)
    assert token not in admin.get("/admin/tokens").text, "a token is shown once"
    token_id = web.app.state.users.check_token(token)["id"]
    admin.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": admin.csrf})
    assert web.app.state.users.check_token(token) is None


def test_the_audit_log_lists_sign_ins_and_changes(web):
    admin = web.client("admin")
    page = admin.get("/admin/audit").text
    assert "login.succeeded" in page and "user.created" in page
    only = admin.get("/admin/audit", params={"action": "login"}).text
    assert "login.succeeded" in only and "user.created" not in only
