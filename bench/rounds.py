"""The sides of a benchmark run alternately, the best run of each kept (shared by the benchmarks)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable


def best_of_rounds(rounds: int, sides: dict[str, Callable[[Path], dict]], *,
                   wall: Callable[[dict], float] = lambda out: out["wall"]) -> dict[str, dict]:
    """Run each of ``sides`` (a name, and a function of a fresh temporary folder, removed after it,
    that returns the run's measures) ``rounds`` times, one side after the other in each round (what
    the machine's load does falls on every side alike); per side, the run with the least ``wall``."""
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for name, side in sides.items():
            tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
            try:
                out = side(tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            if name not in best or wall(out) < wall(best[name]):
                best[name] = out
    return best
