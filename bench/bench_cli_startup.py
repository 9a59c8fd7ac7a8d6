"""Start-up time of the command line: ``tessera --help`` against a bare ``python -c pass``.

Runs both alternately ``--repeat`` times (the machine is shared: the median of alternated runs is
what compares) and prints the median and best wall time of each, the difference, and the ratio.

    .venv/bin/python bench/bench_cli_startup.py --repeat 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    commands = {"tessera --help": [sys.executable, "-m", "tessera.cli.main", "--help"],
                "tessera run --help": [sys.executable, "-m", "tessera.cli.main", "run", "--help"],
                "python -c pass": [sys.executable, "-c", "pass"]}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            times[name].append(timed(cmd, env))
    bare = statistics.median(times["python -c pass"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<20} median {med:.3f} s  best {min(ts):.3f} s  (+{med - bare:.3f} s over bare python, "
              f"ratio {med / bare:.1f}x)")


if __name__ == "__main__":
    main()
