"""The public Python API is what ``tessera`` exports: a change to it is a decision, not an accident."""

from __future__ import annotations

import subprocess
import sys

import tessera

EXPORTED = [
    "BusyError", "ConfigError", "ConflictError", "ConnectionFailed", "EngineError", "ForbiddenError",
    "IdentityError", "JobCancelled", "JobQueue", "NotFoundError", "RunError", "RunResult", "SourceError",
    "SyncError", "TesseraError", "UsageError", "Workspace", "WorkspaceConfig", "WorkspaceError",
]


def test_the_exported_names_are_pinned():
    assert sorted(tessera.__all__) == sorted(EXPORTED)
    for name in EXPORTED:
        assert getattr(tessera, name).__name__ == name


def test_every_error_has_a_code_and_an_http_status():
    from tessera.errors import error_classes, error_table

    table = error_table()
    assert {name for name, _, _ in table} >= {n for n in EXPORTED if n.endswith(("Error", "Failed", "Cancelled"))}
    own = {}  # a class that sets a code owns it; a subclass without one answers with its parent's
    for cls in error_classes():
        if "code" in cls.__dict__:
            assert cls.code not in own, f"{cls.__name__} and {own[cls.code]} share the code {cls.code}"
            own[cls.code] = cls.__name__
    assert all(400 <= status < 600 for _, _, status in table)
    assert dict((n, s) for n, _, s in table)["NotFoundError"] == 404


def test_importing_tessera_does_not_load_the_engines():
    code = "import sys, tessera; print('duckdb' in sys.modules, 'ibis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]

