"""An erased customer leaves a PostgreSQL table at the next run of a mirror sync (--postgres)."""

from __future__ import annotations

from privacy_helpers import customer

from tessera.syncs import run_syncs

MIRROR = {"name": "crm_table", "dataset": "contacts", "connection": "db", "key": "customer_id", "mode": "mirror",
          "table": "crm_contacts", "fields": {"id": "customer_id", "mail": "email"}}


def _rows(settings: dict) -> dict:
    import psycopg

    with psycopg.connect(host=settings["host"], port=settings["port"], dbname=settings["database"],
                         user=settings["user"], password=settings["password"], autocommit=True) as con:
        return dict(con.execute("SELECT id, mail FROM crm_contacts ORDER BY id").fetchall())


def test_a_mirror_sync_deletes_the_erased_customer_in_postgresql(shop, postgres_app_db):
    ws = shop([MIRROR], [{"name": "db", **postgres_app_db}])
    [first] = run_syncs(ws)
    assert first.inserted == 3 and _rows(postgres_app_db)["C1"] == "ana@example.com"
    receipt = ws.erase(customer(ws, "C1")["tessera_id"])
    assert {"where": "sync crm_table (a delete is sent at its next run)", "rows": 1} in receipt["removed"]
    [after] = run_syncs(ws)
    assert (after.deleted, after.inserted, after.updated) == (1, 0, 0)
    assert _rows(postgres_app_db) == {"C2": "bo@example.com", "C3": "cy@example.com"}
    [again] = run_syncs(ws)
    assert again.deleted == 0 and sorted(_rows(postgres_app_db)) == ["C2", "C3"]
