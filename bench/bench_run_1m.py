"""A whole ``tessera run`` against a bare DuckDB + SciPy script on the same contacts.

N contact records from three Parquet sources (20% duplicates, three identity keys: e-mail, phone,
customer id, in varied writings; see :mod:`tessera.demo.identity_bench`). Each side runs in a fresh
process of its own (its peak RSS is its own), alternately ``--rounds`` times:

* **tessera**: ``Workspace.init`` + ``apply``, then ``run()`` (import, stage, unify, publish),
  then a second ``run()`` with nothing new (kept as published), then a run after a file of
  ``--delta`` x N new or changed records (incremental);
* **bare**: one DuckDB connection reads the three files, normalizes the keys (trim + lower-case
  e-mails, E.164 phones, upper-case ids), builds the key table, numbers the values, labels the
  connected components with SciPy and writes the identity map (record -> cluster) to a table.

Prints each side's time and peak RSS, the ratios, and the number of unified records of both.

    .venv/bin/python bench/bench_run_1m.py --records 1000000
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

from bare_identity import components  # noqa: E402
from peak_rss import PeakRSS, run_in_child  # noqa: E402
from rounds import best_of_rounds  # noqa: E402

SOURCES = ("src_a", "src_b", "src_c")


def _files(data_dir: Path, folder: Path) -> None:
    """The benchmark's files linked (or copied) into ``folder``, with a configuration that reads every
    ``src_a*.parquet`` (so that a later file adds to the first)."""
    import yaml

    folder.mkdir(parents=True)
    for name in SOURCES:
        try:  # a hard link (a local folder does not follow symbolic links out of it)
            os.link(data_dir / f"{name}.parquet", folder / f"{name}.parquet")
        except OSError:
            shutil.copyfile(data_dir / f"{name}.parquet", folder / f"{name}.parquet")
    config = yaml.safe_load((data_dir / "workspace.yaml").read_text())
    for src in config["sources"]:
        src["pattern"] = src["pattern"].replace(".parquet", "*.parquet")
    (folder / "workspace.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _delta(folder: Path, share: float) -> int:
    """A file of ``share`` x the records: half of them changed records of src_a (a new phone
    number), half new records carrying the e-mail of a src_b record."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    a = pq.read_table(folder / "src_a.parquet")
    b = pq.read_table(folder / "src_b.parquet")
    n = max(2, int((a.num_rows + b.num_rows) / 0.8 * share)) // 2
    changed = a.slice(0, n)
    changed = changed.set_column(changed.schema.get_field_index("phone"), "phone",
                                 pc.binary_join_element_wise("+3361", pc.cast(pa.array(range(n)), pa.string()), ""))
    new = a.slice(n, n)
    new = new.set_column(0, "record_id", pc.binary_join_element_wise("NEW", new.column("record_id"), ""))
    new = new.set_column(new.schema.get_field_index("email"), "email", b.column("email").slice(0, n))
    pq.write_table(pa.concat_tables([changed, new]), folder / "src_a_delta.parquet")
    return 2 * n


def _tessera(data_dir: str, ws_dir: str, share: float, queue) -> None:
    try:
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            from tessera.workspace import Workspace  # loads the engine and the pipeline's modules

            folder = Path(ws_dir).parent / "data"
            _files(Path(data_dir), folder)
            ws = Workspace.init(ws_dir)
            ws.apply(folder / "workspace.yaml")
            setup = time.perf_counter() - t0
            t1, c1 = time.perf_counter(), time.process_time()
            result = ws.run()
            wall, cpu = time.perf_counter() - t1, time.process_time() - c1
            t2 = time.perf_counter()
            again = ws.run()
            noop = time.perf_counter() - t2
            out = {}
            if share:
                delta = _delta(folder, share)
                t3, c3 = time.perf_counter(), time.process_time()
                inc = ws.run()
                out = {"delta": delta, "incremental": time.perf_counter() - t3, "inc_cpu": time.process_time() - c3,
                       "inc_steps": {s["step"]: s["seconds"] for s in inc.steps},
                       "resolved_again": inc.datasets["contacts"].get("resolved_again") or 0}
            ws.close()
        queue.put({"wall": wall, "cpu": cpu, "setup": setup, "noop": noop, "unchanged": again.unchanged,
                   "steps": {s["step"]: s["seconds"] for s in result.steps},
                   "unified": result.datasets["contacts"]["rows"], "peak": rss.peak, **out})
    except Exception:  # noqa: BLE001 - shown by the parent
        queue.put({"error": traceback.format_exc()})


BARE_SQL = """
CREATE TABLE recs AS
SELECT source || ':' || record_id AS rec,
       nullif(lower(trim(email)), '') AS email,
       CASE WHEN length(d) = 9 THEN '+33' || d END AS phone,
       nullif(upper(trim(customer_id)), '') AS customer_id
FROM (
  SELECT *, ltrim(CASE WHEN starts_with(p, '0033') THEN p[5:] WHEN starts_with(p, '33') THEN p[3:] ELSE p END,
                  '0') AS d
  FROM (SELECT *, regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g') AS p FROM ({union}))
);
CREATE TABLE recs_idx AS SELECT row_number() OVER (ORDER BY rec) - 1 AS idx, rec FROM recs;
CREATE TABLE keys AS
  SELECT r.idx, 0 AS level, x.email AS value FROM recs x JOIN recs_idx r USING (rec) WHERE x.email IS NOT NULL
  UNION ALL SELECT r.idx, 1, x.phone FROM recs x JOIN recs_idx r USING (rec) WHERE x.phone IS NOT NULL
  UNION ALL SELECT r.idx, 2, x.customer_id FROM recs x JOIN recs_idx r USING (rec) WHERE x.customer_id IS NOT NULL;
CREATE TABLE vals AS SELECT level, value, row_number() OVER () - 1 AS vidx FROM (SELECT DISTINCT level, value FROM keys);
"""


def _bare(data_dir: str, db_dir: str, queue) -> None:
    try:
        with PeakRSS() as rss:
            import duckdb
            import numpy as np
            import pyarrow as pa
            import scipy.sparse.csgraph  # noqa: F401 - loaded before the clock starts, as on the tessera side

            t0, c0 = time.perf_counter(), time.process_time()  # like the tessera side: modules loaded before
            con = duckdb.connect(str(Path(db_dir) / "bare.duckdb"))
            union = " UNION ALL ".join(
                f"SELECT '{s}' AS source, CAST(record_id AS VARCHAR) AS record_id, email, phone, "
                f"CAST(customer_id AS VARCHAR) AS customer_id FROM read_parquet('{Path(data_dir) / (s + '.parquet')}')"
                for s in SOURCES)
            for statement in BARE_SQL.format(union=union).split(";"):
                if statement.strip():
                    con.execute(statement)
            n_records = con.execute("SELECT count(*) FROM recs_idx").fetchone()[0]
            labels = components(con, n_records)
            comp = pa.table({"idx": np.arange(n_records, dtype=np.int64), "cluster": labels})
            con.register("comp", comp)
            con.execute("CREATE TABLE identity_map AS SELECT r.rec, c.cluster FROM recs_idx r JOIN comp c USING (idx)")
            unified = con.execute("SELECT count(DISTINCT cluster) FROM identity_map").fetchone()[0]
            con.close()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        queue.put({"wall": wall, "cpu": cpu, "unified": unified, "peak": rss.peak})
    except Exception:  # noqa: BLE001 - shown by the parent
        queue.put({"error": traceback.format_exc()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1, help="alternated runs of each side (the best is kept)")
    ap.add_argument("--data", type=Path, default=ROOT / ".bench")
    ap.add_argument("--delta", type=float, default=0.01,
                    help="share of new or changed records of the file added after the full run (0: none)")
    args = ap.parse_args()

    from tessera.demo.identity_bench import generate_identity_bench

    data_dir = args.data / f"identity_{args.records}_{args.seed}"
    if not (data_dir / "workspace.yaml").exists():
        t0 = time.perf_counter()
        generate_identity_bench(data_dir, n_records=args.records, seed=args.seed)
        print(f"generated {args.records:,} records in {time.perf_counter() - t0:.1f} s ({data_dir})")
    best = best_of_rounds(args.rounds, {
        "bare": lambda tmp: run_in_child(_bare, str(data_dir), str(tmp)),
        "tessera": lambda tmp: run_in_child(_tessera, str(data_dir), str(tmp / "ws"), args.delta),
    })
    t, b = best["tessera"], best["bare"]
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in t["steps"].items())
    print(f"records: {args.records:,}  unified: tessera {t['unified']:,}, bare {b['unified']:,}")
    print(f"bare DuckDB + SciPy script: {b['wall']:.2f} s ({b['cpu']:.2f} s CPU), peak RSS {b['peak'] / 2**20:,.0f} MB")
    print(f"tessera run: {t['wall']:.2f} s ({t['cpu']:.2f} s CPU) [{steps}], peak RSS {t['peak'] / 2**20:,.0f} MB "
          f"(workspace init + apply {t['setup']:.2f} s)")
    print(f"ratio tessera / bare: time {t['wall'] / b['wall']:.2f}x (CPU {t['cpu'] / b['cpu']:.2f}x), "
          f"peak RSS {t['peak'] / b['peak']:.2f}x")
    print(f"second run, nothing new: {t['noop']:.3f} s ({'kept as published' if t['unchanged'] else 'rebuilt'})")
    if args.delta:
        steps = ", ".join(f"{k} {v:.2f} s" for k, v in t["inc_steps"].items())
        print(f"run after a file of {t['delta']:,} new or changed records: {t['incremental']:.2f} s "
              f"({t['inc_cpu']:.2f} s CPU) [{steps}], {t['resolved_again']:,} records resolved again; "
              f"{t['incremental'] / t['wall']:.1%} of the full run's time ({t['inc_cpu'] / t['cpu']:.1%} of its CPU)")


if __name__ == "__main__":
    main()
