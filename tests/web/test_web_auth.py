"""Who may open which page: every web route has exactly one rule, anonymous users are sent to the
sign-in page, and viewers (and editors) cannot do what needs a stronger role."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute, iter_route_contexts

from tessera.users import role_allows
from tessera.web import is_web_path

# The rule of every page. A new page must be added here with its rule, or the test fails.
RULES = {
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("POST", "/language"): "public",
    ("POST", "/logout"): "viewer",
    ("GET", "/"): "viewer",
    ("GET", "/customers"): "viewer",
    ("GET", "/customers/search"): "viewer",
    ("GET", "/customers/{tessera_id}"): "viewer",
    ("GET", "/customers/{tessera_id}/charts"): "viewer",
    ("POST", "/customers/{tessera_id}/export"): "admin",
    ("POST", "/customers/{tessera_id}/erase"): "admin",
    ("GET", "/segments"): "viewer",
    ("GET", "/segments/new"): "viewer",
    ("GET", "/segments/{name}"): "viewer",
    ("POST", "/segments/builder"): "viewer",  # redraws a draft: a read
    ("POST", "/segments/count"): "viewer",  # the live count of a draft: a read
    ("POST", "/segments/save"): "editor",
    ("POST", "/segments/{name}/delete"): "editor",
    ("GET", "/runs"): "viewer",
    ("POST", "/runs"): "editor",
    ("GET", "/runs/jobs/{job_id}"): "viewer",
    ("GET", "/runs/jobs/{job_id}/progress"): "viewer",
    ("POST", "/runs/jobs/{job_id}/cancel"): "editor",
    ("GET", "/syncs"): "viewer",
    ("GET", "/syncs/new"): "editor",
    ("POST", "/syncs/new"): "editor",
    ("GET", "/syncs/{name}"): "viewer",
    ("POST", "/syncs/{name}/plan"): "editor",
    ("POST", "/syncs/{name}/run"): "editor",
    ("GET", "/syncs/{name}/edit"): "editor",
    ("POST", "/syncs/{name}/edit"): "editor",
    ("POST", "/syncs/{name}/delete"): "editor",
    ("GET", "/connections"): "viewer",
    ("POST", "/connections/{name}/test"): "editor",
    ("GET", "/connections/new"): "admin",
    ("POST", "/connections/new"): "admin",
    ("GET", "/connections/{name}/edit"): "admin",
    ("POST", "/connections/{name}/edit"): "admin",
    ("POST", "/connections/{name}/delete"): "admin",
    ("GET", "/schedules"): "viewer",
    ("POST", "/schedules/{kind}/{name}"): "editor",
    ("GET", "/sources"): "viewer",
    ("GET", "/sources/{name}"): "viewer",
    ("GET", "/sources/{name}/preview"): "viewer",
    ("GET", "/datasets"): "viewer",
    ("GET", "/datasets/{name}"): "viewer",
    ("GET", "/sources/{name}/edit"): "editor",
    ("POST", "/sources/{name}/edit"): "editor",
    ("GET", "/datasets/{name}/edit"): "editor",
    ("POST", "/datasets/{name}/edit"): "editor",
    ("GET", "/admin/users"): "admin",
    ("POST", "/admin/users"): "admin",
    ("POST", "/admin/users/{email}/remove"): "admin",
    ("GET", "/admin/tokens"): "admin",
    ("POST", "/admin/tokens"): "admin",
    ("POST", "/admin/tokens/{token_id}/revoke"): "admin",
    ("GET", "/admin/audit"): "admin",
    ("GET", "/dashboards"): "viewer",
    ("GET", "/dashboards/new"): "editor",
    ("GET", "/dashboards/{name}"): "viewer",
    ("GET", "/dashboards/{name}/add"): "editor",
    ("GET", "/dashboards/{name}/{question}/edit"): "editor",
    ("GET", "/dashboards/{name}/{question}.{fmt}"): "viewer",
    ("GET", "/dashboards/{name}/{question}/chart"): "viewer",
    ("POST", "/dashboards/form"): "viewer",  # redraws a draft chart: a read
    ("POST", "/dashboards/preview"): "viewer",  # the preview of a draft chart: a read
    ("POST", "/dashboards/save"): "editor",
    ("POST", "/dashboards/{name}/delete"): "editor",
    ("POST", "/dashboards/{name}/{question}/remove"): "editor",
}
PATH_VALUES = {"tessera_id": "Tnobody", "name": "no_such_thing", "job_id": "987654", "email": "nobody@example.com",
               "token_id": "987654", "question": "no_such_question", "fmt": "png", "kind": "sync"}


def rules_of(route: APIRoute) -> list[str]:
    found, todo = [], list(route.dependant.dependencies)
    while todo:
        dep = todo.pop()
        rule = getattr(dep.call, "tessera_rule", None)
        if rule is not None:
            found.append(rule)
        todo.extend(dep.dependencies)
    return found


def web_routes(app) -> list[tuple[str, str, APIRoute]]:
    found = [(c.path, c.original_route) for c in iter_route_contexts(app.routes)]
    out = sorted((m, path, r) for path, r in found if isinstance(r, APIRoute) and is_web_path(path) for m in r.methods)
    assert len(out) >= len(RULES) - 2, "the route table was not read: FastAPI changed how it keeps routes"
    return out


def url_of(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def test_every_page_has_one_rule_and_it_is_the_expected_one(web):
    seen = {}
    for method, path, route in web_routes(web.app):
        rules = rules_of(route)
        assert len(rules) == 1, f"{method} {path} has the rules {rules}: give it exactly one (page(...) or public())"
        seen[(method, path)] = rules[0]
        assert route.include_in_schema is False, f"{method} {path}: pages stay out of the API's OpenAPI schema"
    assert seen == RULES, (f"pages without an entry in RULES: {sorted(set(seen) - set(RULES))}; "
                           f"RULES naming no page: {sorted(set(RULES) - set(seen))}")


def test_anonymous_users_are_sent_to_the_sign_in_page(web):
    for method, path, _ in web_routes(web.app):
        if RULES[(method, path)] == "public":
            continue
        answer = web.anonymous.request(method, url_of(path), follow_redirects=False)
        assert answer.status_code == 303, (method, path, answer.status_code)
        assert answer.headers["location"].startswith("/login"), (method, path)


def test_a_role_too_weak_is_refused_before_anything_is_done(web):
    checked = 0
    for role in ("viewer", "editor"):
        client = web.client(role)
        for method, path, _ in web_routes(web.app):
            rule = RULES[(method, path)]
            if rule == "public" or role_allows(role, rule):
                continue
            data = {"csrf_token": client.csrf} if method == "POST" else None
            answer = client.request(method, url_of(path), data=data, follow_redirects=False)
            assert answer.status_code == 403, (role, method, path, answer.status_code)
            assert f"this needs the role {rule}" in answer.text
            checked += 1
    assert checked >= 20


def test_changes_without_the_form_token_are_refused(web):
    client = web.client("admin")
    for method, path, _ in web_routes(web.app):
        if method != "POST" or RULES[(method, path)] == "public":
            continue
        answer = client.post(url_of(path), data={}, follow_redirects=False)
        assert answer.status_code == 403, (path, answer.status_code)
        assert "reload the page" in answer.text
