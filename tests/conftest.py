"""Shared test settings and fixtures.

Tests marked ``spark`` run only with ``--spark`` or ``TESSERA_TEST_SPARK=1``, tests marked
``postgres`` only with ``--postgres`` or ``TESSERA_TEST_POSTGRES=1``, tests marked ``mariadb``
only with ``--mariadb`` or ``TESSERA_TEST_MARIADB=1``; ``scripts/test.sh`` turns them all on. A test that uses the ``spark_session`` or ``postgres_url`` fixture counts as marked.
The servers themselves are started by ``tests/servers.py``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import MARIADB_MISSING, POSTGRES_MISSING, MariaDBServer, PostgresServer, ServerUnavailable  # noqa: E402


pytest_plugins = ["remote_fixtures"]  # FTP, FTPS and SFTP servers (tests/remote_fixtures.py)

_FEATURES = {
    # marker: (command line option, environment variable, fixtures that imply the marker)
    "spark": ("--spark", "TESSERA_TEST_SPARK", {"spark_session"}),
    "postgres": ("--postgres", "TESSERA_TEST_POSTGRES",
                 {"postgres_server", "postgres_url", "postgres_db_url", "postgres_app_db"}),
    "mariadb": ("--mariadb", "TESSERA_TEST_MARIADB", {"mariadb_server", "mariadb_db"}),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tessera")
    group.addoption("--spark", action="store_true", default=False, help="run the tests marked spark")
    group.addoption("--postgres", action="store_true", default=False, help="run the tests marked postgres")
    group.addoption("--mariadb", action="store_true", default=False, help="run the tests marked mariadb")


def _enabled(config: pytest.Config, marker: str) -> bool:
    option, env, _ = _FEATURES[marker]
    return bool(config.getoption(option)) or os.environ.get(env, "").strip().lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for marker, (option, env, fixtures) in _FEATURES.items():
        enabled = _enabled(config, marker)
        skip = pytest.mark.skip(reason=f"{marker} tests are off: use {option} or {env}=1 (scripts/test.sh does)")
        for item in items:
            uses = bool(fixtures & set(getattr(item, "fixturenames", ())))
            if uses and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))
            if not enabled and (uses or item.get_closest_marker(marker) is not None):
                item.add_marker(skip)


# -- Spark ------------------------------------------------------------------------------------

#: Spark settings of every Spark JVM the tests start (the session of the run and the CLI's, in
#: subprocesses): through a ``spark-defaults.conf`` of their own (``SPARK_CONF_DIR``). Tests read
#: a few rows, where a Spark job costs its fixed overhead many times over: the JIT compiler's
#: first tier only and one GC thread (the optimizing tier and a parallel GC compete with the
#: test for 2 cores and pay off only on long work), expressions interpreted instead of compiled
#: to Java at every query, no adaptive re-planning between stages, and one partition after a
#: shuffle (what adaptive execution made of a few rows anyway). Halves the JVM's CPU per run.
SPARK_TEST_SETTINGS = {
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
}


def pytest_configure(config: pytest.Config) -> None:
    folder = Path(tempfile.mkdtemp(prefix="tessera-test-spark-conf-"))
    (folder / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in SPARK_TEST_SETTINGS.items()))
    os.environ["SPARK_CONF_DIR"] = str(folder)
    os.environ["TESSERA_SPARK_PARTITIONS"] = SPARK_TEST_SETTINGS["spark.sql.shuffle.partitions"]
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.fixture(scope="session")
def spark_session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One local Spark session for the whole test run (starting one takes 10-20 s), with
    :data:`SPARK_TEST_SETTINGS`."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        message = "Java is not installed: run scripts/test.sh (it installs it)"
        if _enabled(request.config, "spark"):
            pytest.fail(message)
        pytest.skip(message)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    base = tmp_path_factory.mktemp("spark")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("tessera-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(base / "warehouse"))
        .config("spark.local.dir", str(base / "local"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole test run."""
    try:
        server: PostgresServer | None = PostgresServer()
    except ServerUnavailable:
        server = None
    if server is None:
        if _enabled(request.config, "postgres"):
            pytest.fail(POSTGRES_MISSING, pytrace=False)
        pytest.skip(POSTGRES_MISSING)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of the database ``tessera_test`` on the session's PostgreSQL server (shared by all tests)."""
    return postgres_server.url()


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_app_db(postgres_server: PostgresServer) -> Iterator[dict]:
    """A fresh database owned by a password role, as a ``postgresql`` connection's settings."""
    name = f"a_{uuid.uuid4().hex[:12]}"
    user = f"u_{uuid.uuid4().hex[:8]}"
    postgres_server.create_role(user, "app-secret", superuser=True)
    postgres_server.create_database(name)
    yield {"type": "postgresql", "host": "127.0.0.1", "port": postgres_server.port, "database": name,
           "user": user, "password": "app-secret"}
    postgres_server.drop_database(name)


# -- MariaDB ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mariadb_server(request: pytest.FixtureRequest) -> Iterator[MariaDBServer]:
    """A throwaway MariaDB server for the whole test run."""
    try:
        server = MariaDBServer()
    except ServerUnavailable:
        if _enabled(request.config, "mariadb"):
            pytest.fail(MARIADB_MISSING, pytrace=False)
        pytest.skip(MARIADB_MISSING)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mariadb_db(mariadb_server: MariaDBServer) -> Iterator[dict]:
    """A fresh database on the session's MariaDB server, as a ``mariadb`` connection's settings."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    mariadb_server.create_database(name)
    yield {"type": "mariadb", "host": "127.0.0.1", "port": mariadb_server.port, "database": name,
           "user": mariadb_server.user, "password": mariadb_server.password}
    mariadb_server.drop_database(name)


# -- Engines ----------------------------------------------------------------------------------


@pytest.fixture(
    params=[
        "duckdb",
        pytest.param("spark", marks=pytest.mark.spark),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def engine(request: pytest.FixtureRequest) -> str:
    """The warehouse engine a functional test runs on: DuckDB always, Spark with --spark,
    PostgreSQL with --postgres (the URL of a fresh database)."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    if request.param == "postgres":
        return request.getfixturevalue("postgres_db_url")
    return request.param


# -- Workspaces -------------------------------------------------------------------------------


@pytest.fixture
def make_workspace(request: pytest.FixtureRequest, tmp_path: Path):
    """``make_workspace(config, files=None, *, warehouse=None, run=False, path=None)``: a workspace
    with ``config`` applied (YAML text, dedented and written to ``tmp_path / "workspace.yaml"``, so
    that ``path: data`` is ``tmp_path / "data"``; or a dict; None applies nothing).

    ``files`` ({name: text or bytes}) are written into ``tmp_path / "data"`` first, the folder the
    test configurations read. The warehouse is ``warehouse`` if given, else the ``engine`` fixture's
    when the test uses it (one test body on every engine), else DuckDB. ``run`` runs the pipeline
    once. Each call makes a new workspace (``tmp_path / "ws"``, then ``ws1``...) unless ``path``
    is given; every workspace made is closed after the test."""
    # imported here: importing every module at collection would change what tests of the public API see
    from tessera.workspace import Workspace

    made: list[Workspace] = []

    def make(config: str | dict | None = None, files: dict[str, str | bytes] | None = None, *,
             warehouse: str | None = None, run: bool = False, path: Path | None = None) -> Workspace:
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        for name, content in (files or {}).items():
            if isinstance(content, bytes):
                (data / name).write_bytes(content)
            else:
                (data / name).write_text(content)
        if warehouse is None and "engine" in request.fixturenames:
            warehouse = request.getfixturevalue("engine")
        ws = Workspace.init(path or tmp_path / (f"ws{len(made)}" if made else "ws"), warehouse=warehouse)
        made.append(ws)
        if isinstance(config, str):  # relative paths are read from tmp_path, the YAML file's folder
            (tmp_path / "workspace.yaml").write_text(textwrap.dedent(config))
            ws.apply(tmp_path / "workspace.yaml")
        elif config is not None:
            ws.apply(config)
        if run:
            ws.run()
        return ws

    yield make
    for ws in made:
        ws.close()


@pytest.fixture
def engine_adapter(engine: str, tmp_path: Path):
    """An adapter on the test's engine (the ``engine`` fixture), without a workspace; closed afterwards."""
    from tessera.engine.connect import open_adapter

    (tmp_path / "warehouse").mkdir()
    adapter = open_adapter(engine, tmp_path / "warehouse")
    yield adapter
    adapter.close()
