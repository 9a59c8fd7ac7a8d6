"""Readers and writers per system: local folders, FTP/FTPS, SFTP, SQL databases, BigQuery, webhooks.

Every connector module has ``check(conn) -> list[str]``: it opens the connection for real and
returns what it verified (one line each), or raises :class:`~tessera.errors.ConnectionFailed`
with a diagnosis (host unreachable, authentication refused, table missing, permission denied).
``tessera connections test NAME`` calls :func:`check_connection`.
"""

from __future__ import annotations

from importlib import import_module

from tessera.errors import ConnectionFailed

_MODULES = {
    "local": "tessera.connectors.files",
    "ftp": "tessera.connectors.ftp",
    "ftps": "tessera.connectors.ftp",
    "sftp": "tessera.connectors.sftp",
    "postgresql": "tessera.connectors.sql",
    "mysql": "tessera.connectors.sql",
    "mariadb": "tessera.connectors.sql",
    "sqlite": "tessera.connectors.sql",
    "bigquery": "tessera.connectors.bigquery",
    "webhook": "tessera.connectors.webhook",
    "http": "tessera.connectors.http",
}


def check_connection(conn, sources=()) -> list[str]:
    """Open ``conn`` (secrets revealed) and check what ``sources`` read from it.

    Returns the lines of what was verified; raises ConnectionFailed with the diagnosis.
    """
    module = import_module(_MODULES[conn.type])
    try:
        return module.check(conn, list(sources))
    except ConnectionFailed:
        raise
    except Exception as exc:  # an unforeseen failure: still a diagnosis, never a traceback
        raise ConnectionFailed(f"connection '{conn.name}': {type(exc).__name__}: {exc}") from exc
