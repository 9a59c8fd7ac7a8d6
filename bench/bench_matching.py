"""Probabilistic matching benchmark: N contact records with typos, variants, households and twins.

Runs the same files three times in one child process, each on a fresh DuckDB workspace:

* ``bare``: exact keys, guard rails off (``allow_conflicts: true``): the code path of a dataset
  before guards and matching existed, the baseline;
* ``default``: exact keys with the default guard rails, no ``matching:`` block;
* ``matching``: the same plus the ``matching:`` block (Fellegi-Sunter, EM, in the engine).

Prints, for each, the run time (its unify step, and the CPU time of the process: on a
shared machine the wall time also counts the waits for a core), the ratio to the bare run, the pairwise
precision, recall and F1 against the generator's truth, and the process's peak RSS.
Targets at 100k records: F1 >= 0.99 with matching, in <= 10 s.

    .venv/bin/python bench/bench_matching.py --records 100000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peak_rss import PeakRSS, run_in_child

VARIANTS = ("bare", "default", "matching")


def _config(data_dir: Path, variant: str) -> str:
    from tessera.demo.matching_bench import MATCHING_BLOCK

    yaml = (data_dir / "workspace.yaml").read_text()
    if variant != "matching":
        yaml = yaml.replace(MATCHING_BLOCK, "")
    if variant == "bare":
        yaml = yaml.replace("{column: phone}", "{column: phone, allow_conflicts: true}")
    return yaml


def _runs(data_dir: str, queue) -> None:
    try:
        import csv

        from tessera.demo.matching_bench import pairwise_scores
        from tessera.workspace import Workspace

        data = Path(data_dir)
        with open(data / "truth.csv", encoding="utf-8") as fh:
            truth = {r["record"]: int(r["person"]) for r in csv.DictReader(fh)}
        out = {}
        with PeakRSS() as rss:
            for variant in VARIANTS:
                base = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
                cfg = data / f"workspace_{variant}.yaml"
                cfg.write_text(_config(data, variant))
                ws = Workspace.init(base / "ws")
                ws.apply(cfg)
                ws.import_sources()  # files are imported once: the runs below time stage, unify, publish
                t0, c0 = time.perf_counter(), time.process_time()
                result = ws.run()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                steps = {s["step"]: s["seconds"] for s in result.steps}
                lin = ws.adapter.to_arrow(ws.table("contacts__lineage").select("_tessera_record", "tessera_id"))
                clusters = dict(zip(lin.column(0).to_pylist(), lin.column(1).to_pylist()))
                out[variant] = {"wall": wall, "cpu": cpu, "steps": steps, "counts": result.datasets["contacts"],
                                "scores": pairwise_scores(clusters, truth)}
                ws.close()
                shutil.rmtree(base, ignore_errors=True)
        out["peak_mb"] = rss.peak / 2**20
        queue.put(out)
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        import traceback

        queue.put({"error": f"{exc}\n{traceback.format_exc()}"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    args = ap.parse_args()

    from tessera.demo.matching_bench import generate_matching_set

    data_dir = args.data / f"matching_{args.records}_{args.seed}"
    if not (data_dir / "workspace.yaml").exists():
        t0 = time.perf_counter()
        generate_matching_set(data_dir, records=args.records, seed=args.seed)
        print(f"generated {args.records:,} records in {time.perf_counter() - t0:.1f} s ({data_dir})")
    out = run_in_child(_runs, str(data_dir))
    bare = out["bare"]["wall"]
    print(f"records: {args.records:,}")
    for variant in VARIANTS:
        r = out[variant]
        s, c = r["scores"], r["counts"]
        extra = ""
        if "candidate_pairs" in c:
            extra = (f"  [{c['candidate_pairs']:,} candidate pairs, {c['matched_pairs']:,} merged, "
                     f"{c['review_pairs']:,} to review, {c['refused_pairs']:,} refused]")
        print(f"{variant:>9}: run {r['wall']:6.2f} s (unify {r['steps'].get('unify', 0):5.2f} s, "
              f"CPU {r['cpu']:6.2f} s)  "
              f"x{r['wall'] / bare:4.2f} of bare  unified {c['rows']:,}  "
              f"precision {s['precision']:.4f} recall {s['recall']:.4f} F1 {s['f1']:.4f}"
              f"  guards refused {c.get('refused_by_guards', 0):,}{extra}")
    m = out["matching"]
    ok_f1, ok_time = m["scores"]["f1"] >= 0.99, m["wall"] <= 10
    print(f"targets: F1 >= 0.99 with matching: {'met' if ok_f1 else 'MISSED'} ({m['scores']['f1']:.4f}); "
          f"run <= 10 s: {'met' if ok_time else 'MISSED'} ({m['wall']:.2f} s)")
    print(f"peak RSS: {out['peak_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
