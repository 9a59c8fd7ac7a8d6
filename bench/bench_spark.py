"""The same ``tessera run`` on Spark (local mode) and on DuckDB, in one invocation.

Two workloads:

* the demo (default): the demo company of ``tessera demo`` (``--size`` people), applied to a fresh
  workspace and run, on each engine;
* ``--records N``: N contact records from three Parquet sources, 20% duplicates, three identity
  keys (e-mail, phone, customer id in varied writings), as ``bench/bench_run_1m.py`` generates
  them: the points of the scaling curve.

Each engine runs in a fresh process of its own (its peak RSS is its own: the Python process and
its children, the JVM of Spark among them), alternately ``--rounds`` times (the best is kept).
Inside one process the workload runs ``--runs`` times on fresh workspaces: the first on a cold
JVM, the next ones on a warm one (the Spark session is started once per process, like a server
keeps it). Prints per engine and run: the time of the run (the session's start apart), its steps,
rows/s, the Spark jobs it took, peak RSS, the unified records; then the ratio Spark / DuckDB.

    .venv/bin/python bench/bench_spark.py --size 2000 --runs 2
    .venv/bin/python bench/bench_spark.py --records 1000000 --runs 1
    TESSERA_SPARK_DRIVER_MEMORY=6g .venv/bin/python bench/bench_spark.py --records 10000000 --engines spark

Spark takes its memory from ``--driver-memory`` (the JVM's heap; local mode runs every task in
the driver) and its shuffle partitions from ``--partitions``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peak_rss import PeakRSS, run_in_child  # noqa: E402
from rounds import best_of_rounds  # noqa: E402


def _spark_jobs(ws) -> int | None:
    """The Spark jobs the session has run so far (None on another engine)."""
    session = getattr(ws.adapter, "session", None)
    if session is None:
        return None
    return int(session.sparkContext._jsc.sc().statusStore().jobsList(None).size())


def _workload(kind: str, data_dir: Path, folder: Path) -> Path:
    """The workspace.yaml of the workload, its files written or linked under ``folder``."""
    if kind == "demo":
        return data_dir / "workspace.yaml"
    from bench_run_1m import _files

    _files(data_dir, folder)
    return folder / "workspace.yaml"


def _side(engine: str, kind: str, data_dir: str, tmp: str, runs: int, queue) -> None:
    try:
        with PeakRSS(0.05, tree=True) as rss:  # the Python process and its children, Spark's JVM
            from tessera.workspace import Workspace  # the engine and the pipeline's modules

            out = []
            start = None
            for i in range(runs):
                base = Path(tmp) / f"run{i}"
                config = _workload(kind, Path(data_dir), base / "data")
                t0 = time.perf_counter()
                ws = Workspace.init(base / "ws", warehouse=engine)  # starts the Spark session, once
                if start is None:
                    start = time.perf_counter() - t0
                ws.apply(config)
                jobs0 = _spark_jobs(ws)
                t1, c1 = time.perf_counter(), time.process_time()
                result = ws.run()
                wall, cpu = time.perf_counter() - t1, time.process_time() - c1
                jobs = None if jobs0 is None else _spark_jobs(ws) - jobs0
                datasets = {k: {c: v.get(c) for c in ("rows", "records")} for k, v in result.datasets.items()}
                records = sum(v.get("records") or 0 for v in result.datasets.values())
                out.append({"wall": wall, "cpu": cpu, "jobs": jobs, "records": records, "datasets": datasets,
                            "steps": {s["step"]: s["seconds"] for s in result.steps}, "peak": rss.peak,
                            "jvm": rss.children})
                ws.close()
                shutil.rmtree(base, ignore_errors=True)
        queue.put({"start": start, "runs": out, "peak": rss.peak, "jvm": rss.children})
    except Exception:  # noqa: BLE001 - shown by the parent
        queue.put({"error": traceback.format_exc()})


def _data(args) -> tuple[str, Path]:
    if args.records:
        from tessera.demo.identity_bench import generate_identity_bench

        data_dir = args.data / f"identity_{args.records}_{args.seed}"
        if not (data_dir / "workspace.yaml").exists():
            t0 = time.perf_counter()
            generate_identity_bench(data_dir, n_records=args.records, seed=args.seed)
            print(f"generated {args.records:,} records in {time.perf_counter() - t0:.1f} s ({data_dir})")
        return "records", data_dir
    from tessera.demo.generator import generate

    data_dir = args.data / f"demo_{args.size}_{args.seed}"
    if not (data_dir / "workspace.yaml").exists():
        generate(data_dir, size=args.size, seed=args.seed)
    return "demo", data_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="people of the demo company")
    ap.add_argument("--records", type=int, default=0, help="contact records of the scaling workload (0: the demo)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (demo 7, records 1)")
    ap.add_argument("--runs", type=int, default=2, help="runs per process on fresh workspaces (1st: cold JVM)")
    ap.add_argument("--rounds", type=int, default=1, help="alternated processes of each engine (the best is kept)")
    ap.add_argument("--engines", default="duckdb,spark", help="engines to run, in order")
    ap.add_argument("--driver-memory", default=os.environ.get("TESSERA_SPARK_DRIVER_MEMORY", "4g"))
    ap.add_argument("--partitions", default=os.environ.get("TESSERA_SPARK_PARTITIONS"),
                    help="Spark's shuffle partitions (default: Tessera's)")
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = 1 if args.records else 7
    os.environ["TESSERA_SPARK_DRIVER_MEMORY"] = args.driver_memory
    if args.partitions:
        os.environ["TESSERA_SPARK_PARTITIONS"] = str(args.partitions)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    kind, data_dir = _data(args)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    best = best_of_rounds(args.rounds, {
        engine: lambda tmp, engine=engine: run_in_child(_side, engine, kind, str(data_dir), str(tmp), args.runs)
        for engine in engines}, wall=lambda out: out["runs"][-1]["wall"])  # the last run: the warmest

    what = f"{args.records:,} contact records" if args.records else f"the demo company of {args.size:,} people"
    print(f"workload: {what}; Spark driver memory {args.driver_memory}, "
          f"partitions {os.environ.get('TESSERA_SPARK_PARTITIONS', 'default')}")
    for engine, out in best.items():
        print(f"{engine}: session/connection start {out['start']:.2f} s, peak RSS {out['peak'] / 2**20:,.0f} MB"
              + (f" (its child processes, Spark's JVM: {out['jvm'] / 2**20:,.0f} MB)" if engine == "spark" else ""))
        for i, r in enumerate(out["runs"]):
            steps = ", ".join(f"{k} {v:.2f} s" for k, v in r["steps"].items())
            jobs = f", {r['jobs']} Spark jobs" if r["jobs"] is not None else ""
            print(f"  run {i + 1} ({'cold' if i == 0 else 'warm'}): {r['wall']:.2f} s ({r['cpu']:.2f} s CPU of "
                  f"Python){jobs} [{steps}], {r['records'] / r['wall']:,.0f} rows/s, "
                  f"unified {sum(d['rows'] or 0 for d in r['datasets'].values()):,}")
    if "spark" in best and "duckdb" in best:
        s, d = best["spark"], best["duckdb"]
        same = all(a["datasets"] == b["datasets"] for a, b in zip(s["runs"], d["runs"]))
        for i, (a, b) in enumerate(zip(s["runs"], d["runs"])):
            print(f"ratio spark / duckdb, run {i + 1}: time {a['wall'] / b['wall']:.2f}x, "
                  f"peak RSS {s['peak'] / d['peak']:.2f}x")
        print(f"same counts on both engines: {'yes' if same else 'NO'}")
        if not same:
            print(f"  spark: {s['runs'][0]['datasets']}\n  duckdb: {d['runs'][0]['datasets']}")
            sys.exit(1)


if __name__ == "__main__":
    main()
