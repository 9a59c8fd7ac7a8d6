"""Secrets of connections: encrypted at rest, revealed only to the connector that uses them.

A password written in the YAML is encrypted by ``tessera apply`` (Fernet: AES-128-CBC with an
HMAC-SHA256) and stored in the metadata store; the stored configuration keeps a reference
``{secret: <connection>.<field>}`` in its place, so neither ``tessera export`` nor the API can
print it. A secret can also stay outside Tessera: ``{env: VAR}`` is read from the environment
each time the connection is used.

The key comes from ``TESSERA_SECRET_KEY`` (a Fernet key, or any passphrase, stretched with
scrypt) or from the file ``secret.key`` that ``tessera init`` creates in the workspace folder
(mode 0600). Losing the key loses the secrets: they are then applied again from YAML.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from tessera.config.models import SECRET_FIELDS, SecretRef, WorkspaceConfig
from tessera.errors import ConfigError

KEY_FILE = "secret.key"
_SALT = b"tessera-secret-key-v1"


def create_key_file(workspace: Path) -> Path:
    """Create the workspace's key file if it is missing (readable by its owner only)."""
    path = workspace / KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key() + b"\n")
    return path


def _fernet_from(text: str) -> Fernet:
    text = text.strip()
    try:
        return Fernet(text.encode())
    except (ValueError, TypeError):
        derived = hashlib.scrypt(text.encode(), salt=_SALT, n=2**14, r=8, p=1, dklen=32)
        return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    """Encrypts secrets into the metadata store and reveals them for connectors."""

    def __init__(self, workspace: Path, store):
        self.workspace = workspace
        self.store = store
        self._fernet: Fernet | None = None

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            env = os.environ.get("TESSERA_SECRET_KEY")
            if env:
                self._fernet = _fernet_from(env)
            else:
                path = create_key_file(self.workspace)
                self._fernet = _fernet_from(path.read_text())
        return self._fernet

    def put(self, name: str, plaintext: str) -> None:
        # Fernet tokens differ at each call: keep the stored one when the secret did not change.
        current = self.store.get_secret(name)
        if current is not None:
            try:
                if self.fernet.decrypt(current.encode()).decode() == plaintext:
                    return
            except InvalidToken:
                pass
        self.store.set_secret(name, self.fernet.encrypt(plaintext.encode()).decode())

    def get(self, name: str, *, where: str) -> str:
        token = self.store.get_secret(name)
        if token is None:
            raise ConfigError(f"{where}: the secret '{name}' is not stored in this workspace; write the value "
                              "in the YAML (it is encrypted by tessera apply) or use {env: VAR}")
        try:
            return self.fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                f"{where}: the secret '{name}' cannot be decrypted with this workspace's key (TESSERA_SECRET_KEY "
                f"or {KEY_FILE} changed); apply the configuration again with the value in the YAML"
            ) from None

    def seal(self, config: WorkspaceConfig, *, store: bool = True) -> WorkspaceConfig:
        """Store the plain secrets of ``config`` encrypted; return it with references in their place.
        ``store=False`` only puts the references (what apply would keep, for a diff)."""
        config = config.model_copy(deep=True)
        for conn in config.connections:
            for field in SECRET_FIELDS:
                value = getattr(conn, field, None)
                if isinstance(value, str):
                    name = f"{conn.name}.{field}"
                    if store:
                        self.put(name, value)
                    setattr(conn, field, SecretRef(secret=name))
        return config

    def reveal_value(self, value: str | SecretRef | None, *, where: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if value.env is not None:
            if value.env not in os.environ:
                raise ConfigError(f"{where}: the environment variable {value.env} is not set; export it "
                                  "before using this connection")
            return os.environ[value.env]
        return self.get(value.secret, where=where)

    def reveal(self, conn):
        """A copy of the connection whose secret fields hold their plain values (never log it)."""
        conn = conn.model_copy(deep=True)
        for field in SECRET_FIELDS:
            if hasattr(conn, field):
                setattr(conn, field, self.reveal_value(getattr(conn, field), where=f"connection {conn.name}.{field}"))
        return conn

    def prune(self, config: WorkspaceConfig) -> None:
        """Forget stored secrets that the configuration no longer refers to."""
        used = {getattr(c, f).secret for c in config.connections for f in SECRET_FIELDS
                if isinstance(getattr(c, f, None), SecretRef) and getattr(c, f).secret}
        for name in self.store.list_secrets():
            if name not in used:
                self.store.delete_secret(name)
