"""Identity resolution benchmark: N contact records from 3 sources, 20% duplicates, 3 identity keys.

Prints the import time, then the time of normalization + clustering + publication (the stage,
unify and publish steps of a run), rows/s, pairwise precision and recall against the
generator's truth, and the peak RSS of the process that ran the pipeline.

    .venv/bin/python bench/bench_identity.py --records 1000000
    .venv/bin/python bench/bench_identity.py --records 10000000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _pipeline(data_dir: str, ws_dir: str, queue) -> None:
    from tessera.workspace import Workspace

    ws = Workspace.init(ws_dir)
    ws.apply(Path(data_dir) / "workspace.yaml")
    t0 = time.perf_counter()
    result = ws.run()
    wall = time.perf_counter() - t0
    steps = {s["step"]: s["seconds"] for s in result.steps}
    lineage = ws.adapter.table("contacts__lineage")
    truth = ws.adapter.con.read_parquet(str(Path(data_dir) / "truth.parquet"))
    truth = truth.mutate(_tessera_record=truth.source.concat(":", truth.record_key.cast("string")))
    joined = lineage.join(truth, "_tessera_record")

    def pairs(t, by):
        g = t.group_by(by).agg(n=t.count())
        return int(ws.adapter.execute((g.n * (g.n - 1) / 2).sum()) or 0)

    predicted = pairs(joined, ["tessera_id"])
    actual = pairs(joined, ["person_id"])
    tp = pairs(joined, ["tessera_id", "person_id"])
    records = result.datasets["contacts"]["records"]
    ws.close()
    queue.put({"steps": steps, "wall": wall, "records": records, "unified": result.datasets["contacts"]["rows"],
               "precision": tp / predicted if predicted else 1.0, "recall": tp / actual if actual else 1.0})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()

    from tessera.demo.identity_bench import generate_identity_bench

    data_dir = args.data / f"identity_{args.records}_{args.seed}"
    if not (data_dir / "workspace.yaml").exists():
        t0 = time.perf_counter()
        generate_identity_bench(data_dir, n_records=args.records, seed=args.seed)
        print(f"generated {args.records:,} records in {time.perf_counter() - t0:.1f} s ({data_dir})")
    ws_dir = Path(tempfile.mkdtemp(prefix="tessera-bench-")) / "ws"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_pipeline, args=(str(data_dir), str(ws_dir), queue))
    proc.start()
    out = queue.get()
    proc.join()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    shutil.rmtree(ws_dir.parent, ignore_errors=True)
    s = out["steps"]
    unify = s.get("stage", 0) + s.get("unify", 0) + s.get("publish", 0)
    print(f"records: {out['records']:,}  unified: {out['unified']:,}")
    print(f"import (parse + archive): {s.get('import', 0):.2f} s")
    print(f"normalize + cluster + publish: {unify:.2f} s  ({out['records'] / unify:,.0f} rows/s)"
          f"  [stage {s.get('stage', 0):.2f} s, unify {s.get('unify', 0):.2f} s, publish {s.get('publish', 0):.2f} s]")
    print(f"whole run: {out['wall']:.2f} s")
    print(f"pairwise precision: {out['precision']:.6f}  recall: {out['recall']:.6f}")
    print(f"peak RSS: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
