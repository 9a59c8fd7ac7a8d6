"""Write keys: which http connection a request belongs to.

Every connection of type ``http`` has a ``write_key`` (a secret, stored encrypted or read from an
environment variable). The server keeps a map write key -> connection name, and reloads it
when the configuration or a secret changes: a cheap query (the latest configuration version
and the latest secret update) tells whether to, every few seconds, and when an unknown key
shows up (see :meth:`tessera.collect.service.Collector.authenticate`), so a key applied a moment
ago works right away.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import func, select

from tessera.errors import TesseraError
from tessera.store.models import ConfigVersion, Secret
from tessera.workspace import Workspace

log = logging.getLogger("tessera.collect")


class WriteKeys:
    """The write keys of a workspace's http connections, kept up to date."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._keys: dict[str, str] = {}
        self._fingerprint: tuple | None = None
        self.last_check = 0.0  # time.monotonic() of the last refresh
        self._lock = threading.Lock()

    @property
    def connections(self) -> list[str]:
        return sorted(set(self._keys.values()))

    def lookup(self, key: str | None) -> str | None:
        """The connection of a write key, or None."""
        if not key:
            return None
        return self._keys.get(key)

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the keys when the configuration or a secret changed; True when reloaded.

        Called from a worker thread (it reads the metadata store); ``force`` skips the check.
        """
        with self._lock:
            self.last_check = time.monotonic()
            fingerprint = self._read_fingerprint()
            if not force and fingerprint == self._fingerprint:
                return False
            keys: dict[str, str] = {}
            for conn in self.workspace.config.connections:
                if conn.type != "http":
                    continue
                try:
                    key = self.workspace.secrets.reveal(conn).write_key
                except TesseraError as exc:
                    log.error("connection %s: its write key cannot be read, its events are refused (%s)",
                              conn.name, exc)
                    continue
                if not key:
                    continue
                other = keys.get(key)
                if other is not None:
                    log.error("connections %s and %s have the same write key: events are stored under %s; "
                              "give each http connection its own write_key", other, conn.name, other)
                    continue
                keys[key] = conn.name
            self._keys = keys
            self._fingerprint = fingerprint
            return True

    def _read_fingerprint(self) -> tuple:
        with self.workspace.store.engine.connect() as conn:
            version = conn.execute(select(func.max(ConfigVersion.id))).scalar()
            secrets = conn.execute(select(func.count(), func.max(Secret.updated_at))).one()
        return version, tuple(secrets)
