"""Syncs to PostgreSQL and MariaDB tables on real servers (TESSERA_TEST_POSTGRES=1,
TESSERA_TEST_MARIADB=1): table creation, upserts, updates of changed rows only, mirror deletes,
insert mode, consent, records the database refuses, and a database down for one run."""

from __future__ import annotations

import datetime as dtm

import pytest

from sync_helpers import CONTACTS, reconfigure
from tessera.syncs import run_syncs

FIELDS = {"id": "crm_id", "mail": "email", "town": "city", "amount": "amount", "optin": "email_optin"}


def sync(**extra) -> dict:
    return {"name": "crm_table", "dataset": "contacts", "connection": "db", "key": "crm_id", "table": "crm_contacts",
            "fields": FIELDS, **extra}


# --------------------------------------------------------------------------- helpers per database


class PG:
    def __init__(self, settings: dict):
        self.settings = settings

    def conn(self, **extra) -> dict:
        return {"name": "db", **self.settings, **extra}

    def query(self, sql: str, args=None) -> list[tuple]:
        import psycopg

        s = self.settings
        with psycopg.connect(host=s["host"], port=s["port"], dbname=s["database"], user=s["user"],
                             password=s["password"], autocommit=True) as con:
            cur = con.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def rows(self, table: str = "crm_contacts") -> dict:
        return {r[0]: r[1:] for r in self.query(f"SELECT id, mail, town, amount, optin FROM {table} ORDER BY id")}

    def column_types(self, table: str = "crm_contacts") -> dict:
        return dict(self.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
                               [table]))


class Maria:
    def __init__(self, settings: dict):
        self.settings = settings

    def conn(self, **extra) -> dict:
        return {"name": "db", **self.settings, **extra}

    def query(self, sql: str, args=None) -> list[tuple]:
        import pymysql

        s = self.settings
        con = pymysql.connect(host=s["host"], port=s["port"], user=s["user"], password=s["password"],
                              database=s["database"], autocommit=True)
        try:
            with con.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            con.close()

    def rows(self, table: str = "crm_contacts") -> dict:
        out = {}
        for r in self.query(f"SELECT id, mail, town, amount, optin FROM {table} ORDER BY id"):
            out[r[0]] = (r[1], r[2], r[3], None if r[4] is None else bool(r[4]))
        return out

    def column_types(self, table: str = "crm_contacts") -> dict:
        return dict(self.query("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                               "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", [self.settings["database"], table]))


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])
def db(request):
    """The destination database: a fresh PostgreSQL database, then a fresh MariaDB database."""
    if request.param == "postgres":
        return PG(request.getfixturevalue("postgres_app_db"))
    return Maria(request.getfixturevalue("mariadb_db"))


# --------------------------------------------------------------------------- tests


def test_table_is_created_typed_and_upserted(db, make_ws, change):
    ws = make_ws([sync()], [db.conn()])
    [result] = run_syncs(ws)
    assert result.status == "succeeded", result.errors
    assert result.inserted == 4
    assert db.rows() == {
        "1": ("ann@example.com", "Paris", 10.5, True),
        "2": ("bob@example.com", "Lyon", 20.0, False),
        "3": ("cyd@example.com", "Paris", None, True),
        "4": ("dan@example.com", "Nice", 7.0, True),
    }
    types = db.column_types()
    if isinstance(db, PG):
        assert types == {"id": "text", "mail": "text", "town": "text", "amount": "double precision",
                         "optin": "boolean"}
        [(pk,)] = db.query("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                           "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'crm_contacts'::regclass AND i.indisprimary")
    else:
        assert types == {"id": "varchar", "mail": "mediumtext", "town": "mediumtext", "amount": "double",
                         "optin": "tinyint"}
        [(pk,)] = db.query("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE CONSTRAINT_NAME = "
                           "'PRIMARY' AND TABLE_SCHEMA = %s AND TABLE_NAME = 'crm_contacts'", [db.settings["database"]])
    assert pk == "id"
    # one changed row: one update, the others untouched
    db.query("UPDATE crm_contacts SET town = 'edited by hand' WHERE id = '4'")
    change(ws, CONTACTS.replace("Lyon,false,20", "Lyon,false,21.5"))
    [result] = run_syncs(ws)
    assert (result.inserted, result.updated, result.deleted, result.unchanged) == (0, 1, 0, 3)
    rows = db.rows()
    assert rows["2"] == ("bob@example.com", "Lyon", 21.5, False)
    assert rows["4"][1] == "edited by hand"  # not sent again: unchanged in the dataset


def test_mirror_deletes_and_insert_mode_never_updates(db, make_ws, change, tmp_path):
    syncs = [sync(mode="mirror"), sync(name="crm_insert", mode="insert", table="crm_insert")]
    ws = make_ws(syncs, [db.conn()])
    assert [r.inserted for r in run_syncs(ws)] == [4, 4]
    change(ws, CONTACTS.replace("3,cyd@example.com,Cyd,Paris,true,\n", "").replace("Ann,Paris", "Ann,Lille")
           + "5,eve@example.com,Eve,Paris,true,1\n")
    mirror, insert = run_syncs(ws)
    assert (mirror.inserted, mirror.updated, mirror.deleted) == (1, 1, 1)
    assert (insert.inserted, insert.updated, insert.deleted) == (1, 0, 0), insert.errors
    assert sorted(db.rows()) == ["1", "2", "4", "5"] and db.rows()["1"][1] == "Lille"
    inserted = db.rows("crm_insert")
    assert sorted(inserted) == ["1", "2", "3", "4", "5"] and inserted["1"][1] == "Paris"


def test_consent_filters_what_the_table_receives(db, make_ws, change):
    ws = make_ws([sync(mode="mirror")], [db.conn(requires_consent=["email"])])
    run_syncs(ws)
    assert sorted(db.rows()) == ["1", "3", "4"]
    change(ws, CONTACTS.replace("Ann,Paris,true", "Ann,Paris,false"))
    [result] = run_syncs(ws)
    assert result.deleted == 1 and sorted(db.rows()) == ["3", "4"]


def test_refused_records_fail_alone_and_are_retried(db, make_ws):
    # The table exists with a check the data breaks for one record only.
    if isinstance(db, PG):
        db.query("CREATE TABLE crm_contacts (id text PRIMARY KEY, mail text, town varchar(5), amount float8, "
                 "optin boolean, extra text DEFAULT 'kept')")
    else:
        db.query("CREATE TABLE crm_contacts (id VARCHAR(20) PRIMARY KEY, mail TEXT, town VARCHAR(5), amount DOUBLE, "
                 "optin BOOLEAN, extra TEXT)")
    ws = make_ws([sync()], [db.conn()], contacts=CONTACTS.replace("Paris,true,\n", "Paris-Montmartre,true,\n"))
    [result] = run_syncs(ws)
    assert result.status == "failed"
    assert (result.inserted, result.failed) == (3, 1)
    assert "refused the record" in result.errors[0]
    assert sorted(db.rows()) == ["1", "2", "4"]
    # the database is fixed: the record goes next run
    db.query("ALTER TABLE crm_contacts " + ("ALTER COLUMN town TYPE text" if isinstance(db, PG)
                                            else "MODIFY town TEXT"))
    [result] = run_syncs(ws)
    assert (result.inserted, result.retried, result.failed) == (1, 1, 0)
    assert db.rows()["3"][1] == "Paris-Montmartre"


def test_existing_table_without_key_index_is_refused_clearly(db, make_ws):
    db.query("CREATE TABLE crm_contacts (id VARCHAR(20), mail TEXT)")
    ws = make_ws([sync()], [db.conn()])
    [result] = run_syncs(ws)
    assert result.status == "failed" and result.failed == 4
    assert "primary key or unique index" in result.errors[0] and "ADD PRIMARY KEY" in result.errors[0]


def test_new_fields_add_columns(db, make_ws, tmp_path):
    ws = make_ws([sync(fields={"id": "crm_id", "mail": "email"})], [db.conn()])
    run_syncs(ws)
    reconfigure(ws, tmp_path, [sync(fields={"id": "crm_id", "mail": "email", "first": "first_name"})], [db.conn()])
    [result] = run_syncs(ws)
    assert result.updated == 4
    assert dict(db.query("SELECT id, first FROM crm_contacts"))["1"] == "Ann"


def test_database_down_for_one_run_receives_everything_next(db, make_ws, tmp_path):
    from servers import free_port

    ws = make_ws([sync()], [db.conn(port=free_port(), connect_timeout=2)])
    [down] = run_syncs(ws)
    assert down.status == "failed" and down.failed == 4
    assert "cannot connect" in down.errors[0]
    reconfigure(ws, tmp_path, [sync()], [db.conn()])
    [up] = run_syncs(ws)
    assert up.status == "succeeded" and (up.inserted, up.retried) == (4, 4)
    assert len(db.rows()) == 4


def test_dates_timestamps_and_integer_keys(db, make_ws, tmp_path):
    contacts = "id,email,born,seen\n1,a@x.com,1980-12-31,2024-01-02 10:11:12\n2,b@x.com,,\n"
    (tmp_path / "data").mkdir(exist_ok=True)
    ws = make_ws([], [db.conn()], contacts=CONTACTS)
    (tmp_path / "data" / "people.csv").write_text(contacts)
    cfg = {
        "connections": [{"name": "files", "type": "local", "path": str(tmp_path / "data")}, db.conn()],
        "sources": [{"name": "people", "connection": "files", "pattern": "people.csv", "record_keys": ["id"],
                     "import_strategy": "full", "types": {"id": "integer", "born": "date", "seen": "timestamp"}}],
        "datasets": [{"name": "people", "mappings": [{"source": "people", "columns": {
            "person_id": "id", "email": "email", "born": "born", "seen": "seen"}}]}],
        "syncs": [{"name": "people", "dataset": "people", "connection": "db", "key": "person_id", "table": "people",
                   "mode": "mirror", "fields": {"person_id": "person_id", "born": "born", "seen": "seen"}}],
    }
    ws.apply(cfg)
    ws.run()
    [result] = run_syncs(ws)
    assert result.status == "succeeded", result.errors
    rows = {r[0]: r[1:] for r in db.query("SELECT person_id, born, seen FROM people")}
    assert rows == {1: (dtm.date(1980, 12, 31), dtm.datetime(2024, 1, 2, 10, 11, 12)), 2: (None, None)}
    (tmp_path / "data" / "people.csv").write_text("id,email,born,seen\n1,a@x.com,1980-12-31,2024-01-02 10:11:12\n")
    ws.run()
    [result] = run_syncs(ws)
    assert result.deleted == 1
    assert [r[0] for r in db.query("SELECT person_id FROM people")] == [1]


def test_mariadb_without_local_files_falls_back_to_multi_row_inserts(mariadb_server, mariadb_db, make_ws, change):
    db = Maria(mariadb_db)
    with mariadb_server.root() as root, root.cursor() as cur:
        cur.execute("SET GLOBAL local_infile = 0")
    try:
        ws = make_ws([sync(mode="mirror")], [db.conn()])
        [result] = run_syncs(ws)
        assert result.status == "succeeded", result.errors
        assert result.inserted == 4 and db.rows()["1"] == ("ann@example.com", "Paris", 10.5, True)
        change(ws, CONTACTS.replace("Lyon,false,20", "Lyon,false,22").replace("3,cyd@example.com,Cyd,Paris,true,\n", ""))
        [result] = run_syncs(ws)
        assert (result.updated, result.deleted) == (1, 1)
        assert sorted(db.rows()) == ["1", "2", "4"] and db.rows()["2"][2] == 22.0
    finally:
        with mariadb_server.root() as root, root.cursor() as cur:
            cur.execute("SET GLOBAL local_infile = 1")


def test_deduplicated_dataset_with_every_column(db, make_ws, tmp_path):
    """The README's sync: a unified dataset, key tessera_id, every column (unified columns included)."""
    ws = make_ws([], [db.conn()])
    (tmp_path / "data" / "contacts.csv").write_text(
        CONTACTS + "5,ANN@example.com ,Annie,Paris,true,3\n")  # the same person as 1
    cfg = {
        "connections": [{"name": "files", "type": "local", "path": str(tmp_path / "data")}, db.conn()],
        "sources": [{"name": "crm", "connection": "files", "pattern": "contacts.csv", "record_keys": ["id"],
                     "import_strategy": "full", "normalize": {"email": ["email"]}}],
        "datasets": [{"name": "contacts", "deduplicate": True, "identity_keys": [{"column": "email"}],
                      "mappings": [{"source": "crm", "columns": {"email": "email", "first_name": "first_name",
                                                                 "email_opt_in": "email_optin"}}]}],
        "syncs": [{"name": "contacts_to_db", "dataset": "contacts", "connection": "db", "table": "contacts",
                   "mode": "mirror"}],
    }
    ws.apply(cfg)
    ws.run()
    [result] = run_syncs(ws)
    assert result.status == "succeeded", result.errors
    assert result.inserted == 4
    cols = set(db.column_types("contacts"))
    assert {"tessera_id", "email", "first_name", "email_opt_in", "tessera_record_count", "tessera_sources",
            "tessera_first_seen", "tessera_last_seen"} <= cols
    assert not [c for c in cols if c.startswith("_tessera")]
    counts = dict(db.query("SELECT email, tessera_record_count FROM contacts"))
    assert counts["ann@example.com"] == 2
