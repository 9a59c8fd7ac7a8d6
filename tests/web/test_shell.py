"""The shell of the web app: sign-in and sign-out, the security headers, static files served from
the package, the language switch and the home page."""

from __future__ import annotations

import re

from web_helpers import EMAILS, PASSWORDS


def test_a_page_without_a_session_redirects_to_the_sign_in(web):
    answer = web.anonymous.get("/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    answer = web.anonymous.get("/?q=ada", follow_redirects=False)
    assert answer.headers["location"] == "/login?next=/%3Fq%3Dada"


def test_htmx_requests_without_a_session_get_a_redirect_header(web):
    answer = web.anonymous.get("/", headers={"HX-Request": "true"}, follow_redirects=False)
    assert answer.status_code == 204
    assert answer.headers["HX-Redirect"] == "/login"


def test_sign_in_with_a_wrong_password_says_so(web):
    answer = web.anonymous.post("/login", data={"email": EMAILS["viewer"], "password": "not the password"})
    assert answer.status_code == 401
    assert "Wrong email or password" in answer.text
    assert "tessera_session" not in web.anonymous.cookies


def test_sign_in_then_home_then_sign_out(web):
    client = web.client("viewer", fresh=True)
    home = client.get("/")
    assert home.status_code == 200
    assert EMAILS["viewer"] in home.text
    assert "Needs attention" in home.text and "Last runs" in home.text
    assert re.search(r"contacts</a></td><td class=\"num\">\d", home.text)  # the customer dataset and its rows
    assert "Start a run" not in home.text  # a viewer cannot start one
    out = client.post("/logout", data={"csrf_token": client.csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sign_out_without_the_form_token_is_refused(web):
    client = web.client("viewer", fresh=True)
    answer = client.post("/logout", data={})
    assert answer.status_code == 403
    assert client.get("/").status_code == 200  # still signed in


def test_a_form_from_another_site_is_refused(web):
    client = web.client("viewer", fresh=True)
    answer = client.post("/logout", data={"csrf_token": client.csrf}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    login = web.anonymous.post("/login", data={"email": EMAILS["viewer"], "password": PASSWORDS["viewer"]},
                               headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert login.status_code == 403


def test_sign_in_goes_back_to_the_page_asked_and_never_to_another_site(web):
    for asked, expected in (("/segments", "/segments"), ("//evil.example/x", "/"), ("https://evil.example", "/")):
        client = web.client("viewer", fresh=True)
        answer = client.post("/login", data={"email": EMAILS["viewer"], "password": PASSWORDS["viewer"],
                                             "next": asked}, follow_redirects=False)
        assert answer.headers["location"] == expected


def test_pages_carry_the_content_security_policy_and_no_inline_script(web):
    page = web.client("admin").get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script would be blocked"
    assert not re.search(r"\sstyle=", page.text), "an inline style would be blocked"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "every asset comes from this server"
    assert "content-security-policy" not in web.client("admin").get("/api/status").headers


def test_static_files_come_from_the_package(web):
    for path in ("/static/app.css", "/static/app.js", "/static/vendor/htmx.min.js",
                 "/static/vendor/alpine-csp.min.js", "/static/vendor/vega.min.js",
                 "/static/vendor/vega-lite.min.js", "/static/vendor/vega-embed.min.js",
                 "/static/vendor/vega-interpreter.js"):
        answer = web.anonymous.get(path)
        assert answer.status_code == 200, path
        assert len(answer.content) > 500, path
    assert web.anonymous.get("/static/../app.py").status_code == 404


def test_language_from_the_browser_and_the_switch(web):
    client = web.client("viewer", fresh=True)
    assert "Accueil" in client.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}).text
    assert "Needs attention" in client.get("/", headers={"Accept-Language": "de, en;q=0.5"}).text
    switched = client.post("/language", data={"lang": "fr", "next": "/"}, follow_redirects=False)
    assert switched.status_code == 303
    page = client.get("/", headers={"Accept-Language": "en"})
    assert '<html lang="fr">' in page.text and "À regarder" in page.text
    client.post("/language", data={"lang": "en", "next": "/"})


def test_an_unknown_page_answers_an_html_404_and_the_api_keeps_json(web):
    client = web.client("viewer")
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    api = client.get("/api/no-such-route")
    assert api.status_code == 404 and api.json()["code"] == "not_found"
