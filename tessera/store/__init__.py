"""Metadata store of a workspace (SQLite or PostgreSQL, migrated with Alembic)."""

from tessera.store.store import MetadataStore

__all__ = ["MetadataStore"]
