"""Tessera, the open-source Customer Data Platform.

The public Python API is what this module exports (``__all__``, pinned by a test); everything
else may change. The heavy parts (the facade, which loads the engines) are imported when first
used, so ``import tessera`` stays cheap.

Examples:
    >>> import tessera
    >>> ws = tessera.Workspace.init("shop")   # doctest: +SKIP
    >>> ws.apply("workspace.yaml")              # doctest: +SKIP
    >>> ws.run().status                         # doctest: +SKIP
    'succeeded'
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from tessera.errors import (
    BusyError,
    ConfigError,
    ConflictError,
    ConnectionFailed,
    EngineError,
    ForbiddenError,
    IdentityError,
    JobCancelled,
    NotFoundError,
    RunError,
    SourceError,
    SyncError,
    TesseraError,
    UsageError,
    WorkspaceError,
)

_LAZY = {
    "Workspace": "tessera.workspace",
    "RunResult": "tessera.pipeline",
    "WorkspaceConfig": "tessera.config.models",
    "JobQueue": "tessera.jobs",
}

__all__ = [
    "BusyError",
    "ConfigError",
    "ConflictError",
    "ConnectionFailed",
    "EngineError",
    "ForbiddenError",
    "IdentityError",
    "JobCancelled",
    "JobQueue",
    "NotFoundError",
    "RunError",
    "RunResult",
    "SourceError",
    "SyncError",
    "TesseraError",
    "UsageError",
    "Workspace",
    "WorkspaceConfig",
    "WorkspaceError",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tessera' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
