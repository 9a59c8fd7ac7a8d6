"""Helpers of the sync tests (imported by their conftest and test modules): the contacts file,
the configuration, a webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tessera.workspace import Workspace

CONTACTS = (
    "id,email,first_name,city,email_optin,amount\n"
    "1,ann@example.com,Ann,Paris,true,10.5\n"
    "2,bob@example.com,Bob,Lyon,false,20\n"
    "3,cyd@example.com,Cyd,Paris,true,\n"
    "4,dan@example.com,Dan,Nice,yes,7\n"
)

SECRET = "whsec-test-1234"


def config(base: Path, syncs: list[dict], connections: list[dict] | None = None) -> dict:
    return {
        "connections": [{"name": "files", "type": "local", "path": str(base / "data")},
                        *(connections or [])],
        "sources": [{"name": "crm", "connection": "files", "pattern": "contacts.csv", "record_keys": ["id"],
                     "import_strategy": "full"}],
        "datasets": [{
            "name": "contacts",
            "columns": [{"name": "email_optin", "type": "boolean", "semantic": "EmailOptIn"},
                        {"name": "amount", "type": "float"}],
            "mappings": [{"source": "crm", "columns": {"crm_id": "id", "email": "email", "first_name": "first_name",
                                                        "city": "city", "email_optin": "email_optin",
                                                        "amount": "amount"}}],
        }],
        "syncs": syncs,
    }



def reconfigure(ws: Workspace, tmp_path: Path, syncs: list[dict], connections: list[dict] | None = None) -> None:
    ws.apply(config(tmp_path, syncs, connections))


# --------------------------------------------------------------------------- webhook receiver


class Receiver:
    """A webhook receiver. ``answers``: a list of (status, body dict or None, headers) answered in
    turn before the default 200; ``record_error(record) -> str | None`` refuses single records."""

    def __init__(self, secret: str = SECRET, port: int = 0):
        self.secret = secret
        self.port = port
        self.requests: list[dict] = []  # {"headers", "body", "json", "signature_ok"}
        self.answers: list[tuple[int, dict | None, dict]] = []
        self.record_error = None
        self.server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                signature_ok = hmac.compare_digest(expected, self.headers.get("X-Tessera-Signature", ""))
                payload = json.loads(body)
                request = {"headers": dict(self.headers), "body": body, "json": payload,
                           "signature_ok": signature_ok, "status": None, "refused": set()}
                with receiver._lock:
                    receiver.requests.append(request)
                    answer = receiver.answers.pop(0) if receiver.answers else None
                if not signature_ok:
                    status, out, headers = 401, {"error": "bad signature"}, {}
                elif answer is not None:
                    status, out, headers = answer
                else:
                    status, headers = 200, {}
                    errors = []
                    if receiver.record_error is not None:
                        for i, record in enumerate(payload["batch"]):
                            message = receiver.record_error(record)
                            if message:
                                errors.append({"index": i, "error": message})
                    out = {"errors": errors} if errors else {"ok": True}
                    request["refused"] = {e["index"] for e in errors}
                request["status"] = status
                data = json.dumps(out).encode() if out is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted(self) -> list[dict]:
        """The records the receiver accepted (2xx, not refused one by one), in order."""
        return [r for req in self.requests if 200 <= (req["status"] or 0) < 300
                for i, r in enumerate(req["json"]["batch"]) if i not in req["refused"]]

    def clear(self) -> None:
        self.requests.clear()


def webhook_connection(url: str, **extra) -> dict:
    return {"name": "hook", "type": "webhook", "url": url, "secret": SECRET, "max_retries": 1, "timeout": 5,
            **extra}
