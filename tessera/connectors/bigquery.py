"""BigQuery connections (google-cloud-bigquery, the ``bigquery`` extra).

A BigQuery source reads a table (``table``, ``dataset.table`` or ``project.dataset.table``; a bare
table name is in the connection's ``dataset``) or a query in BigQuery's GoogleSQL. An incremental
import adds ``WHERE cursor >= @tessera_cursor`` with a typed query parameter, so BigQuery prunes
partitions and clusters on the cursor column. Results stream as Arrow record batches
(``RowIterator.to_arrow_iterable``: the BigQuery Storage Read API when
google-cloud-bigquery-storage is installed, else the REST pages), ``BATCH_ROWS`` rows per page.

Credentials: ``credentials_json`` (a service account key's content, e.g. ``{env: GOOGLE_CREDENTIALS}``),
else ``credentials_file``, else Google's application default credentials.

BigQuery cannot be reached from the machines Tessera is tested on: the tests cover the query
building, the type mapping, the configuration errors and the diagnosis of Google's exceptions
offline; reading and :func:`check` against the real service are not tested.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

from tessera.errors import ConnectionFailed

# BigQuery field types -> configuration types
_TYPES = {
    "INTEGER": "integer", "INT64": "integer",
    "FLOAT": "float", "FLOAT64": "float", "BIGNUMERIC": "float", "BIGDECIMAL": "float",
    "NUMERIC": "decimal", "DECIMAL": "decimal",
    "BOOLEAN": "boolean", "BOOL": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp", "DATETIME": "timestamp",
}


def bigquery_type(field_type: str) -> str:
    """The configuration type of a BigQuery field type (STRING, BYTES, TIME, JSON, GEOGRAPHY,
    records and arrays are read as text)."""
    return _TYPES.get((field_type or "").upper(), "string")


def _bq():
    try:
        from google.cloud import bigquery
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConnectionFailed("BigQuery support is not installed: pip install 'tessera-cdp[bigquery]'",
                               reason="config") from exc
    return bigquery


def table_id(conn, table: str) -> str:
    """``project.dataset.table`` of a source's ``table`` setting."""
    parts = table.strip("`").split(".")
    if len(parts) == 3:
        return ".".join(parts)
    if len(parts) == 2:
        return f"{conn.project}.{parts[0]}.{parts[1]}"
    if len(parts) == 1 and conn.dataset:
        return f"{conn.project}.{conn.dataset}.{parts[0]}"
    raise ConnectionFailed(
        f"connection '{conn.name}': table '{table}' names no dataset; write dataset.table in the source "
        "or set the connection's dataset", reason="config")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "\\`") + "`"


def _parameter_type(bound) -> str:
    if bound.type == "timestamp":
        return "TIMESTAMP" if bound.native.upper() in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ") else "DATETIME"
    return {"integer": "INT64", "float": "FLOAT64", "decimal": "NUMERIC", "date": "DATE"}.get(bound.type, "STRING")


def _parameter_value(bound, bq_type: str):
    text = bound.value
    if bq_type in ("TIMESTAMP", "DATETIME"):
        moment = datetime.fromisoformat(text.replace("T", " "))
        return moment.replace(tzinfo=timezone.utc) if bq_type == "TIMESTAMP" else moment
    if bq_type == "DATE":
        return date.fromisoformat(text[:10])
    if bq_type == "INT64":
        return int(Decimal(text))
    if bq_type == "FLOAT64":
        return float(text)
    if bq_type == "NUMERIC":
        return Decimal(text)
    return text


def build_query(conn, src, bound=None):
    """(SQL, query parameters) that read ``src``; ``bound`` (a
    :class:`tessera.sources.database.CursorBound`) adds ``cursor >= @tessera_cursor``."""
    bigquery = _bq()
    if src.table:
        sql = f"SELECT * FROM {_quote(table_id(conn, src.table))}"
    else:
        sql = f"SELECT * FROM ({src.query.strip().rstrip(';').strip()}) AS _tessera_q"
    params = []
    if bound is not None:
        bq_type = _parameter_type(bound)
        sql += f" WHERE {_quote(bound.column)} >= @tessera_cursor"
        params.append(bigquery.ScalarQueryParameter("tessera_cursor", bq_type, _parameter_value(bound, bq_type)))
    return sql, params


def credentials(conn):
    """The Google credentials of ``conn``; ConnectionFailed (reason config/auth_refused) when unusable."""
    from google.oauth2 import service_account

    if conn.credentials_json:
        try:
            info = json.loads(conn.credentials_json)
            return service_account.Credentials.from_service_account_info(info)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectionFailed(
                f"connection '{conn.name}': credentials_json is not a service account key ({type(exc).__name__}: "
                f"{_first_line(exc)}); paste the whole JSON key file, e.g. "
                "credentials_json: {env: GOOGLE_CREDENTIALS}",
                reason="config") from None
    if conn.credentials_file:
        path = Path(conn.credentials_file)
        if not path.is_file():
            raise ConnectionFailed(
                f"connection '{conn.name}': credentials_file {path} does not exist; fix the path of the "
                "service account key", reason="config")
        try:
            return service_account.Credentials.from_service_account_file(str(path))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConnectionFailed(
                f"connection '{conn.name}': {path} is not a service account key ({_first_line(exc)}); download "
                "a JSON key of the service account", reason="config") from None
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        found, _project = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
        return found
    except DefaultCredentialsError:
        raise ConnectionFailed(
            f"connection '{conn.name}': no Google credentials found; set credentials_file or credentials_json "
            "on the connection, or GOOGLE_APPLICATION_CREDENTIALS", reason="auth_refused") from None


def client(conn):
    """A BigQuery client for ``conn``."""
    bigquery = _bq()
    return bigquery.Client(project=conn.project, credentials=credentials(conn), location=conn.location)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def failure(conn, exc: BaseException, *, what: str | None = None) -> ConnectionFailed:
    """The diagnosis of an error raised by the Google client libraries."""
    if isinstance(exc, ConnectionFailed):
        return exc
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as aexc

    text = _first_line(exc)
    target = what or f"project {conn.project}"
    if isinstance(exc, (aexc.RefreshError, aexc.DefaultCredentialsError, gexc.Unauthorized)):
        return ConnectionFailed(
            f"connection '{conn.name}': Google refused the credentials ({text}); check the service account key "
            "and that the account is enabled", reason="auth_refused")
    if isinstance(exc, gexc.Forbidden):
        return ConnectionFailed(
            f"connection '{conn.name}': the service account may not read {target} ({text}); grant it "
            f"roles/bigquery.dataViewer on the dataset and roles/bigquery.jobUser on project {conn.project}",
            reason="permission_denied")
    if isinstance(exc, gexc.NotFound):
        return ConnectionFailed(f"connection '{conn.name}': {target} not found ({text}); check project, dataset "
                                "and table names, and the connection's location", reason="not_found")
    if isinstance(exc, gexc.BadRequest):
        return ConnectionFailed(f"connection '{conn.name}': BigQuery refused {what or 'the query'} ({text}); "
                                "fix the source's query", reason="config")
    if isinstance(exc, (gexc.DeadlineExceeded, TimeoutError)) or "timed out" in text.lower():
        return ConnectionFailed(f"connection '{conn.name}': BigQuery did not answer in time ({text}); retry later",
                                reason="timeout")
    if isinstance(exc, (aexc.TransportError, gexc.ServiceUnavailable, ConnectionError)) \
            or re.search(r"(?i)connection|resolve|unreachable", text):
        return ConnectionFailed(f"connection '{conn.name}': cannot reach bigquery.googleapis.com ({text}); check "
                                "the network, proxy and firewall", reason="unreachable")
    return ConnectionFailed(f"connection '{conn.name}': BigQuery: {type(exc).__name__}: {text}")


def arrow_stream(conn, src, batch_rows: int):
    """The reader of a BigQuery source for :func:`tessera.sources.database.land`: ``stream(bound)``
    gives (column names, declared types, iterator of Arrow record batches of ``batch_rows`` rows)."""

    def stream(bound):
        sql, params = build_query(conn, src, bound)
        bigquery = _bq()
        what = f"table {src.table}" if src.table else f"the query of source '{src.name}'"
        try:
            job = client(conn).query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
            rows = job.result(page_size=batch_rows)
        except ConnectionFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - google-api-core, google-auth, requests
            raise failure(conn, exc, what=what) from exc
        names = [f.name for f in rows.schema]
        types = {f.name: bigquery_type(f.field_type) for f in rows.schema}
        return names, types, rows.to_arrow_iterable()

    return stream


def check(conn, sources=()) -> list[str]:
    """Open ``conn`` for real: run ``SELECT 1``, read each table's schema or dry-run each query, and
    check the cursor and record key columns. Not tested (BigQuery cannot be reached from here)."""
    bigquery = _bq()
    bq = client(conn)
    try:
        bq.query("SELECT 1").result(timeout=60)
    except Exception as exc:  # noqa: BLE001
        raise failure(conn, exc) from None
    where = f", location {conn.location}" if conn.location else ""
    lines = [f"connected to BigQuery, project {conn.project}{where}"]
    for src in sources:
        what = f"table {table_id(conn, src.table)}" if src.table else f"the query of source '{src.name}'"
        try:
            if src.table:
                schema = bq.get_table(table_id(conn, src.table)).schema
            else:
                sql, _ = build_query(conn, src)
                schema = bq.query(sql, job_config=bigquery.QueryJobConfig(dry_run=True)).schema
        except Exception as exc:  # noqa: BLE001
            raise failure(conn, exc, what=what) from None
        columns = [f.name for f in schema or []]
        missing = [c for c in [*src.record_keys, *([src.cursor] if src.cursor else [])] if c not in columns]
        if missing:
            raise ConnectionFailed(
                f"connection '{conn.name}': source '{src.name}': {', '.join(missing)} not in {what} "
                f"(columns: {', '.join(columns)}); fix the source's cursor or record_keys", reason="not_found")
        line = f"source {src.name}: {what} is readable ({len(columns)} columns)"
        if src.cursor:
            line += f"; cursor column {src.cursor} found"
        lines.append(line)
    return lines
