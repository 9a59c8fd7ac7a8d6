"""Who may call what: the authorization matrix of every /api route, sessions and CSRF, API tokens,
login throttling, the audit log, the offline API docs, and no secret in any log."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from tessera.api.app import create_app
from tessera.api.auth import CSRF_HEADER
from tessera.api.server import check_exposure, is_loopback
from tessera.errors import UsageError
from tessera.users import Throttle, Users, parse_expires, role_allows
from tessera.workspace import Workspace

PASSWORDS = {"admin": "admin-passphrase-1", "editor": "editor-passphrase-2", "viewer": "viewer-passphrase-3"}
EMAILS = {role: f"{role}@example.com" for role in PASSWORDS}
SECRETS: set[str] = set(PASSWORDS.values())  # every password and token of this module: never in a log

# The rule of every /api route. A new route must be added here with its rule, or the matrix fails.
RULES = {
    ("GET", "/api/status"): "viewer",
    ("GET", "/api/profiles/{tessera_id}"): "viewer",
    ("GET", "/api/schedule"): "viewer",
    ("GET", "/api/events"): "viewer",
    ("GET", "/api/jobs"): "viewer",
    ("GET", "/api/jobs/{job_id}"): "viewer",
    ("POST", "/api/jobs"): "editor",  # apply jobs: admin (checked in the route, see test_apply_needs_an_admin)
    ("POST", "/api/jobs/{job_id}/cancel"): "editor",
    ("POST", "/api/cli"): "local",
    ("GET", "/api/identity/review"): "viewer",
    ("POST", "/api/identity/review"): "editor",
    ("GET", "/api/identity/overrides"): "viewer",
    ("POST", "/api/identity/overrides"): "editor",
    ("DELETE", "/api/identity/overrides/{override_id}"): "editor",
    ("POST", "/api/session"): "public",
    ("DELETE", "/api/session"): "viewer",
    ("GET", "/api/me"): "viewer",
    ("GET", "/api/users"): "admin",
    ("POST", "/api/users"): "admin",
    ("DELETE", "/api/users/{email}"): "admin",
    ("GET", "/api/tokens"): "viewer",  # a user lists its own, an admin all
    ("POST", "/api/tokens"): "admin",
    ("DELETE", "/api/tokens/{token_id}"): "viewer",  # a user revokes its own, an admin any
    ("GET", "/api/audit"): "admin",
    ("GET", "/api/segments"): "viewer",
    ("POST", "/api/segments/count"): "viewer",  # a live count of a draft: a read
    ("GET", "/api/segments/{name}"): "viewer",
    ("GET", "/api/segments/{name}/count"): "viewer",
    ("GET", "/api/segments/{name}/members"): "viewer",
    ("GET", "/api/segments/{name}/history"): "viewer",
    ("POST", "/api/segments"): "editor",
    ("PUT", "/api/segments/{name}"): "editor",
    ("DELETE", "/api/segments/{name}"): "editor",
    ("GET", "/api/config"): "viewer",
    ("POST", "/api/config/validate"): "editor",
    ("POST", "/api/config/diff"): "editor",
    ("POST", "/api/config/apply"): "admin",
    ("GET", "/api/connections"): "viewer",  # never a secret
    ("GET", "/api/connections/{name}"): "viewer",
    ("POST", "/api/connections"): "admin",
    ("PUT", "/api/connections/{name}"): "admin",
    ("DELETE", "/api/connections/{name}"): "admin",
    ("POST", "/api/connections/{name}/test"): "editor",
    ("GET", "/api/sources"): "viewer",
    ("GET", "/api/sources/{name}"): "viewer",
    ("GET", "/api/sources/{name}/preview"): "viewer",
    ("POST", "/api/sources"): "editor",
    ("PUT", "/api/sources/{name}"): "editor",
    ("DELETE", "/api/sources/{name}"): "editor",
    ("GET", "/api/datasets"): "viewer",
    ("GET", "/api/datasets/{name}"): "viewer",
    ("POST", "/api/datasets"): "editor",
    ("PUT", "/api/datasets/{name}"): "editor",
    ("DELETE", "/api/datasets/{name}"): "editor",
    ("GET", "/api/datasets/{name}/rows"): "viewer",
    ("GET", "/api/datasets/{name}/export"): "viewer",  # a viewer needs the grant export (checked in the route)
    ("GET", "/api/customers"): "viewer",
    ("GET", "/api/syncs"): "viewer",
    ("GET", "/api/syncs/{name}"): "viewer",
    ("POST", "/api/syncs/{name}/plan"): "editor",
    ("POST", "/api/syncs/{name}/run"): "editor",
    ("POST", "/api/syncs"): "editor",
    ("PUT", "/api/syncs/{name}"): "editor",
    ("DELETE", "/api/syncs/{name}"): "editor",
    ("GET", "/api/schedules"): "viewer",
    ("PUT", "/api/schedules/{kind}/{name}"): "editor",
    ("GET", "/api/runs"): "viewer",
    ("GET", "/api/runs/{run_id}"): "viewer",
    ("POST", "/api/runs"): "editor",
    ("POST", "/api/imports"): "editor",
    ("GET", "/api/jobs/{job_id}/events"): "viewer",
    ("GET", "/api/users/{email}/grants"): "admin",
    ("PUT", "/api/users/{email}/grants"): "admin",
    ("GET", "/api/dashboards"): "viewer",
    ("GET", "/api/dashboards/filters"): "viewer",
    ("GET", "/api/dashboards/{name}"): "viewer",
    ("GET", "/api/dashboards/{name}/definition"): "viewer",
    ("GET", "/api/dashboards/{name}/{question}.csv"): "viewer",
    ("GET", "/api/dashboards/{name}/{question}.png"): "viewer",
    ("GET", "/api/dashboards/{name}/{question}.svg"): "viewer",
    ("POST", "/api/questions/run"): "viewer",  # runs a draft question: a read
    ("POST", "/api/dashboards"): "editor",
    ("PUT", "/api/dashboards/{name}"): "editor",
    ("DELETE", "/api/dashboards/{name}"): "editor",
}
PATH_VALUES = {"tessera_id": "T1", "job_id": "987654", "override_id": "987654", "email": "nobody@example.com",
               "token_id": "987654", "name": "no_such_segment", "run_id": "987654", "kind": "source",
               "question": "no_such_question"}


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def logs():
    handler = Captured()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(exc_text)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="module")
def server(tmp_path_factory, logs):
    """A served workspace with one user per role, their signed-in clients and an editor's API token."""
    path = tmp_path_factory.mktemp("auth") / "ws"
    with Workspace.init(path) as ws:
        users = Users(ws.store)
        for role, email in EMAILS.items():
            users.create(email, role, PASSWORDS[role], by="test")
    app = create_app(path, collect=False)
    with TestClient(app) as local:
        token, _ = app.state.users.create_token(EMAILS["editor"], "editor", expires="1d")
        SECRETS.add(token)
        SECRETS.add(app.state.owner.local_token)
        local.headers["Authorization"] = f"Bearer {app.state.owner.local_token}"
        clients = {"anonymous": (TestClient(app), None), "local": (local, "admin"),
                   "token": (TestClient(app, headers={"Authorization": f"Bearer {token}"}), "editor")}
        for role in PASSWORDS:
            clients[role] = (sign_in(app, role), role)
        yield {"app": app, "path": path, "clients": clients, "token": token}


def sign_in(app, role: str) -> TestClient:
    client = TestClient(app)
    answer = client.post("/api/session", json={"email": EMAILS[role], "password": PASSWORDS[role]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["role"] == role
    client.headers[CSRF_HEADER] = body["csrf_token"]
    SECRETS.add(client.cookies.get("tessera_session"))
    return client


def rule_of(route: APIRoute) -> list[str]:
    """The rules a route depends on (tessera_rule of its dependencies, at any depth)."""
    found, todo = [], list(route.dependant.dependencies)
    while todo:
        dep = todo.pop()
        rule = getattr(dep.call, "tessera_rule", None)
        if rule is not None:
            found.append(rule)
        todo.extend(dep.dependencies)
    return found


def api_routes(app) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every /api route of the app, routers included (sign-out last)."""
    found = [(c.path, c.original_route) for c in iter_route_contexts(app.routes)]
    out = [(m, path, r) for path, r in found if isinstance(r, APIRoute) and path.startswith("/api") for m in r.methods]
    assert len(out) >= len(RULES) - 2, "the route table was not read: FastAPI changed how it keeps routes"
    return sorted(out, key=lambda t: (t[1] == "/api/session" and t[0] == "DELETE", t[1], t[0]))


def allowed(rule: str, caller: str, role: str | None) -> bool:
    if rule == "public":
        return True
    if rule == "local":
        return caller == "local"
    return role is not None and role_allows(role, rule)


def test_every_route_has_one_rule_and_it_is_the_expected_one(server):
    app = server["app"]
    seen = {}
    for method, path, route in api_routes(app):
        rules = rule_of(route)
        assert len(rules) == 1, (f"{method} {path} has the rules {rules}: give it exactly one "
                                 "(require(...), local_only(), public())")
        seen[(method, path)] = rules[0]
    missing = set(seen) - set(RULES)
    assert not missing, f"routes without an entry in RULES (add them with their rule): {sorted(missing)}"
    assert not set(RULES) - set(seen), f"RULES names routes that do not exist: {sorted(set(RULES) - set(seen))}"
    assert seen == RULES


def test_authorization_matrix(server):
    """Every /api route x anonymous, viewer, editor, admin (sessions), an API token, the local credential."""
    app, clients = server["app"], server["clients"]
    checked = 0
    for method, path, route in api_routes(app):
        rule = rule_of(route)[0]
        url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
        for caller, (client, role) in clients.items():
            body = {} if method in ("POST", "PUT", "PATCH") else None
            answer = client.request(method, url, json=body) if body is not None else client.request(method, url)
            assert answer.status_code < 500, (method, path, caller, answer.text)
            if allowed(rule, caller, role):
                assert answer.status_code not in (401, 403), (method, path, caller, answer.text)
            else:
                expected = 401 if caller == "anonymous" else 403
                assert answer.status_code == expected, (method, path, caller, answer.status_code, answer.text)
                assert answer.json()["code"] == ("unauthorized" if expected == 401 else "forbidden")
            checked += 1
            if (method, path) == ("DELETE", "/api/session") and caller in PASSWORDS:
                clients[caller] = (sign_in(app, caller), role)  # signed out: sign in again
    assert checked == len(RULES) * 6


def test_a_signed_out_session_is_refused(server):
    client = sign_in(server["app"], "viewer")
    cookie = client.cookies.get("tessera_session")
    assert client.get("/api/me").json() == {"identity": EMAILS["viewer"], "role": "viewer", "via": "session"}
    assert client.delete("/api/session").status_code == 204
    replay = TestClient(server["app"], cookies={"tessera_session": cookie})
    assert replay.get("/api/me").status_code == 401
    forged = TestClient(server["app"], cookies={"tessera_session": cookie[:-4] + "AAAA"})
    assert forged.get("/api/me").status_code == 401


def test_session_cookie_is_httponly_and_samesite(server):
    client = TestClient(server["app"])
    answer = client.post("/api/session", json={"email": EMAILS["viewer"], "password": PASSWORDS["viewer"]})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    SECRETS.add(client.cookies.get("tessera_session"))


def test_csrf_is_refused_without_its_token_on_a_cookie_session(server):
    app = server["app"]
    admin = sign_in(app, "admin")
    csrf = admin.headers.pop(CSRF_HEADER)
    new = {"email": "csrf@example.com", "role": "viewer", "password": "a-long-password"}
    missing = admin.post("/api/users", json=new)
    assert missing.status_code == 403 and CSRF_HEADER in missing.json()["error"]
    wrong = admin.post("/api/users", json=new, headers={CSRF_HEADER: csrf[:-2] + "xx"})
    assert wrong.status_code == 403
    assert app.state.users.store.get_user("csrf@example.com") is None  # nothing was done
    assert admin.get("/api/users").status_code == 200  # reads need no CSRF token
    done = admin.post("/api/users", json=new, headers={CSRF_HEADER: csrf})
    assert done.status_code == 201 and done.json()["role"] == "viewer"
    # a bearer token is not sent by the browser by itself: it needs no CSRF token
    editor = server["clients"]["token"][0]
    assert editor.delete("/api/identity/overrides/987654").status_code != 403


def test_revoked_and_expired_tokens_are_refused(server):
    app = server["app"]
    users: Users = app.state.users
    token, row = users.create_token(EMAILS["viewer"], "viewer", expires="30d")
    old, _ = users.create_token(EMAILS["viewer"], "viewer", expires=datetime.now(timezone.utc) - timedelta(seconds=1))
    SECRETS.update({token, old})
    client = TestClient(app)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=bearer).json()["via"] == "token"
    assert users.store.get_token(row["id"])["last_used_at"] is not None
    expired = client.get("/api/me", headers={"Authorization": f"Bearer {old}"})
    assert expired.status_code == 401 and "expired" in expired.json()["error"]
    # the viewer revokes its own token; it may not revoke the editor's
    viewer = server["clients"]["viewer"][0]
    assert [t["id"] for t in viewer.get("/api/tokens").json()] == sorted(
        t["id"] for t in users.tokens(EMAILS["viewer"]))
    editor_token = next(t for t in users.tokens(EMAILS["editor"]))
    assert viewer.delete(f"/api/tokens/{editor_token['id']}").status_code == 404
    assert viewer.delete(f"/api/tokens/{row['id']}").json()["state"] == "revoked"
    assert client.get("/api/me", headers=bearer).status_code == 401
    assert client.get("/api/status", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert client.get("/api/status", headers={"Authorization": "Basic abc"}).status_code == 401


def test_a_token_is_scoped_to_its_role_and_never_above_its_user(server):
    app = server["app"]
    admin = server["clients"]["local"][0]
    made = admin.post("/api/tokens", json={"user": EMAILS["admin"], "role": "viewer", "expires": "2h"})
    assert made.status_code == 201 and made.json()["token"].startswith("tsk_")
    token = made.json()["token"]
    SECRETS.add(token)
    assert "token" not in admin.get("/api/tokens").json()[0]
    scoped = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    assert scoped.get("/api/status").status_code == 200
    assert scoped.get("/api/users").status_code == 403  # an admin's token scoped to viewer
    above = admin.post("/api/tokens", json={"user": EMAILS["viewer"], "role": "admin"})
    assert above.status_code == 400 and "cannot have the role admin" in above.json()["error"]
    bad = admin.post("/api/tokens", json={"user": EMAILS["viewer"], "role": "viewer", "expires": "soon"})
    assert bad.status_code == 400 and "--expires" in bad.json()["error"]


def test_apply_needs_an_admin_and_is_audited_with_its_diff(server, tmp_path):
    editor = server["clients"]["token"][0]
    config = {"connections": [{"name": "files", "type": "local", "path": str(tmp_path)}]}
    refused = editor.post("/api/jobs", json={"kind": "apply", "params": {"config": config}})
    assert refused.status_code == 403 and "admin" in refused.json()["error"]
    admin = server["clients"]["admin"][0]
    job = admin.post("/api/jobs", json={"kind": "apply", "params": {"config": config}}).json()
    done = admin.get(f"/api/jobs/{job['id']}", params={"wait": 30}).json()
    assert done["state"] == "succeeded", done
    lines = admin.get("/api/audit", params={"action": "job.apply"}).json()["data"]
    finished = next(line for line in lines if line["action"] == "job.apply.finished")
    submitted = next(line for line in lines if line["action"] == "job.apply.submitted")
    assert submitted["actor"] == finished["actor"] == EMAILS["admin"]
    assert submitted["target"] == finished["target"] == f"job {job['id']}"
    assert finished["details"]["diff"]["added"] == ["connection files"]
    assert submitted["client"] == "testclient"


def test_login_throttling_per_account_and_per_address(server):
    app = server["app"]
    app.state.throttle = Throttle(free=5, base=60)
    try:
        client = TestClient(app)
        wrong = {"email": EMAILS["editor"], "password": "not-the-password"}
        for _ in range(5):
            assert client.post("/api/session", json=wrong).status_code == 401
        right = {"email": EMAILS["editor"], "password": PASSWORDS["editor"]}
        held = client.post("/api/session", json=right)
        assert held.status_code == 429 and int(held.headers["Retry-After"]) > 0
        assert held.json()["code"] == "too_many_requests"
        # the address is held too: another account from it waits as well
        other = client.post("/api/session", json={"email": EMAILS["viewer"], "password": PASSWORDS["viewer"]})
        assert other.status_code == 429
        lines = server["clients"]["local"][0].get("/api/audit", params={"action": "login"}).json()["data"]
        actions = [line["action"] for line in lines if line["actor"] == EMAILS["editor"]]
        assert actions.count("login.failed") >= 5 and "login.throttled" in actions
    finally:
        app.state.throttle = Throttle()


def test_throttle_delay_grows_and_a_success_clears_the_account():
    now = [1000.0]
    throttle = Throttle(free=5, base=1.0, cap=30.0, clock=lambda: now[0])
    for _ in range(5):
        assert throttle.retry_after("account:a") == 0
        throttle.failed("account:a")
    waits = []
    for _ in range(6):
        waits.append(throttle.retry_after("account:a"))
        now[0] += waits[-1]
        throttle.failed("account:a")
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    throttle.succeeded("account:a")
    assert throttle.retry_after("account:a") == 0


def test_audit_records_users_tokens_and_logins(server):
    lines = server["clients"]["local"][0].get("/api/audit", params={"limit": 1000}).json()["data"]
    actions = {line["action"] for line in lines}
    assert {"user.created", "token.created", "token.revoked", "login.succeeded", "login.failed", "logout"} <= actions
    assert server["clients"]["editor"][0].get("/api/audit").status_code == 403


def test_users_api_and_the_last_admin(server):
    admin = server["clients"]["local"][0]
    assert {u["email"] for u in admin.get("/api/users").json()} >= set(EMAILS.values())
    assert all("password" not in json.dumps(u) for u in admin.get("/api/users").json())
    short = admin.post("/api/users", json={"email": "s@example.com", "role": "viewer", "password": "short"})
    assert short.status_code == 400 and "too short" in short.json()["error"]
    twice = admin.post("/api/users", json={"email": EMAILS["viewer"], "role": "viewer", "password": "long-enough-1"})
    assert twice.status_code == 400 and "exists" in twice.json()["error"]
    last = admin.delete(f"/api/users/{EMAILS['admin']}")
    assert last.status_code == 400 and "last admin" in last.json()["error"]


def test_docs_are_served_offline_and_list_every_route(server):
    client = server["clients"]["anonymous"][0]
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html.text, re.I), (page, html.text)
        for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', html.text):
            assert client.get(asset).status_code == 200, asset
    assert "/docs/assets/swagger-ui-bundle.js" in client.get("/docs").text
    assert "/docs/assets/redoc.standalone.js" in client.get("/redoc").text
    spec = client.get("/openapi.json").json()["paths"]
    for method, path, _ in api_routes(server["app"]):
        assert method.lower() in spec.get(path, {}), f"{method} {path} is missing from the API docs"


def test_serve_beyond_loopback_needs_an_admin(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    Workspace.init(tmp_path / "ws").close()
    check_exposure(tmp_path / "ws", "127.0.0.1")
    with pytest.raises(UsageError, match="create-admin"):
        check_exposure(tmp_path / "ws", "0.0.0.0")
    proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", "-w", str(tmp_path / "ws"), "serve", "--host",
                           "0.0.0.0", "--port", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("Error:") and "users create-admin" in proc.stderr
    assert "Traceback" not in proc.stderr
    with Workspace.open(tmp_path / "ws") as ws:
        Users(ws.store).create("root@example.com", "admin", "a-long-passphrase")
    check_exposure(tmp_path / "ws", "0.0.0.0")


def test_parse_expires():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_expires("90d", now=now) == now + timedelta(days=90)
    assert parse_expires("12h", now=now) == now + timedelta(hours=12)
    assert parse_expires("never") is None
    assert parse_expires("2027-03-01") == datetime(2027, 3, 1, tzinfo=timezone.utc)
    with pytest.raises(UsageError, match="--expires"):
        parse_expires("0d")


def test_no_password_or_token_in_any_log(server, logs):
    """Last: every secret this module used (passwords, tokens, session cookies, the local credential)."""
    store = server["app"].state.users.store
    audit = json.dumps(store.list_audit(10_000))
    jobs = json.dumps(store.list_jobs(1000))
    texts = {"log": "\n".join(logs.lines), "audit log": audit, "jobs": jobs}
    for secret in filter(None, SECRETS):
        for where, text in texts.items():
            assert secret not in text, f"a secret ({secret[:6]}...) is in the {where}"
    # the store keeps hashes only
    with store.engine.connect() as con:
        raw = "\n".join(str(row) for table in ("users", "api_tokens", "states")
                        for row in con.exec_driver_sql(f"SELECT * FROM {table}"))
    for secret in filter(None, SECRETS):
        assert secret not in raw
    assert "$argon2" in raw


def test_the_users_migration_goes_both_ways(tmp_path):
    from alembic import command
    from sqlalchemy import inspect

    from tessera.store import MetadataStore

    store = MetadataStore(f"sqlite:///{tmp_path / 'meta.sqlite'}")
    try:
        store.upgrade("0004_identity_overrides")
        assert not {"users", "api_tokens", "audit_log"} & set(inspect(store.engine).get_table_names())
        store.upgrade()
        assert {"users", "api_tokens", "audit_log"} <= set(inspect(store.engine).get_table_names())
        users = Users(store)
        users.create("a@example.com", "admin", "a-long-passphrase")
        assert users.authenticate("A@example.com ", "a-long-passphrase")["role"] == "admin"
        assert users.authenticate("a@example.com", "wrong-passphrase") is None
        assert users.authenticate("nobody@example.com", "a-long-passphrase") is None
        cfg = store._alembic_config()
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004_identity_overrides")
        assert not {"users", "api_tokens", "audit_log"} & set(inspect(store.engine).get_table_names())
    finally:
        store.close()
