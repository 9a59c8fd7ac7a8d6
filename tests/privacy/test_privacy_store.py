"""The metadata store's privacy requests: the migration up and down, a request and its receipt."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from tessera.store import MetadataStore


def test_the_privacy_migration_up_and_down(tmp_path):
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.sqlite'}")
    try:
        store.upgrade()
        assert store.current_revision() == "0006_privacy"
        request = store.add_privacy_request("erase", "customer T1", "dpo@example.com")
        assert store.list_privacy_requests()[0]["status"] == "running"
        store.finish_privacy_request(request, "done", {"rows_removed": 3})
        [row] = store.list_privacy_requests()
        assert (row["kind"], row["subject"], row["requested_by"], row["status"]) == \
            ("erase", "customer T1", "dpo@example.com", "done")
        assert row["receipt"] == {"rows_removed": 3} and row["finished_at"] is not None
        cfg = store._alembic_config()
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005_users")
        assert "privacy_requests" not in set(inspect(store.engine).get_table_names())
        assert "audit_log" in set(inspect(store.engine).get_table_names())
    finally:
        store.close()
