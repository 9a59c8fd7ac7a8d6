"""Checks at apply: columns named for a source are checked against its files (or its last import)
with a "did you mean"; a semantic field on a computed column counts for the scores; one semantic
field on two columns of a dataset is refused with both names."""

from __future__ import annotations

import textwrap
from datetime import date

import pytest

from tessera.errors import ConfigError
from tessera.sources.columns import did_you_mean
from tessera.workspace import Workspace

CRM = "id;Prénom;Téléphone;Courriel\n1;Ana;0612345678;ana@example.com\n"

CONFIG = """
connections: [{name: files, type: local, path: data}]
sources:
  - name: crm
    connection: files
    pattern: crm.csv
    record_keys: [id]
    normalize: {Telephone: [{phone: {country: FR}}]}
datasets:
  - name: contacts
    mappings: [{source: crm, columns: {crm_id: id, email: courriel, first_name: Prénom}}]
"""


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "crm.csv").write_text(CRM)
    w = Workspace.init(tmp_path / "ws")
    yield w
    w.close()


def test_did_you_mean():
    assert did_you_mean("Telephone", ["id", "Téléphone"]) == "Téléphone"
    assert did_you_mean("courriel", ["Courriel"]) == "Courriel"
    assert did_you_mean("e_mail", ["email", "phone"]) == "email"
    assert did_you_mean("zzz", ["email", "phone"]) is None


def test_unknown_columns_are_reported_together_with_a_suggestion(ws, tmp_path):
    (tmp_path / "w.yaml").write_text(textwrap.dedent(CONFIG))
    with pytest.raises(ConfigError) as exc:
        ws.apply(tmp_path / "w.yaml")
    problems = exc.value.problems
    assert problems == [
        "sources[0] (crm).normalize: 'Telephone' is not a column of source 'crm' (file crm.csv); "
        "did you mean 'Téléphone'?",
        "datasets[0] (contacts).mappings[0].columns.email: 'courriel' is not a column of source 'crm' "
        "(file crm.csv); did you mean 'Courriel'?",
    ]
    fixed = textwrap.dedent(CONFIG).replace("Telephone:", "Téléphone:").replace("email: courriel,", "email: Courriel,")
    (tmp_path / "w.yaml").write_text(fixed)
    ws.apply(tmp_path / "w.yaml")
    ws.run()
    [row] = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
    assert row["email"] == "ana@example.com"


def test_one_semantic_field_on_two_columns_is_refused(ws):
    with pytest.raises(ConfigError, match=r"columns 'total' and 'net' both have the semantic field OrderAmount"):
        ws.apply({
            "connections": [{"name": "files", "type": "local", "path": "/nonexistent"}],
            "sources": [{"name": "shop", "connection": "files", "pattern": "o.csv", "record_keys": ["id"]}],
            "datasets": [{"name": "orders", "columns": [{"name": "total", "semantic": "OrderAmount"}],
                          "computed": [{"name": "net", "sql": "total - 1", "semantic": "OrderAmount"}],
                          "mappings": [{"source": "shop", "columns": {"id": "id", "total": "total"}}]}],
        })


def test_a_semantic_field_on_a_computed_column_is_used_by_the_scores(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text("email\nana@example.com\n")
    (data / "sales.csv").write_text("order_id,email,day,gross,discount\no1,ana@example.com,2024-12-01,100,10\n"
                                    "o2,ana@example.com,2024-12-20,50,0\n")
    ws = Workspace.init(tmp_path / "ws")
    try:
        ws.apply({
            "connections": [{"name": "files", "type": "local", "path": str(data)}],
            "sources": [
                {"name": "people", "connection": "files", "pattern": "people.csv", "record_keys": ["email"]},
                {"name": "sales", "connection": "files", "pattern": "sales.csv", "record_keys": ["order_id"],
                 "types": {"gross": "float", "discount": "float", "day": "date"},
                 "relations": [{"column": "email", "to": "contacts.email"}]}],
            "datasets": [
                {"name": "contacts", "mappings": [{"source": "people", "columns": {"email": "email"}}],
                 "scores": {"library": ["order_stats"]}},
                {"name": "orders", "columns": [{"name": "day", "semantic": "OrderDate"}],
                 "computed": [{"name": "paid", "sql": "gross - discount", "semantic": "OrderAmount"}],
                 "mappings": [{"source": "sales", "columns": {"order_id": "order_id", "day": "day", "gross": "gross",
                                                              "discount": "discount"}}]}],
        })
        ws.run(as_of=date(2024, 12, 31))
        [ana] = ws.adapter.to_arrow(ws.table("contacts")).to_pylist()
        assert float(ana["score_orders_total_amount"]) == 140.0
    finally:
        ws.close()


def test_unknown_scores_and_settings_are_refused_at_apply_all_at_once(ws, tmp_path):
    scores = ("    scores:\n      library: [rfm, rfmm]\n      settings: {activ_days: 30, active_days: 200}\n"
              "      predictive: true\n"
              "      predictive_settings: {horizon_day: 30, clv_months: 0, next_order_within_days: 180, model: bgnb}\n")
    config = textwrap.dedent(CONFIG).replace("    normalize: {Telephone: [{phone: {country: FR}}]}\n", "") + scores
    (tmp_path / "w.yaml").write_text(config.replace("email: courriel,", "email: Courriel,"))
    with pytest.raises(ConfigError) as exc:
        ws.apply(tmp_path / "w.yaml")
    problems = exc.value.problems
    assert len(problems) == 5, problems
    assert problems[0].startswith("datasets[0] (contacts).scores.library[1]: unknown score 'rfmm'; did you mean 'rfm'?")
    assert problems[1].startswith("datasets[0] (contacts).scores.settings.activ_days: unknown setting; "
                                  "did you mean 'active_days'?")
    assert problems[2].startswith("datasets[0] (contacts).scores.predictive_settings.horizon_day: unknown setting; "
                                  "did you mean 'horizon_days'?")
    assert problems[3] == "datasets[0] (contacts).scores.predictive_settings.clv_months: 0.0 must be above 0"
    assert problems[4] == ("datasets[0] (contacts).scores.predictive_settings.model: unknown model 'bgnb'; "
                           "did you mean 'bgnbd'? (known: mbgnbd, bgnbd)")
    # a setting that takes a number is given a word: said where, before any other check
    (tmp_path / "w.yaml").write_text(config.replace("email: courriel,", "email: Courriel,")
                                     .replace("horizon_day: 30", "horizon_days: soon"))
    with pytest.raises(ConfigError) as exc:
        ws.apply(tmp_path / "w.yaml")
    [problem] = exc.value.problems
    assert problem.endswith("scores.predictive_settings: horizon_days: 'soon' is not a number "
                            "(only model takes a name: mbgnbd or bgnbd)"), problem


def test_the_score_settings_known_at_apply_are_those_the_scores_read():
    from tessera.config.scores import SCORE_SETTINGS
    from tessera.enrich.scores import ScoreSettings

    defaults = {k: v for k, v in vars(ScoreSettings()).items() if k != "extra"}
    assert defaults == SCORE_SETTINGS


def test_a_mistyped_predictive_setting_holding_a_name_is_named_with_a_suggestion():
    from tessera.config.models import ScoresConfig
    from tessera.config.scores import scores_problems

    scores = ScoresConfig.model_validate({"predictive": True, "predictive_settings": {"modl": "bgnbd"}})
    assert scores_problems("datasets[0]", scores) == [
        "datasets[0].predictive_settings.modl: unknown setting; did you mean 'model'? (known: horizon_days, "
        "clv_months, discount_rate_monthly, min_repeat_customers, next_order_within_days, model)"]
