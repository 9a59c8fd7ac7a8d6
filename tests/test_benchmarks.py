"""Every benchmark of bench/ runs as its docstring says, at a tiny size, and prints its figures.

A benchmark is only run by hand, so without this test one that no longer runs (a renamed
function, a score that needs a new semantic field) is found by the next person who measures.
The ones that start a PostgreSQL server run with ``--postgres``, the one that starts Spark with ``--spark``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# benchmark -> (tiny arguments, text its output must hold); {tmp} is a temporary folder
TINY = {
    "bench_normalize.py": (["--rows", "200"], "rows/s"),
    "bench_cli_startup.py": (["--repeat", "1"], "median"),
    "bench_predictive.py": (["--rows", "1000"], "rows/s"),
    "bench_scores.py": (["--customers", "100", "--orders", "500", "--events", "500", "--data", "{tmp}"],
                        "ratio tessera / bare"),
    "bench_identity.py": (["--records", "300", "--data", "{tmp}"], "peak RSS"),
    "bench_run_1m.py": (["--records", "300", "--data", "{tmp}"], "ratio tessera / bare"),
    "bench_import.py": (["--contacts", "300", "--orders", "600", "--data", "{tmp}"], "ratio tessera / bare"),
    "bench_collect.py": (["--events", "300", "--rate", "0", "--clients", "1", "--concurrency", "2"], "loaded"),
    "bench_db_import.py": (["--rows", "300"], "rows/s"),
    "bench_sync.py": (["--rows", "300"], "rows/s"),
    "bench_matching.py": (["--records", "300", "--data", "{tmp}"], "peak RSS"),
    "bench_setup.py": (["--rows", "2000"], "rows/s"),
    "bench_segments.py": (["--contacts", "500", "--events", "2000", "--repeat", "2"], "RSS"),
    "bench_api.py": (["--records", "500", "--idle-seconds", "1", "--busy-seconds", "2", "--readers", "2",
                      "--rate", "100", "--data", "{tmp}"], "peak RSS"),
    "bench_api_data.py": (["--records", "500", "--requests", "5", "--data", "{tmp}"], "peak RSS"),
    "bench_reads.py": (["--make", "{tmp}/ws", "--records", "300", "--data", "{tmp}", "--readers", "1,2",
                        "--seconds", "1", "--during-run", "--runs", "2", "--timeline", "1", "--bare"], "the run 2: succeeded"),
    "bench_web.py": (["--size", "300", "--repeat", "2"], "peak RSS"),
    "bench_privacy.py": (["--contacts", "300"], "peak RSS"),
    "bench_analytics.py": (["--customers", "300", "--orders", "1500", "--repeat", "1"], "peak RSS"),
    "bench_spark.py": (["--records", "300", "--runs", "1", "--data", "{tmp}"], "ratio spark / duckdb"),
    "bench_spark_profile.py": (["--size", "100", "--runs", "1", "--data", "{tmp}"], "adapter calls of the last run"),
}
NEEDS_POSTGRES = {"bench_db_import.py", "bench_sync.py"}
NEEDS_SPARK = {"bench_spark.py", "bench_spark_profile.py"}  # starts a Spark session of its own (with the tests' Spark settings)


def test_every_benchmark_is_listed():
    assert sorted(p.name for p in (ROOT / "bench").glob("bench_*.py")) == sorted(TINY)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.postgres] if n in NEEDS_POSTGRES else [pytest.mark.spark] if n in NEEDS_SPARK
                 else []) for n in TINY
])
def test_benchmark_runs_at_a_tiny_size(name, tmp_path):
    args, expected = TINY[name]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / name), *args], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert expected in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr
