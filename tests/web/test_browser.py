"""The web app in a real browser (Debian's Chromium driven by Playwright): sign in, start a run and
watch it, find a customer by e-mail, build a segment and watch its count, send it to a file. Each
test saves a screenshot; one records the browser's network log and fails on any request that
leaves the server (and on any Content-Security-Policy violation).

Skipped when /usr/bin/chromium or Playwright is missing, unless TESSERA_TEST_BROWSER=1 (as
``scripts/test.sh`` sets it), which makes them fail instead. One browser and one server serve the
whole module.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from web_helpers import EMAILS, PASSWORDS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
REQUIRED = os.environ.get("TESSERA_TEST_BROWSER") == "1"
SLOW = 120_000  # ms: the longest a run of the small demo may take on a busy machine

try:
    from playwright.sync_api import expect, sync_playwright

    # What the page shows next may wait for a core on a busy shared machine (a live count after
    # typing, a part of the page loaded after it): wait up to 30 s instead of Playwright's 5 s.
    expect.set_options(timeout=30_000)
except ImportError:  # pragma: no cover - reported by the skip below
    sync_playwright = None

if not CHROMIUM.exists() or sync_playwright is None:
    why = ("Debian's chromium is not installed (apt-get install -y chromium)" if not CHROMIUM.exists()
           else "playwright is not installed (pip install playwright==1.65.2)")
    if REQUIRED:
        pytest.fail(f"TESSERA_TEST_BROWSER=1 but {why}", pytrace=False)
    pytest.skip(f"browser tests skipped: {why}; scripts/test.sh installs it", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_template, tmp_path_factory):
    """``tessera serve``'s application (uvicorn) on a copy of the demo workspace, in a thread."""
    import uvicorn

    from tessera.api.app import create_app

    path = tmp_path_factory.mktemp("browser-ws") / "ws"
    shutil.copytree(demo_template, path)
    port = _free_port()
    app = create_app(path, collect=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="asyncio", http="h11")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "app": app, "path": path}
    srv.should_exit = True
    thread.join(60)


@pytest.fixture(scope="module")
def browser():
    # Module-wide: Playwright's loop must be gone before later modules call asyncio.run().
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


class Recorded:
    """Every request the page made and every console message."""

    def __init__(self, page):
        self.requests: list[str] = []
        self.console: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))


@pytest.fixture(scope="module")
def session(browser, server):
    """One signed-in page (an editor) for the module, with its network and console log."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    recorded = Recorded(page)
    page.goto(server["url"] + "/")
    assert page.url.endswith("/login")
    page.fill("input[name=email]", EMAILS["editor"])
    page.fill("input[name=password]", PASSWORDS["editor"])
    page.click("button.primary")
    page.wait_for_url(server["url"] + "/")
    yield page, recorded
    context.close()


def test_sign_in(browser, server, shots):
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.goto(server["url"] + "/customers")
    assert urlsplit(page.url).path == "/login"
    page.fill("input[name=email]", EMAILS["viewer"])
    page.fill("input[name=password]", "not the password")
    page.click("button.primary")
    expect(page.locator(".alert.error")).to_contain_text("E-mail ou mot de passe incorrect")
    page.fill("input[name=password]", PASSWORDS["viewer"])
    page.click("button.primary")
    page.wait_for_url(server["url"] + "/customers")
    expect(page.locator(".who")).to_have_text(EMAILS["viewer"])
    expect(page.locator("h1")).to_have_text("Clients")
    page.screenshot(path=shots / "sign_in.png", full_page=True)
    page.click("#logout")
    page.wait_for_url(re.compile(r".*/login$"))
    context.close()


def test_start_a_run_and_watch_its_progress(session, server, shots):
    page, _ = session
    page.goto(server["url"] + "/runs")
    page.check("#run-full")  # the demo was run already: without it the run finds nothing new
    page.click("#start-run")
    page.wait_for_url(re.compile(r".*/runs/jobs/\d+$"))
    progress = page.locator("#job-progress")
    expect(progress).to_have_attribute("data-state", re.compile("queued|running|succeeded"))
    seen_steps = set()
    deadline = time.monotonic() + SLOW / 1000
    while progress.get_attribute("data-state") in ("queued", "running") and time.monotonic() < deadline:
        seen_steps |= set(page.locator("#steps td:first-child").all_inner_texts())
        page.wait_for_timeout(200)
    expect(progress).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    seen_steps |= set(page.locator("#steps td:first-child").all_inner_texts())
    assert {"Import files", "Merge customer records"} <= seen_steps, seen_steps
    page.screenshot(path=shots / "run.png", full_page=True)


def test_find_a_customer_by_email_and_see_the_merged_profile(session, server, shots):
    page, _ = session

    def merged(ws):
        t = ws.table("contacts")
        q = t.filter((t.tessera_record_count >= 2) & t.email.notnull() & (t.score_total_order_count >= 1))
        return ws.adapter.to_arrow(q.order_by("tessera_id").limit(1)).to_pylist()[0]

    row = server["app"].state.owner.read(merged)
    page.goto(server["url"] + "/customers")
    page.locator("#q").press_sequentially(row["email"][:12], delay=30)
    link = page.locator(f'#results a[href="/customers/{row["tessera_id"]}"]')
    if not link.count():
        page.locator("#q").fill(row["email"])
    expect(link).to_be_visible()
    link.click()
    page.wait_for_url(re.compile(rf".*/customers/{row['tessera_id']}$"))
    expect(page.locator("#header")).to_contain_text(row["email"])
    assert page.locator("#graph circle").count() == row["tessera_record_count"]
    expect(page.locator("#timeline .badge.kind").filter(has_text="order").first).to_be_visible()
    expect(page.locator("#chart-spend svg")).to_be_visible()  # Vega-Lite drew the spend chart
    page.screenshot(path=shots / "customer_360.png", full_page=True)


def _settled(page) -> None:
    """Wait until no HTMX request, swap or settle is under way: the controls of freshly swapped-in
    HTML only listen once they have settled, so a choice made before that would be lost."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')")


def _expect_count(page, server, conditions) -> int:
    """Wait until the live count shows what the workspace counts for ``conditions`` (each edit
    re-renders the form and recounts after a delay, so the shown figure changes more than once)."""
    owner = server["app"].state.owner
    n = owner.read(lambda ws: ws.segment_count(
        {"dataset": "contacts", "match": "all", "conditions": conditions}))["count"]
    digits = r"\D?".join(str(n))
    expect(page.locator("#live-count")).to_have_text(re.compile(rf"^\s*{digits}\s*$"))
    return n


def test_build_a_segment_and_see_the_count_change(session, server, shots):
    page, _ = session
    page.goto(server["url"] + "/segments/new")
    page.select_option("select[name='c0.column']", "score_total_order_count")
    _settled(page)
    page.select_option("select[name='c0.op']", ">=")
    _settled(page)
    value = page.locator("input[name='c0.value']")
    value.fill("1")
    expect(value).to_have_value("1")
    first = _expect_count(page, server, [{"column": "score_total_order_count", "op": ">=", "value": 1}])
    value.fill("3")
    expect(value).to_have_value("3")
    regulars = [{"column": "score_total_order_count", "op": ">=", "value": 3}]
    second = _expect_count(page, server, regulars)
    assert 0 < second < first
    expect(page.locator("#step-c0")).to_contain_text(str(second))
    page.click("#add-condition")
    _settled(page)
    page.select_option("select[name='c1.kind']", "segment")
    _settled(page)
    page.select_option("select[name='c1.segment']", "vip")
    expect(page.locator("#step-c1")).to_be_visible()
    expect(page.locator("#step-c1")).to_contain_text("left")
    third = _expect_count(page, server, regulars + [{"segment": "vip"}])
    assert third <= second
    page.fill("input[name=name]", "browser_regulars")
    page.screenshot(path=shots / "segment_builder.png", full_page=True)
    page.click("#save-segment")
    page.wait_for_url(re.compile(r".*/segments/browser_regulars$"))
    expect(page.locator("h1")).to_contain_text("browser_regulars")


def test_create_a_file_sync_from_the_segment_and_run_it(session, server, shots):
    page, _ = session
    owner = server["app"].state.owner
    if not any(s["name"] == "browser_regulars" for s in owner.read(lambda ws: ws.segments())):
        owner.run_job("segment_save", {"definition": {"name": "browser_regulars", "conditions": [
            {"column": "score_total_order_count", "op": ">=", "value": 3}]}})
    page.goto(server["url"] + "/syncs/new?segment=browser_regulars")
    page.fill("input[name=name]", "regulars_file")
    page.select_option("select[name=mode]", "mirror")
    page.click("#create-sync")
    page.wait_for_url(re.compile(r".*/syncs/regulars_file$"))
    page.click("#dry-run")
    expect(page.locator("#plan-counts")).to_contain_text("new")
    page.click("#run-sync")
    page.wait_for_url(re.compile(r".*/runs/jobs/\d+$"))
    expect(page.locator("#job-progress")).to_have_attribute("data-state", "succeeded", timeout=SLOW)
    page.goto(server["url"] + "/syncs/regulars_file")
    expect(page.locator("table .badge").first).to_have_text("succeeded")
    folder = owner.read(lambda ws: Path(next(c for c in ws.config.connections if c.name == "demo_files").path))
    assert list((folder / "audiences").glob("regulars_file*.csv"))
    page.screenshot(path=shots / "sync.png", full_page=True)


def test_an_admin_creates_a_database_connection_and_a_sync_to_it(browser, server, shots):
    """The type chosen redraws the connection form; the password is never shown again; the sync
    form shows the table of a database destination and hides the file settings."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server["url"] + "/login?next=/connections")
    page.fill("input[name=email]", EMAILS["admin"])
    page.fill("input[name=password]", PASSWORDS["admin"])
    page.click("button.primary")
    page.click("#new-connection")
    with page.expect_navigation():
        page.select_option("select[name=type]", "postgresql")
    expect(page.locator("input[name=port]")).to_have_value("5432")
    page.fill("input[name=name]", "browser_dwh")
    page.fill("input[name=host]", "dwh.example.com")
    page.fill("input[name=database]", "marketing")
    page.fill("input[name=user]", "tessera")
    page.fill("input[name=password]", "browser-secret")
    page.screenshot(path=shots / "connection_form.png", full_page=True)
    page.click("#save-connection")
    page.wait_for_url(re.compile(r".*/connections\?saved=browser_dwh$"))
    page.click("a[href='/connections/browser_dwh/edit'] >> nth=0")
    expect(page.locator("input[name=password]")).to_have_value("")
    assert "browser-secret" not in page.content()
    page.goto(server["url"] + "/syncs/new")
    page.select_option("select[name=connection]", "browser_dwh")
    expect(page.locator("input[name=table]")).to_be_visible()
    expect(page.locator("input[name=folder]")).to_be_hidden()
    page.fill("input[name=name]", "vip_to_dwh")
    page.fill("input[name=table]", "vip_customers")
    page.select_option("select[name=segment]", "vip")
    page.click("#create-sync")
    page.wait_for_url(re.compile(r".*/syncs/vip_to_dwh$"))
    expect(page.locator("dl.kv")).to_contain_text("vip_customers")
    page.screenshot(path=shots / "database_sync.png", full_page=True)
    context.close()


def test_build_save_and_reopen_a_dashboard(session, server, shots):
    """A default dashboard drawn by the vendored Vega-Lite, then a chart crossing two dimensions
    (orders by channel and the customer's age band) built, previewed, saved and reopened."""
    page, _ = session
    page.goto(server["url"] + "/dashboards/sales")
    page.wait_for_selector("#q-revenue_by_month .chart svg .mark-line path", timeout=SLOW)
    assert page.locator(".chart svg").count() >= 4
    page.screenshot(path=shots / "dashboard_sales.png", full_page=True)
    # the cohort triangle comes after the page (a request of its own) and is drawn as it arrives
    page.goto(server["url"] + "/dashboards/retention")
    page.wait_for_selector("#q-cohort_retention .chart svg .mark-rect path", timeout=SLOW)
    page.screenshot(path=shots / "dashboard_retention.png", full_page=True)
    page.goto(server["url"] + "/dashboards/new")
    page.fill("input[name=dashboard_title]", "Purchases by channel and age")
    page.fill("input[name=dashboard]", "channel_age")
    page.fill("input[name=title]", "Purchases by channel and age")
    with page.expect_response(lambda r: r.url.endswith("/dashboards/form")):
        page.select_option("select[name=dataset]", "orders")
    _settled(page)
    page.select_option("select[name=chart]", "stacked_bar")
    _settled(page)
    page.select_option("select[name='d0.column']", "channel")
    _settled(page)
    page.select_option("select[name='d1.column']", "contacts.birth_date")
    _settled(page)
    with page.expect_response(lambda r: r.url.endswith("/dashboards/preview")):
        page.select_option("select[name='d1.band']", "age")
    page.wait_for_selector("#preview .chart svg .mark-rect path", timeout=SLOW)
    page.screenshot(path=shots / "dashboard_builder.png", full_page=True)
    page.click("#save-chart")
    page.wait_for_url(server["url"] + "/dashboards/channel_age")
    page.reload()
    page.wait_for_selector("#q-purchases_by_channel_and_age .chart svg .mark-rect path", timeout=SLOW)
    expect(page.locator("#q-purchases_by_channel_and_age")).to_contain_text("25-34")
    page.screenshot(path=shots / "dashboard_saved.png", full_page=True)
    saved = server["app"].state.owner.read(lambda ws: ws.analytics().definition("channel_age"))
    assert saved["questions"][0]["dimensions"] == [{"column": "channel"},
                                                   {"column": "contacts.birth_date", "band": "age"}]


def test_no_request_leaves_the_server(session, server, shots):
    page, recorded = session
    for path in ("/", "/customers", "/segments/vip", "/segments/new", "/syncs", "/sources/crm_contacts",
                 "/datasets/contacts", "/runs", "/dashboards", "/dashboards/retention", "/schedules", "/syncs/new",
                 "/connections"):
        page.goto(server["url"] + path)
        page.wait_for_load_state("networkidle")
    customer = server["app"].state.owner.read(lambda ws: ws.adapter.to_arrow(
        ws.table("contacts").filter(ws.table("contacts").score_total_order_count >= 2).select("tessera_id").limit(1))
        .to_pylist()[0]["tessera_id"])
    page.goto(f"{server['url']}/customers/{customer}")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#chart-spend svg")).to_be_visible()
    page.screenshot(path=shots / "network.png", full_page=True)
    own = urlsplit(server["url"]).netloc
    outside = [u for u in recorded.requests if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != own]
    assert len(recorded.requests) > 20
    assert not outside, f"requests that left the server: {outside}"
    blocked = [m for m in recorded.console if "Content Security Policy" in m or "Refused to" in m]
    assert not blocked, f"the Content-Security-Policy blocked something: {blocked}"
