"""Where a run of the demo on Spark spends its jobs and its time: each adapter call's Spark jobs
and seconds, by the pipeline line that made it, and the CPU of each of the JVM's threads.

    .venv/bin/python bench/bench_spark_profile.py --size 2000 --runs 2
    .venv/bin/python bench/bench_spark_profile.py --size 2000 --order ABBAABBAABBA --off narrows_in_place
    .venv/bin/python bench/bench_spark_profile.py --size 2000 --runs 5 --jfr 2

With ``--jfr K``, the runs after the first K are recorded by the JVM's Flight Recorder (``jcmd``
``JFR.start``; stacks sampled every 10-20 ms): its samples are counted by adapter call, split
into the thread running Python's queries (parsing, analysis, planning, a write's commit) and the
tasks (the rows themselves, the Parquet writes), with the tasks' innermost Spark frames.

With ``--order``, one run per letter in this one JVM: ``A`` the adapter as it is, ``B`` with the
capabilities of ``--off`` (class flags of SparkAdapter, comma-separated) turned off: a change
measured against its absence on the same warm JVM, alternated (the JIT keeps warming for several runs).

Runs the demo ``--runs`` times in this process on fresh workspaces (the session started once, as
``bench/bench_spark.py`` does) and prints for each run its time, the JVM's CPU and jobs, the CPU
of the JVM's threads by name (JIT compilers, the thread running Python's queries, tasks, GC),
then for the last run the adapter calls, largest first (where a run's independent queries run side
by side, ``SparkAdapter.runs_side_by_side``, a call's jobs and seconds include those of the calls
beside it: ``--off runs_side_by_side`` for each call's own). Linux only (reads ``/proc``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CALLS = ("create_table", "create_table_hinted", "append", "append_query", "count", "any_true", "to_arrow",
         "execute", "export", "to_batches", "delete_matching", "narrow_table", "publish", "fetch")


def _jvm_threads(pid: int) -> dict[str, tuple[str, float]]:
    """Thread id -> (name with digits folded, CPU seconds) of process ``pid``."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            st = open(f"/proc/{pid}/task/{t}/stat").read()
        except OSError:
            continue
        name = re.sub(r"[#\d]+", "N", st[st.index("(") + 1:st.rindex(")")])
        fields = st[st.rindex(")") + 2:].split()
        out[t] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def _print_samples(recording: Path, spans: list) -> None:
    """The Flight Recorder's execution samples of ``recording`` by adapter call (``spans``: start,
    end, call): those of the thread running Python's queries, of the tasks, of other threads."""
    import bisect
    import datetime as dt

    text = subprocess.run(["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", "64", str(recording)],
                          check=True, capture_output=True, text=True).stdout
    spans.sort()
    starts = [s[0] for s in spans]
    day = dt.datetime.fromtimestamp(starts[0], dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    per: dict = defaultdict(lambda: defaultdict(int))
    inner: dict = defaultdict(lambda: defaultdict(int))
    for sample in text.split("jdk.ExecutionSample {")[1:]:
        h, m, sec = re.search(r"startTime = (\d+):(\d+):([\d.]+)", sample).groups()
        at = day.timestamp() + int(h) * 3600 + int(m) * 60 + float(sec)
        thread = re.search(r'sampledThread = "([^"]*)"', sample).group(1)
        kind = "queries" if thread.startswith("Thread-") else "tasks" if thread.startswith("Executor task") else "other"
        i = bisect.bisect_right(starts, at) - 1
        call = spans[i][2] if i >= 0 and at <= spans[i][1] else ("(between calls)", "")
        per[call][kind] += 1
        if kind == "tasks":
            frames = re.findall(r"^\s+(org\.apache\.(?:spark|parquet)\.[\w.$]+)\.[\w$]+\(", sample, re.M)
            if frames:
                inner[call][frames[0].rsplit(".", 1)[-1]] += 1
    total: dict = defaultdict(int)
    for c in per.values():
        for k, v in c.items():
            total[k] += v
    print(f"JFR samples of the recorded runs: {dict(total)} (queries: the thread running Python's queries)")
    for call, c in sorted(per.items(), key=lambda kv: -sum(kv[1].values()))[:30]:
        top = ", ".join(f"{k} {v}" for k, v in sorted(inner[call].items(), key=lambda kv: -kv[1])[:3])
        print(f"  {c['queries']:5d} queries {c['tasks']:5d} tasks {c['other']:4d} other  {call[0]:20s} {call[1]}"
              + (f"  [tasks in: {top}]" if top else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="people of the demo company")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    ap.add_argument("--order", default=None, help="A (as it is) and B (--off turned off) per run, e.g. ABBA")
    ap.add_argument("--off", default="", help="SparkAdapter flags turned off in the B runs, comma-separated")
    ap.add_argument("--jfr", type=int, default=None, metavar="K",
                    help="record the runs after the first K with the JVM's Flight Recorder; samples by adapter call")
    args = ap.parse_args()
    if args.order is not None and set(args.order) - {"A", "B"}:
        ap.error(f"--order {args.order}: letters A (as it is) and B (--off turned off) only, e.g. ABBA")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TESSERA_SPARK_DRIVER_MEMORY", "4g")

    import psutil

    from tessera.demo.generator import generate
    from tessera.engine import spark
    from tessera.workspace import Workspace

    data = args.data / f"demo_{args.size}_{args.seed}"
    if not (data / "workspace.yaml").exists():
        generate(data, size=args.size, seed=args.seed)

    stats: dict = defaultdict(lambda: [0, 0, 0.0])
    depth = threading.local()  # (per thread: a run's independent queries may run side by side)
    spans: list = []  # (start, end, call) of each adapter call, for --jfr

    def jobs(adapter) -> int:
        return int(adapter.session.sparkContext._jsc.sc().statusStore().jobsList(None).size())

    def caller() -> str:
        frames = [f for f in traceback.extract_stack()[:-2]
                  if f"{os.sep}tessera{os.sep}" in f.filename and f"{os.sep}engine{os.sep}" not in f.filename]
        return " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-2:]))

    def wrap(name):
        orig = getattr(spark.SparkAdapter, name)

        def call(self, *a, **k):
            if getattr(depth, "n", 0):  # a call inside another: counted in the outer one
                return orig(self, *a, **k)
            depth.n = 1
            j0, t0, w0 = jobs(self), time.perf_counter(), time.time()
            try:
                return orig(self, *a, **k)
            finally:
                depth.n = 0
                spans.append((w0, time.time(), (name, caller())))
                s = stats[(name, caller())]
                s[0] += 1
                s[1] += jobs(self) - j0
                s[2] += time.perf_counter() - t0
        setattr(spark.SparkAdapter, name, call)

    for name in CALLS:
        if hasattr(spark.SparkAdapter, name):
            wrap(name)

    tmp = Path(tempfile.mkdtemp(prefix="tessera-spark-profile-"))
    try:
        order = args.order or "A" * args.runs
        flags = [f for f in args.off.split(",") if f]
        unknown = [f for f in flags if not isinstance(getattr(spark.SparkAdapter, f, None), bool)]
        if unknown:
            ap.error(f"--off {','.join(unknown)}: not a flag of SparkAdapter (e.g. narrows_in_place)")
        own = {f: getattr(spark.SparkAdapter, f) for f in flags}
        for i, letter in enumerate(order):
            for flag, value in own.items():
                setattr(spark.SparkAdapter, flag, value if letter == "A" else False)
            base = tmp / f"run{i}"
            ws = Workspace.init(base / "ws", warehouse="spark")
            ws.apply(data / "workspace.yaml")
            jvm = next(c for c in psutil.Process().children(recursive=True) if "java" in c.name())
            stats.clear()
            if args.jfr is not None and i == args.jfr:
                recording = tmp / "runs.jfr"
                subprocess.run(["jcmd", str(jvm.pid), "JFR.start", "name=tessera", "settings=profile",
                                f"filename={recording}"], check=True, capture_output=True)
                spans.clear()
            before, j0, c0 = _jvm_threads(jvm.pid), jobs(ws.adapter), time.process_time()
            t0 = time.perf_counter()
            result = ws.run()
            wall, py = time.perf_counter() - t0, time.process_time() - c0
            after = _jvm_threads(jvm.pid)
            threads: dict[str, float] = defaultdict(float)
            for t, (name, cpu) in after.items():
                threads[name] += cpu - before.get(t, (name, 0.0))[1]
            steps = ", ".join(f"{s['step']} {s['seconds']:.2f} s" for s in result.steps)
            label = f" ({letter})" if args.order else ""
            print(f"run {i + 1}{label}: {wall:.1f} s, JVM CPU {sum(threads.values()):.1f} s, Python CPU {py:.1f} s, "
                  f"{jobs(ws.adapter) - j0} Spark jobs [{steps}]")
            print("  JVM threads' CPU: " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                                     sorted(threads.items(), key=lambda kv: -kv[1]) if v >= 0.1))
            ws.close()
            shutil.rmtree(base, ignore_errors=True)
        if args.jfr is not None and args.jfr < len(order):
            subprocess.run(["jcmd", str(jvm.pid), "JFR.stop", "name=tessera"], check=True, capture_output=True)
            _print_samples(tmp / "runs.jfr", spans)
        print("adapter calls of the last run (seconds, Spark jobs, calls, call, line < its caller):")
        for (name, where), (n, j, t) in sorted(stats.items(), key=lambda kv: -kv[1][2]):
            if t >= 0.05 or j:
                print(f"  {t:6.2f} s {j:3d} jobs {n:3d}x {name:20s} {where}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
