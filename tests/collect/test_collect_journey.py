"""End to end with the stock Segment client and a real server: an anonymous visitor identifies,
a run stitches the journey, and a new event reaches the customer's profile while the server runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pyarrow.parquet as pq
from collect_helpers import ROOT, WRITE_KEY, wait_for

from tessera.workspace import Workspace

CRM = "customer_id,email,first_name,updated_at\nC1,ana@example.com,Ana,2024-11-01 09:00:00\n" \
      "C2,bo@example.com,Bo,2024-11-01 09:00:00\n"

CONFIG = f"""
connections:
  - {{name: files, type: local, path: data}}
  - {{name: web, type: http, write_key: {WRITE_KEY}}}
sources:
  - {{name: crm, connection: files, pattern: crm.csv, record_keys: [customer_id], types: {{updated_at: timestamp}}}}
  - name: web_identities
    connection: web
    record_keys: [message_id]
    filter: "user_id is not null or email is not null"
  - name: web_events
    connection: web
    record_keys: [message_id]
    relations:
      - {{column: user_id, to: contacts.customer_id}}
      - {{column: anonymous_id, to: contacts.anonymous_id}}
datasets:
  - name: contacts
    deduplicate: true
    identity_keys: [{{column: customer_id, limit: 1}}, {{column: email}}, {{column: anonymous_id}}]
    date_column: updated_at
    columns:
      - {{name: anonymous_id, merge: non_null_most_recent}}
      - {{name: first_name, merge: non_null_most_recent}}
      - {{name: updated_at, type: timestamp, merge: max}}
    mappings:
      - {{source: crm, columns: {{customer_id: customer_id, email: email, first_name: first_name, updated_at: updated_at}}}}
      - {{source: web_identities, columns: {{customer_id: user_id, anonymous_id: anonymous_id,
          first_name: traits.first_name, updated_at: timestamp}}}}
  - name: events
    mappings:
      - {{source: web_events, columns: {{message_id: message_id, type: type, event: event, at: timestamp,
          user_id: user_id, anonymous_id: anonymous_id}}}}
"""


def test_an_anonymous_journey_joins_the_customer_and_new_events_reach_the_profile(tmp_path, make_server):
    import segment.analytics as analytics

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crm.csv").write_text(CRM)
    (tmp_path / "workspace.yaml").write_text(textwrap.dedent(CONFIG))
    path = tmp_path / "ws"
    ws = Workspace.init(path)
    ws.apply(tmp_path / "workspace.yaml")
    ws.close()
    server = make_server(path)

    errors = []
    client = analytics.Client(WRITE_KEY, host=server.url, on_error=lambda e, batch: errors.append(e),
                              sync_mode=True)
    client.page(anonymous_id="dev-1", name="Home")
    client.track(anonymous_id="dev-1", event="Product Added", properties={"sku": "A1"})
    client.identify(user_id="C1", anonymous_id="dev-1", traits={"first_name": "Anna"})
    assert errors == []
    server.wait_loaded()

    # A run while the server collects: the server owns the workspace, the CLI sends the run there.
    run = subprocess.run([sys.executable, "-m", "tessera.cli.main", "run", "-w", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "sent to the server" in run.stdout and "succeeded" in run.stdout, run.stdout + run.stderr
    for name in ("contacts", "events"):  # read commands are answered by the server too
        out = subprocess.run([sys.executable, "-m", "tessera.cli.main", "-w", str(path), "export-data", name,
                              "-o", str(tmp_path / f"{name}.parquet")], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
    contacts = pq.read_table(tmp_path / "contacts.parquet").to_pylist()
    ana = next(c for c in contacts if c["customer_id"] == "C1")
    tid = ana["tessera_id"]
    assert ana["anonymous_id"] == "dev-1" and ana["first_name"] == "Anna"
    linked = pq.read_table(tmp_path / "events.parquet").to_pylist()
    assert {e["type"] for e in linked if e["tessera_contacts_id"] == tid} == {"page", "track", "identify"}

    profile = server.api("GET", f"/api/profiles/{tid}").json()
    assert len(profile["events"]) == 3 and profile["pending_events"] == 0

    # A new event of the same device, acknowledged now, shows on the profile before any run.
    client.track(anonymous_id="dev-1", event="Checkout Started")
    acknowledged = time.monotonic()
    assert errors == []

    def shown():
        got = server.api("GET", f"/api/profiles/{tid}").json()
        return got if any(e.get("event") == "Checkout Started" for e in got["events"]) else None

    profile = wait_for(shown, timeout=60, what="the new event on the profile")
    print(f"new event on the profile {time.monotonic() - acknowledged:.2f} s after its acknowledgement")
    assert profile["pending_events"] == 1
    assert profile["attributes"]["customer_id"] == "C1"
