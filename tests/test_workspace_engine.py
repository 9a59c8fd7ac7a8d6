"""A workspace remembers the engine it was created with: later commands need no environment
variable, and a warehouse URL's password is never written in workspace.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tessera.workspace import _without_password

TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def tessera(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_WAREHOUSE"}
    env.update(env_extra or {})
    proc = subprocess.run([*TESSERA, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_engine_of_the_environment_is_remembered(tmp_path):
    warehouse = tmp_path / "elsewhere" / "wh.duckdb"
    warehouse.parent.mkdir()
    tessera("init", tmp_path / "ws", env_extra={"TESSERA_WAREHOUSE": f"duckdb:///{warehouse}"})
    settings = json.loads((tmp_path / "ws" / "workspace.json").read_text())
    assert settings["warehouse"] == f"duckdb:///{warehouse}"
    assert warehouse.exists() and not (tmp_path / "ws" / "warehouse.duckdb").exists()
    tessera("-w", tmp_path / "ws", "status")  # no variable now: still the same warehouse
    assert not (tmp_path / "ws" / "warehouse.duckdb").exists()


@pytest.mark.spark
def test_a_spark_workspace_works_without_the_variable(tmp_path):
    tessera("init", tmp_path / "ws", env_extra={"TESSERA_WAREHOUSE": "spark"})
    assert json.loads((tmp_path / "ws" / "workspace.json").read_text())["warehouse"] == "spark"
    out = tessera("-w", tmp_path / "ws", "status")
    assert "spark" in out.lower()
    assert not (tmp_path / "ws" / "warehouse.duckdb").exists()


def test_a_password_is_never_recorded():
    assert _without_password("postgresql://app:s3cret@db:5432/cdp") == "postgresql://app@db:5432/cdp"
    assert _without_password("postgresql+psycopg://app@db/cdp?sslmode=require") == \
        "postgresql+psycopg://app@db/cdp?sslmode=require"
    assert _without_password("spark") == "spark"
