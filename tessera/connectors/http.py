"""Event collection connections (``type: http``): a write key for the ``/v1`` API."""

from __future__ import annotations

from tessera.errors import ConnectionFailed


def check(conn, sources) -> list[str]:
    """An http connection has nothing to reach: check that its write key is usable."""
    key = conn.write_key or ""
    if len(key) < 8:
        raise ConnectionFailed(f"connection '{conn.name}': the write key is shorter than 8 characters; "
                               "use a long random value (e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')",
                               reason="config")
    names = ", ".join(s.name for s in sources) or "no source yet"
    return [f"write key set ({len(key)} characters); events go to: {names}",
            "clients send to <server>/v1/batch with the write key as HTTP Basic user name"]
