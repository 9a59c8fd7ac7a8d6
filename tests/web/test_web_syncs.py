"""Syncs from the browser beyond files: a webhook sync (its connection made with the connection
form, its secret signing the sends) whose refused records show on the sync's page, a database
sync (table, mode, key), and the problems of the form next to their fields."""

from __future__ import annotations

import hashlib
import html
import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SECRET = "hook-signing-secret"


@pytest.fixture(scope="module")
def receiver():
    """A webhook receiver that checks the signature and refuses the first record of each batch."""
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signed = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(signed, self.headers.get("X-Tessera-Signature", ""))
            payload = json.loads(body)
            got.append({"signed": ok, "batch": payload["batch"]})
            out = json.dumps({"errors": [{"index": 0, "error": "mailbox full"}]} if ok else {"error": "bad signature"})
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}/hook", "got": got}
    server.shutdown()
    server.server_close()


def sync_of(web, name: str):
    return web.app.state.owner.read(lambda ws: next(s for s in ws.config.syncs if s.name == name))


def test_a_webhook_sync_and_the_records_it_could_not_deliver(web, receiver):
    admin, editor = web.client("admin"), web.client("editor")
    made = admin.post("/connections/new", data={"type": "webhook", "name": "crm_hook", "url": receiver["url"],
                                                "secret": SECRET, "max_retries": "0", "csrf_token": admin.csrf},
                      follow_redirects=False)
    assert made.status_code == 303, made.text
    form = editor.get("/syncs/new").text
    assert re.search(r'<option value="crm_hook" data-group="webhook"', form)
    answer = editor.post("/syncs/new", data={"name": "vip_hook", "segment": "vip", "connection": "crm_hook",
                                             "mode": "upsert", "key": "email", "fields": "email\nfirst = first_name",
                                             "folder": "ignored", "csrf_token": editor.csrf}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    sync = sync_of(web, "vip_hook")
    assert (sync.connection, sync.mode, sync.key, sync.folder) == ("crm_hook", "upsert", "email", ".")
    assert sync.fields == {"email": "email", "first": "first_name"}
    job = editor.post("/syncs/vip_hook/run", data={"csrf_token": editor.csrf}, follow_redirects=False)
    done = web.app.state.owner.jobs.wait(int(job.headers["location"].rsplit("/", 1)[1]), 120)
    assert done["state"] == "succeeded", done
    assert receiver["got"] and all(r["signed"] for r in receiver["got"]), "signed with the secret from the store"
    sent = sum(len(r["batch"]) for r in receiver["got"])
    page = web.client("viewer").get("/syncs/vip_hook").text
    failed = len(receiver["got"])  # one refused record per batch
    assert f"{sent - failed} new" in page.replace("\u202f", "") and f"{failed} failed" in page
    card = page.split('id="failures"')[1]
    assert "mailbox full" in card and f"{failed} record(s) were refused" in card


def test_a_database_sync_needs_its_table(web):
    owner = web.app.state.owner
    owner.run_job("config_change", {"kind": "connection", "name": "warehouse", "create": True, "expected_version": None,
                                    "spec": {"name": "warehouse", "type": "postgresql", "database": "dwh",
                                             "user": "tessera"}})
    editor = web.client("editor")
    fields = {"name": "vip_table", "segment": "vip", "connection": "warehouse", "mode": "mirror", "key": "email",
              "csrf_token": editor.csrf}
    missing = editor.post("/syncs/new", data=fields)
    assert missing.status_code == 400 and re.search(r'id="error-table"[^>]*>Give the name of the table', missing.text)
    answer = editor.post("/syncs/new", data={**fields, "table": "crm_vip"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    sync = sync_of(web, "vip_table")
    assert (sync.table, sync.mode, sync.key, sync.segment, sync.dataset) == ("crm_vip", "mirror", "email", "vip",
                                                                            "contacts")
    assert "crm_vip" in editor.get("/syncs/vip_table").text


def test_the_problems_of_the_form_are_shown_next_to_their_fields(web):
    editor = web.client("editor")
    answer = editor.post("/syncs/new", data={"name": "whole_contacts", "segment": "dataset:contacts",
                                             "connection": "demo_files", "mode": "upsert", "key": "no_such_column",
                                             "fields": "mail = not_a_column", "folder": "../out",
                                             "csrf_token": editor.csrf})
    assert answer.status_code == 400
    assert re.search(r'id="error-key"[^>]*>[^<]*no_such_column&#39; is not a column', answer.text)
    assert re.search(r'id="error-folder"[^>]*>[^<]*goes up', answer.text)
    assert re.search(r'id="error-fields"[^>]*>mail: [^<]*not_a_column', answer.text)
    assert "3 problem(s)" in answer.text
    assert "whole_contacts" not in [s.name for s in web.app.state.owner.read(lambda ws: ws.config.syncs)]
    assert web.client("viewer").post("/syncs/new", data={"name": "x", "csrf_token": web.client("viewer").csrf}
                                     ).status_code == 403


def test_change_a_sync_as_yaml_then_delete_it(web):
    editor = web.client("editor")
    assert editor.post("/syncs/new", data={"name": "vip_later", "segment": "vip", "connection": "demo_files",
                                           "mode": "mirror", "folder": "audiences", "csrf_token": editor.csrf},
                       follow_redirects=False).status_code == 303
    assert 'href="/syncs/vip_later/edit"' in editor.get("/syncs/vip_later").text
    page = editor.get("/syncs/vip_later/edit").text
    text = html.unescape(re.search(r'<textarea name="definition"[^>]*>(.*?)</textarea>', page, re.S).group(1))
    old = re.search(r'name="version" value="([0-9a-f]+)"', page).group(1)
    answer = editor.post("/syncs/vip_later/edit", data={"definition": text.replace("mode: mirror", "mode: insert"),
                                                        "version": old, "csrf_token": editor.csrf},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/syncs/vip_later?saved=1"
    assert sync_of(web, "vip_later").mode == "insert"
    late = editor.post("/syncs/vip_later/delete", data={"version": old, "csrf_token": editor.csrf})
    assert late.status_code == 409 and 'id="conflict"' in late.text
    version = re.search(r'name="version" value="([0-9a-f]+)"', editor.get("/syncs/vip_later/edit").text).group(1)
    gone = editor.post("/syncs/vip_later/delete", data={"version": version, "csrf_token": editor.csrf},
                       follow_redirects=False)
    assert gone.status_code == 303 and "Sync vip_later deleted" in editor.get(gone.headers["location"]).text
    assert "vip_later" not in [s.name for s in web.app.state.owner.read(lambda ws: ws.config.syncs)]
