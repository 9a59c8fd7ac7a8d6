"""A custom dashboard built in Chromium (Playwright, Debian's browser): sign in, open a default
dashboard and see its charts drawn by the vendored Vega-Lite under the page's CSP, build a chart
that crosses two dimensions, save it, reopen the dashboard; each step saves a screenshot."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from web_helpers import EMAILS, PASSWORDS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
REQUIRED = os.environ.get("TESSERA_TEST_BROWSER") == "1"  # scripts/test.sh: a missing browser fails

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - reported by the skip below
    sync_playwright = None

if not CHROMIUM.exists() or sync_playwright is None:
    why = ("Debian's chromium is not installed (apt-get install -y chromium)" if not CHROMIUM.exists()
           else "playwright is not installed (pip install playwright==1.65.2)")
    if REQUIRED:
        pytest.fail(f"TESSERA_TEST_BROWSER=1 but {why}", pytrace=False)
    pytest.skip(f"browser tests skipped: {why}; scripts/test.sh installs it", allow_module_level=True)


@pytest.fixture
def served(copy_demo):
    import uvicorn

    from tessera.api.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(copy_demo(), collect=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="asyncio",
                                           http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_build_save_and_reopen_a_dashboard_in_chromium(served, tmp_path):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(served) else None)
        page.goto(f"{served}/login?next=/dashboards/sales")
        page.fill("input[name=email]", EMAILS["editor"])
        page.fill("input[name=password]", PASSWORDS["editor"])
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{served}/dashboards/sales")
        page.wait_for_selector("#q-revenue_by_month .chart svg .mark-line path", timeout=30_000)
        assert page.locator(".chart svg").count() >= 4  # every chart drawn (CSP-safe Vega)
        page.screenshot(path=str(tmp_path / "sales.png"), full_page=True)
        page.goto(f"{served}/dashboards/new")
        page.fill("input[name=dashboard_title]", "Purchases by channel and age")
        page.fill("input[name=dashboard]", "channel_age")
        page.fill("input[name=title]", "Purchases by channel and age")
        with page.expect_response(lambda r: r.url.endswith("/dashboards/form")):
            page.select_option("select[name=dataset]", "orders")
        page.select_option("select[name=chart]", "stacked_bar")
        page.select_option("select[name='d0.column']", "channel")
        page.select_option("select[name='d1.column']", "contacts.birth_date")
        with page.expect_response(lambda r: r.url.endswith("/dashboards/preview")):
            page.select_option("select[name='d1.band']", "age")
        page.wait_for_selector("#preview .chart svg .mark-rect path", timeout=30_000)
        page.screenshot(path=str(tmp_path / "builder.png"), full_page=True)
        page.click("#save-chart")
        page.wait_for_url(f"{served}/dashboards/channel_age")
        page.reload()
        page.wait_for_selector("#q-purchases_by_channel_and_age .chart svg .mark-rect path", timeout=30_000)
        assert "25-34" in page.inner_text("#q-purchases_by_channel_and_age")
        page.screenshot(path=str(tmp_path / "saved.png"), full_page=True)
        browser.close()
    for name in ("sales.png", "builder.png", "saved.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not outside, f"requests that left the server: {outside}"
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
