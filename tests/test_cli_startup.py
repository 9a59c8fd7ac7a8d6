"""``tessera --help`` and every command's help load only the command line: the workspace, the
engines, the data libraries and the web server are imported by the commands that use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["duckdb", "ibis", "pandas", "pyarrow", "numpy", "scipy", "fastapi", "uvicorn", "httpx", "sqlalchemy",
         "pyspark", "tessera.workspace", "tessera.engine", "tessera.config.models"]


def loaded_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_command_line_loads_no_heavy_module():
    modules = set(loaded_after("import tessera.cli.main"))
    assert "tessera.cli.runs" in modules  # the probe saw the CLI itself
    assert [m for m in HEAVY if m in modules] == []


def test_help_lists_the_commands_without_loading_the_workspace():
    code = ("import sys\nfrom tessera.cli import main\nsys.argv = ['tessera', '--help']\n"
            "try:\n    main.main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code")
    modules = set(loaded_after(code))
    assert [m for m in HEAVY if m in modules] == []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    for args, shown in ((["--help"], "export-data"), (["run", "--help"], "--full"), (["users", "--help"], "create"),
                        (["setup", "--help"], "propose")):
        proc = subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], capture_output=True, text=True,
                              env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "Usage: tessera" in proc.stdout and shown in proc.stdout

