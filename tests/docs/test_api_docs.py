"""Every /api route of the server is in the API's documentation (docs/api.md or docs/server.md)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute

from tessera.api.routes import ROUTERS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_api_route_is_documented():
    text = (DOCS / "api.md").read_text() + (DOCS / "server.md").read_text()
    # a documented route: "GET /api/x/{id}", or several methods before one path ("GET/POST /api/x")
    documented = set()
    for methods, path in re.findall(r"((?:GET|POST|PUT|DELETE)(?:/(?:GET|POST|PUT|DELETE))*) (/api/[\w/{}\-]*(?:\.(?:csv|png|svg))?)", text):
        for method in methods.split("/"):
            documented.add((method, re.sub(r"\{\w+\}", "{}", path.rstrip("/"))))
    missing = []
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path.startswith("/api"):
                for method in route.methods:
                    if (method, re.sub(r"\{\w+\}", "{}", route.path)) not in documented:
                        missing.append(f"{method} {route.path}")
    assert not missing, f"routes missing from docs/api.md or docs/server.md: {sorted(missing)}"
