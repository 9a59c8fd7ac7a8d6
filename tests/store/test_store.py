"""The metadata store on SQLite and on PostgreSQL (same tests, ``postgres`` ones need --postgres)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tessera.store import MetadataStore
from tessera.store.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta' / 'tessera.db'}"
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def store(store_url: str):
    with MetadataStore.create(store_url) as s:
        yield s


def _parse(ts: str) -> datetime:
    value = datetime.fromisoformat(ts)
    assert value.utcoffset() is not None and value.utcoffset().total_seconds() == 0
    return value


# -- creation and migrations --------------------------------------------------------------------


def test_constructor_does_not_migrate_and_creates_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "tessera.db"
    store = MetadataStore(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        assert store.current_revision() is None
        assert not store.is_up_to_date()
        store.upgrade()
        assert store.current_revision() == MetadataStore.head_revision() == "0006_privacy"
        assert store.is_up_to_date()
        store.upgrade()  # a second upgrade does nothing
    finally:
        store.close()


def test_plain_path_and_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "tessera.db"
    with MetadataStore.create(path) as store:
        store.start_run("import", None, 1)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_upgrade_on_existing_tables(store: MetadataStore, store_url: str) -> None:
    with MetadataStore(store_url) as again:
        again.upgrade()
        assert again.is_up_to_date()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrations_match_models(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'tessera.db'}"
    else:
        url = request.getfixturevalue("postgres_db_url")
    MetadataStore.create(url).close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migrations_usable_from_an_installed_package() -> None:
    """The migration scripts are package data, found next to the module and not in the work tree."""
    from tessera.store import store as store_module

    versions = store_module.MIGRATIONS_DIR / "versions"
    assert (store_module.MIGRATIONS_DIR / "env.py").is_file()
    assert (store_module.MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (versions / "0001_initial.py").is_file()
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    for pattern in ("store/migrations/*.py", "store/migrations/script.py.mako", "store/migrations/versions/*.py"):
        assert f'"{pattern}"' in pyproject


# -- configuration ------------------------------------------------------------------------------


def test_save_and_load_config(store: MetadataStore) -> None:
    objects = [
        ("dataset", "customers", {"from": ["crm"], "keys": ["email"]}),
        ("source", "crm", {"connection": "pg", "table": "contacts"}),
        ("connection", "pg", {"url": "postgresql://crm"}),
        ("source", "shop", {"path": "orders/*.csv"}),
        ("dataset", "orders", {"from": ["shop"]}),
    ]
    v1 = store.save_config(objects, origin="tessera.yaml")
    assert store.load_config() == [
        ("connection", "pg", {"url": "postgresql://crm"}),
        ("source", "crm", {"connection": "pg", "table": "contacts"}),
        ("source", "shop", {"path": "orders/*.csv"}),
        ("dataset", "customers", {"from": ["crm"], "keys": ["email"]}),
        ("dataset", "orders", {"from": ["shop"]}),
    ]
    before = {(o["kind"], o["name"]): o for o in store.config_objects()}

    # replace: one object changed, one removed, one added, declaration order changed
    v2 = store.save_config(
        [
            ("connection", "pg", {"url": "postgresql://crm"}),
            ("source", "shop", {"path": "orders/*.csv", "delimiter": ";"}),
            ("source", "crm", {"connection": "pg", "table": "contacts"}),
            ("dataset", "everyone", {"from": ["crm", "shop"]}),
        ],
        origin="api",
    )
    assert v2 > v1
    assert store.load_config() == [
        ("connection", "pg", {"url": "postgresql://crm"}),
        ("source", "shop", {"path": "orders/*.csv", "delimiter": ";"}),
        ("source", "crm", {"connection": "pg", "table": "contacts"}),
        ("dataset", "everyone", {"from": ["crm", "shop"]}),
    ]
    after = {(o["kind"], o["name"]): o for o in store.config_objects()}
    assert after[("source", "crm")]["updated_at"] == before[("source", "crm")]["updated_at"]
    assert after[("source", "shop")]["updated_at"] > before[("source", "shop")]["updated_at"]

    history = store.list_config_versions()
    assert [h["id"] for h in history] == [v2, v1]
    assert history[0]["origin"] == "api"
    assert history[1]["spec"][0] == {"kind": "dataset", "name": "customers", "spec": {"from": ["crm"], "keys": ["email"]}}
    _parse(history[0]["created_at"])


def test_save_config_rejects_bad_input_and_keeps_current(store: MetadataStore) -> None:
    store.save_config([("source", "a", {"x": 1})], origin="first")
    with pytest.raises(ValueError, match="declared twice"):
        store.save_config([("source", "b", {}), ("source", "b", {})], origin="dup")
    with pytest.raises(ValueError, match="JSON"):
        store.save_config([("source", "b", {"when": object()})], origin="bad")
    assert store.load_config() == [("source", "a", {"x": 1})]
    assert len(store.list_config_versions()) == 1
    store.save_config([], origin="empty")
    assert store.load_config() == []


# -- runs ---------------------------------------------------------------------------------------


def test_runs_and_steps(store: MetadataStore) -> None:
    run_id = store.start_run("import", "crm", pid=4321)
    run = store.get_run(run_id)
    assert run["status"] == "running" and run["target"] == "crm" and run["pid"] == 4321
    assert run["finished_at"] is None and run["steps"] == []

    store.add_step(run_id, "read", 2.5, {"rows": 10})
    store.add_step(run_id, "check", 0.25, {"rejected": 1}, status="failed")
    store.finish_run(run_id, "failed", {"rows": 10, "rejected": 1}, error="1 row rejected")

    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert run["counts"] == {"rows": 10, "rejected": 1}
    assert run["error"] == "1 row rejected"
    assert [(s["step"], s["seconds"], s["counts"], s["status"]) for s in run["steps"]] == [
        ("read", 2.5, {"rows": 10}, "succeeded"),
        ("check", 0.25, {"rejected": 1}, "failed"),
    ]
    assert _parse(run["finished_at"]) >= _parse(run["started_at"])
    assert _parse(run["steps"][0]["started_at"]) < _parse(run["steps"][1]["started_at"])

    second = store.start_run("build", None, pid=1)
    store.finish_run(second, "succeeded")
    assert store.get_run(second)["counts"] is None
    third = store.start_run("build", "customers", pid=1)

    runs = store.list_runs()
    assert [r["id"] for r in runs] == [third, second, run_id]
    assert runs[2]["steps"][0]["step"] == "read"
    assert [r["id"] for r in store.list_runs(limit=2)] == [third, second]
    assert [r["id"] for r in store.list_runs(kind="build", status="running")] == [third]

    with pytest.raises(KeyError):
        store.get_run(999_999)
    with pytest.raises(KeyError):
        store.finish_run(999_999, "succeeded")
    with pytest.raises(ValueError):
        store.finish_run(third, "running")


def test_mark_stale_runs(store: MetadataStore) -> None:
    alive_run = store.start_run("import", "a", pid=100)
    dead_run = store.start_run("import", "b", pid=200)
    done_run = store.start_run("import", "c", pid=200)
    store.finish_run(done_run, "succeeded")

    marked = store.mark_stale_runs(lambda pid: pid == 100)
    assert marked == [dead_run]
    assert store.get_run(dead_run)["status"] == "interrupted"
    assert "200" in store.get_run(dead_run)["error"]
    assert store.get_run(dead_run)["finished_at"] is not None
    assert store.get_run(alive_run)["status"] == "running"
    assert store.get_run(done_run)["status"] == "succeeded"
    assert store.mark_stale_runs(lambda pid: pid == 100) == []


# -- imported files -----------------------------------------------------------------------------


def test_imported_files(store: MetadataStore, tmp_path: Path) -> None:
    assert store.find_imported_file("shop", "ab" * 32) is None
    batch = store.next_batch_id()
    first = store.add_imported_file(
        source="shop", path=tmp_path / "in" / "orders.csv", name="orders.csv", sha256="ab" * 32,
        size=1234, batch_id=batch, rows=10, rejected=1, archive_path=tmp_path / "archive" / "orders.csv",
    )
    other = store.add_imported_file(
        source="crm", path="/in/contacts.csv", name="contacts.csv", sha256="ab" * 32, size=5_000_000_000,
        batch_id=batch, status="failed",
    )
    found = store.find_imported_file("shop", "ab" * 32)
    assert found is not None
    assert found["id"] == first
    assert found["path"] == str(tmp_path / "in" / "orders.csv")
    assert found["archive_path"] == str(tmp_path / "archive" / "orders.csv")
    assert (found["rows"], found["rejected"], found["status"], found["batch_id"]) == (10, 1, "imported", batch)
    _parse(found["imported_at"])
    assert store.find_imported_file("crm", "ab" * 32)["size"] == 5_000_000_000
    assert store.find_imported_file("shop", "cd" * 32) is None

    store.update_imported_file(other, status="imported", rows=3, rejected=0)
    assert store.find_imported_file("crm", "ab" * 32)["rows"] == 3

    assert [f["id"] for f in store.list_imported_files()] == [first, other]
    assert [f["id"] for f in store.list_imported_files("crm")] == [other]
    assert store.list_imported_files("nothing") == []

    with pytest.raises(TypeError, match="unknown"):
        store.add_imported_file(source="x", path="p", name="n", sha256="s", size=1, batch_id=1, colour="red")
    with pytest.raises(TypeError, match="missing"):
        store.add_imported_file(source="x", path="p")


def test_next_batch_id_is_monotonic(store: MetadataStore) -> None:
    ids = [store.next_batch_id() for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    # a batch recorded with a larger id (e.g. restored from elsewhere) is never handed out again
    store.add_imported_file(source="s", path="p", name="n", sha256="0" * 64, size=1, batch_id=ids[-1] + 10)
    assert store.next_batch_id() == ids[-1] + 11


def test_next_batch_id_concurrent(store: MetadataStore, store_url: str) -> None:
    results: list[int] = []
    errors: list[BaseException] = []
    stores = [MetadataStore(store_url) for _ in range(4)]

    def take(s: MetadataStore) -> None:
        try:
            for _ in range(10):
                results.append(s.next_batch_id())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    assert sorted(results) == list(range(1, 41))


def test_two_processes_share_a_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tessera.db'}"
    MetadataStore.create(url).close()
    code = (
        "import sys\n"
        "from tessera.store import MetadataStore\n"
        "s = MetadataStore(sys.argv[1])\n"
        "for _ in range(15):\n"
        "    r = s.start_run('import', 'x', 1)\n"
        "    s.add_step(r, 'read', 0.1, {'rows': 1})\n"
        "    s.finish_run(r, 'succeeded')\n"
        "    s.next_batch_id()\n"
    )
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", code, url], env=env) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with MetadataStore(url) as store:
        assert len(store.list_runs(limit=100)) == 45
        assert store.next_batch_id() == 46


# -- source schemas -----------------------------------------------------------------------------


def test_source_schema_merge(store: MetadataStore) -> None:
    assert store.get_source_schema("shop") == []
    store.set_source_schema("shop", [("order_id", "BIGINT"), ("email", "VARCHAR")])
    merged = store.set_source_schema("shop", [("email", "BIGINT"), ("amount", "DOUBLE"), ("order_id", "BIGINT")])
    expected = [("order_id", "BIGINT"), ("email", "VARCHAR"), ("amount", "DOUBLE")]
    assert merged == expected
    assert store.get_source_schema("shop") == expected
    store.set_source_schema("shop", [("channel", "VARCHAR"), ("channel", "VARCHAR")])
    assert store.get_source_schema("shop")[-1] == ("channel", "VARCHAR")
    assert len(store.get_source_schema("shop")) == 4

    store.set_source_schema("crm", [("email", "VARCHAR")])
    assert store.get_source_schema("crm") == [("email", "VARCHAR")]
    store.delete_source_schema("shop")
    assert store.get_source_schema("shop") == []
    assert store.get_source_schema("crm") == [("email", "VARCHAR")]


# -- publications -------------------------------------------------------------------------------


def test_publications(store: MetadataStore) -> None:
    assert store.latest_publication("customers") is None
    assert store.list_publications("customers") == []
    run_id = store.start_run("build", "customers", pid=1)
    assert store.record_publication("customers", run_id, "customers__v1", 100) == 1
    assert store.record_publication("customers", None, "customers__v2", 120) == 2
    assert store.record_publication("orders", run_id, "orders__v1", 5) == 1

    latest = store.latest_publication("customers")
    assert latest is not None
    assert (latest["version"], latest["table_name"], latest["rows"], latest["run_id"]) == (2, "customers__v2", 120, None)
    _parse(latest["published_at"])
    assert [p["version"] for p in store.list_publications("customers")] == [2, 1]
    assert store.list_publications("customers")[1]["run_id"] == run_id
    assert [p["table_name"] for p in store.list_publications("orders")] == ["orders__v1"]


def test_record_publication_concurrent(store: MetadataStore, store_url: str) -> None:
    versions: list[int] = []
    stores = [MetadataStore(store_url) for _ in range(3)]

    def publish(s: MetadataStore) -> None:
        for _ in range(5):
            versions.append(s.record_publication("customers", None, "t", 1))

    threads = [threading.Thread(target=publish, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert sorted(versions) == list(range(1, 16))


def test_read_state_follows_runs_steps_and_publications(store: MetadataStore) -> None:
    """The token readers check their caches against, read on the driver's connection."""
    seen = [store.read_state()]
    run_id = store.start_run("build", "customers", pid=1)
    seen.append(store.read_state())
    store.add_step(run_id, "stage", 0.5, {"rows": 3})
    seen.append(store.read_state())
    store.record_publication("customers", run_id, "customers__v1", 3)
    seen.append(store.read_state())
    store.finish_run(run_id, "succeeded")
    seen.append(store.read_state())
    assert len(set(seen)) == len(seen), seen  # every change gives a new state
    assert store.read_state() == seen[-1]  # and nothing else does
    assert all(isinstance(v, int) for v in seen[-1]) and seen[-1][1] == seen[0][1] + 1
