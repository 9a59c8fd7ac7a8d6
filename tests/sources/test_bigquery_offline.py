"""BigQuery sources, offline: BigQuery cannot be reached from the test machines, so these tests
cover what does not need it — query building, the incremental condition and its typed parameter,
the type mapping, configuration errors and the diagnosis of Google's exceptions."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

pytest.importorskip("google.cloud.bigquery")

from google.api_core import exceptions as gexc  # noqa: E402
from google.auth import exceptions as aexc  # noqa: E402

from tessera.config.models import BigQueryConnectionConfig, SourceConfig  # noqa: E402
from tessera.connectors import bigquery  # noqa: E402
from tessera.errors import ConnectionFailed  # noqa: E402
from tessera.sources.database import CursorBound, bound_value  # noqa: E402


def conn(**overrides) -> BigQueryConnectionConfig:
    return BigQueryConnectionConfig(**{"name": "warehouse", "type": "bigquery", "project": "acme-prod",
                                       "dataset": "crm", **overrides})


def source(**overrides) -> SourceConfig:
    return SourceConfig(**{"name": "customers", "connection": "warehouse", "table": "customers",
                           "record_keys": ["id"], "import_strategy": "full", **overrides})


def test_table_names_are_qualified():
    assert bigquery.table_id(conn(), "customers") == "acme-prod.crm.customers"
    assert bigquery.table_id(conn(), "sales.orders") == "acme-prod.sales.orders"
    assert bigquery.table_id(conn(), "other-proj.sales.orders") == "other-proj.sales.orders"
    assert bigquery.table_id(conn(), "`other-proj.sales.orders`") == "other-proj.sales.orders"
    with pytest.raises(ConnectionFailed) as err:
        bigquery.table_id(conn(dataset=None), "customers")
    assert err.value.reason == "config" and "dataset.table" in str(err.value)


def test_full_queries():
    sql, params = bigquery.build_query(conn(), source())
    assert sql == "SELECT * FROM `acme-prod.crm.customers`" and params == []
    sql, params = bigquery.build_query(conn(), source(table=None, query="SELECT id, email FROM crm.customers;"))
    assert sql == "SELECT * FROM (SELECT id, email FROM crm.customers) AS _tessera_q" and params == []


@pytest.mark.parametrize("state, bq_type, value", [
    ({"value": "2025-01-01 14:00:00", "type": "timestamp", "native": "TIMESTAMP WITH TIME ZONE"}, "TIMESTAMP",
     datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)),
    ({"value": "2025-01-01 14:00:00.250000", "type": "timestamp", "native": "TIMESTAMP"}, "DATETIME",
     datetime(2025, 1, 1, 12, 0, 0, 250000)),
    ({"value": "2025-01-03", "type": "date", "native": "DATE"}, "DATE", date(2025, 1, 2)),
])
def test_incremental_query_uses_a_typed_parameter(state, bq_type, value):
    src = source(import_strategy="incremental", cursor="updated_at", lookback="2h" if bq_type != "DATE" else "1d")
    sql, params = bigquery.build_query(conn(), src, bound_value(src, state))
    assert sql == "SELECT * FROM `acme-prod.crm.customers` WHERE `updated_at` >= @tessera_cursor"
    (param,) = params
    assert (param.name, param.type_, param.value) == ("tessera_cursor", bq_type, value)


def test_numeric_cursor_parameter():
    src = source(import_strategy="incremental", cursor="seq", lookback=100)
    sql, (param,) = bigquery.build_query(conn(), src, bound_value(src, {"value": "1000", "type": "integer"}))
    assert sql.endswith("WHERE `seq` >= @tessera_cursor")
    assert (param.type_, param.value) == ("INT64", 900)
    bound = CursorBound("amount", "decimal", "DECIMAL(38,9)", "12.5")
    assert bigquery.build_query(conn(), source(), bound)[1][0].value == Decimal("12.5")


def test_types_map_to_configuration_types():
    assert [bigquery.bigquery_type(t) for t in ("INT64", "INTEGER", "FLOAT64", "NUMERIC", "BIGNUMERIC", "BOOL",
                                                "DATE", "DATETIME", "TIMESTAMP", "STRING", "BYTES", "JSON",
                                                "TIME", "RECORD")] == [
        "integer", "integer", "float", "decimal", "float", "boolean", "date", "timestamp", "timestamp",
        "string", "string", "string", "string", "string"]


def test_credentials_errors(tmp_path):
    with pytest.raises(ConnectionFailed) as err:
        bigquery.credentials(conn(credentials_file=str(tmp_path / "missing.json")))
    assert err.value.reason == "config" and "missing.json does not exist" in str(err.value)
    with pytest.raises(ConnectionFailed) as err:
        bigquery.credentials(conn(credentials_json="{not json"))
    assert err.value.reason == "config" and "credentials_json is not a service account key" in str(err.value)
    with pytest.raises(ConnectionFailed) as err:
        bigquery.credentials(conn(credentials_json=json.dumps({"type": "service_account"})))
    assert err.value.reason == "config"
    bad = tmp_path / "key.json"
    bad.write_text(json.dumps({"type": "authorized_user"}))
    with pytest.raises(ConnectionFailed) as err:
        bigquery.credentials(conn(credentials_file=str(bad)))
    assert err.value.reason == "config" and "is not a service account key" in str(err.value)


def test_no_default_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    with pytest.raises(ConnectionFailed) as err:
        bigquery.credentials(conn())
    assert err.value.reason in ("auth_refused", "config")


@pytest.mark.parametrize("exc, reason", [
    (gexc.Forbidden("Access Denied: Table acme-prod:crm.customers"), "permission_denied"),
    (gexc.NotFound("Not found: Table acme-prod:crm.customers"), "not_found"),
    (gexc.BadRequest("Syntax error: Unexpected keyword"), "config"),
    (gexc.Unauthorized("Request had invalid authentication credentials"), "auth_refused"),
    (aexc.RefreshError("invalid_grant: Invalid JWT Signature."), "auth_refused"),
    (aexc.TransportError("Failed to resolve 'oauth2.googleapis.com'"), "unreachable"),
    (gexc.DeadlineExceeded("Deadline of 600.0s exceeded"), "timeout"),
])
def test_google_errors_are_diagnosed(exc, reason):
    found = bigquery.failure(conn(), exc, what="table acme-prod.crm.customers")
    assert found.reason == reason
    assert "connection 'warehouse'" in str(found)
    if reason == "permission_denied":
        assert "roles/bigquery.dataViewer" in str(found) and "roles/bigquery.jobUser" in str(found)
