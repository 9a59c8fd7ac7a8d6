"""A source's typed rows are compiled once a process, over a placeholder batch, and written for each
new batch from that text: the same SQL as the batch's own query, on every engine, and a run after
a new file compiles none."""

from __future__ import annotations

import ibis
import pyarrow as pa

from tessera import pipeline
from tessera.config.models import SourceConfig
from tessera.engine.base import EngineAdapter, param
from tessera.sources.staging import Batch, typed_rows
from tessera.workspace import Workspace

SOURCE = SourceConfig.model_validate({
    "name": "crm", "connection": "files", "pattern": "*.csv", "record_keys": ["id"],
    "normalize": {"email": ["email"], "phone": [{"phone": {"country": "FR"}}], "country": ["country"]},
})
SCHEMA = [("id", "string"), ("email", "string"), ("phone", "string"), ("country", "string"),
          ("amount", "float"), ("signed_up", "timestamp")]
RAW = pa.table({
    "id": ["1", "2", "", "3"], "email": [" Ann@Example.com", "bob@example.com", "x@example.com", None],
    "phone": ["06 12 34 56 78", "+44 20 7946 0958", None, "abc"], "country": ["France", "de", None, "ZZ"],
    "amount": ["12.5", "1 234", "x", None], "signed_up": ["2024-01-02 03:04:05", None, "2024-02-30", "2024-03-01"],
    "_tessera_batch": [7, 7, 7, 7], "_tessera_file": ["a.csv"] * 4, "_tessera_line": [2, 3, 4, 5],
})


def test_the_filled_template_is_the_batch_own_query(engine_adapter: EngineAdapter):
    engine_adapter.create_table("_tessera_raw_crm_7", RAW)
    table = engine_adapter.table("_tessera_raw_crm_7")
    at = "2024-05-06 07:08:09.123456"
    for flagged in (False, True):
        own = typed_rows(SOURCE, Batch("_tessera_raw_crm_7", 7, at), table, SCHEMA,
                         dialect=engine_adapter.dialect, flagged=flagged)
        placeholder = typed_rows(SOURCE, Batch("_raw", 7, param("importedat")),
                                 ibis.table(table.schema(), name="_raw"), SCHEMA,
                                 dialect=engine_adapter.dialect, flagged=flagged)
        filled = engine_adapter.fill(engine_adapter.template(placeholder), own, {"_raw": "_tessera_raw_crm_7"},
                                     importedat=at)
        assert filled.text == engine_adapter.con.compile(own)
        made = engine_adapter.create_table(f"typed_{flagged}", filled)
        rows = sorted(engine_adapter.to_arrow(made).to_pylist(), key=lambda r: r["_tessera_line"])
        assert rows == sorted(engine_adapter.to_arrow(own).to_pylist(), key=lambda r: r["_tessera_line"])
        assert [r["email"] for r in rows] == ["ann@example.com", "bob@example.com", "x@example.com", None]
        assert str(rows[0]["_tessera_imported_at"]).startswith("2024-05-06 07:08:09")


def test_a_run_after_a_new_file_compiles_no_typed_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "_TYPED_SQL", {})
    compiled = []
    template = EngineAdapter.template
    monkeypatch.setattr(EngineAdapter, "template", lambda self, expr: compiled.append(1) or template(self, expr))
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("id;email;amount\n1;Ann@example.com;12.5\n2;bob@example.com;3\n")
    ws = Workspace.init(tmp_path / "ws")
    try:
        ws.apply({
            "connections": [{"name": "files", "type": "local", "path": str(data)}],
            "sources": [{"name": "crm", "connection": "files", "pattern": "*.csv", "record_keys": ["id"],
                         "normalize": {"email": ["email"]}}],
            "datasets": [{"name": "contacts", "mappings": [
                {"source": "crm", "columns": {"crm_id": "id", "email": "email", "amount": "amount"}}]}],
        })
        ws.run()
        assert len(compiled) == 1
        (data / "b.csv").write_text("id;email;amount\n2;BOB@example.com;4.5\n3;cy@example.com;oops\n")
        ws.run()
        assert len(compiled) == 1  # the second file's typed rows written from the first one's text
        rows = {r["crm_id"]: (r["email"], r["amount"])
                for r in ws.adapter.to_arrow(ws.table("contacts")).to_pylist()}
        assert rows == {"1": ("ann@example.com", 12.5), "2": ("bob@example.com", 4.5)}  # (line 3 refused)
        rejects = ws.adapter.to_arrow(ws.rejects("crm")).to_pylist()
        assert [(r["file"], r["line"], r["column_name"]) for r in rejects] == [("b.csv", 3, "amount")]
    finally:
        ws.close()
