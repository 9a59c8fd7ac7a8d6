"""Open the warehouse named by a workspace's ``warehouse`` setting."""

from __future__ import annotations

from pathlib import Path

from tessera.engine.base import EngineAdapter
from tessera.errors import WorkspaceError


def open_adapter(setting: str, workspace: Path) -> EngineAdapter:
    """The adapter of ``setting``: ``duckdb`` (the file ``warehouse.duckdb`` of the workspace) or
    ``duckdb:PATH``, ``spark`` or ``spark:MASTER``, or a ``postgresql://`` URL."""
    if setting == "duckdb" or setting.startswith("duckdb:"):
        from tessera.engine.duckdb import DuckDBAdapter  # lazy: keeps `tessera --help` fast

        file = setting.removeprefix("duckdb:").removeprefix("///") if ":" in setting else ""
        return DuckDBAdapter(file or str(workspace / "warehouse.duckdb"))
    if setting == "spark" or setting.startswith("spark:"):
        from tessera.engine.spark import SparkAdapter  # lazy: pyspark is heavy and optional

        return SparkAdapter(workspace / "spark", master=setting.removeprefix("spark:") if ":" in setting else None)
    if setting.startswith(("postgresql://", "postgresql+psycopg://")):
        from tessera.engine.postgres import PostgresAdapter  # lazy: only for a PostgreSQL warehouse

        return PostgresAdapter(setting)
    raise WorkspaceError(
        f"Unknown warehouse '{setting}' (setting TESSERA_WAREHOUSE or workspace.json 'warehouse'): "
        "use duckdb, spark or a postgresql:// URL."
    )
