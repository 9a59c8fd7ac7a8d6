"""A process's first workspace keeps the objects alive then (the modules) out of the garbage
collector's full scans; later objects are collected as usual."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc, sys
from tessera.workspace import Workspace
assert gc.get_freeze_count() == 0
Workspace.init(sys.argv[1]).close()
frozen = gc.get_freeze_count()
assert frozen > 50_000, frozen
class Cycle:
    pass
a, b = Cycle(), Cycle()
a.other, b.other = b, a
del a, b
assert gc.collect() >= 2  # a cycle made after is still collected
Workspace.open(sys.argv[1]).close()
assert gc.get_freeze_count() == frozen  # once a process
print("ok")
"""


def test_the_first_workspace_of_a_process_settles_its_heap(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "ws")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
