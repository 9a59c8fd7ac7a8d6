"""A source's preview: its rows as the next run reads them (normalized, typed, the latest version of
each record), read from the batches the last run staged and kept, the others staged on the fly."""

from __future__ import annotations

import json

import pytest

from tests.test_pipeline import CONFIG, CRM, ORDERS, SHOP

FILES = {"crm_1.csv": CRM.encode("utf-8"), "shop.json": json.dumps(SHOP),
         "orders.ndjson": "\n".join(json.dumps(o) for o in ORDERS) + "\n"}


def shown(table) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "_tessera_imported_at"} for r in table.to_pylist()]


def test_the_preview_reads_the_kept_batches_and_stages_only_new_ones(make_workspace, tmp_path, monkeypatch):
    import tessera.pipeline

    ws = make_workspace(CONFIG, FILES)
    ws.import_sources()
    before = shown(ws.preview_source("crm", 20))  # nothing kept yet: staged on the fly
    assert before[0]["courriel"] == "jean.dupont@example.com" and before[0]["telephone"] == "+33612345678"
    assert before[0]["prenom"] == "Jean" and str(before[0]["date_naissance"]) == "1980-12-31"
    ws.run()
    staging = tessera.pipeline.stage

    def refused(*args, **kwargs):
        raise AssertionError("a batch the run kept was staged again")

    monkeypatch.setattr(tessera.pipeline, "stage", refused)
    assert shown(ws.preview_source("crm", 20)) == before  # read from the staged batch the run kept
    # a new file imported since the run: staged on the fly beside the kept batch, its newer
    # version of record 1 shown instead of the first
    monkeypatch.setattr(tessera.pipeline, "stage", staging)
    (tmp_path / "data" / "crm_2.csv").write_text("id;prenom;nom;courriel;telephone;date_naissance;maj\n"
                                                 "1;Jean;Dupont;JEAN@new.example.com;;;2024-06-01\n")
    ws.import_sources()
    after = shown(ws.preview_source("crm", 20))
    assert [r["courriel"] for r in after if r["id"] == "1"] == ["jean@new.example.com"]
    assert len(after) == len(before)
    monkeypatch.setattr(tessera.pipeline, "stage", refused)
    with pytest.raises(AssertionError, match="staged again"):
        ws.preview_source("crm", 20)  # the new batch is not kept: it is staged
