"""Splink 5 on the records of bench_matching.py (DuckDB), for the README's dependency table.

Splink is not a dependency of Tessera: run this where it is installed, after bench_matching.py
generated the data, e.g. ``pip install --target /tmp/splink --no-deps splink==5.0.0`` then
``PYTHONPATH=/tmp/splink .venv/bin/python bench/compare_splink.py .bench/matching_100000_7``.
Same blocking rules and comparisons as the ``matching:`` block of the generated workspace.
"""
import csv
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tessera.demo.matching_bench import pairwise_scores  # noqa: E402

data = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / ".bench" / "matching_100000_7")
frames = []
for src in ("crm", "shop"):
    df = pd.read_csv(f"{data}/{src}.csv", dtype=str, keep_default_na=False)
    df["unique_id"] = src + ":" + df["id"]
    frames.append(df)
df = pd.concat(frames)
for c in ("first_name", "last_name", "email"):
    df[c] = df[c].str.lower().str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii").replace("", None)
df["birth_date"] = df["birth_date"].replace("", None)
with open(f"{data}/truth.csv", encoding="utf-8") as fh:
    truth = {r["record"]: int(r["person"]) for r in csv.DictReader(fh)}
import splink.comparison_library as cl  # noqa: E402
from splink import DuckDBAPI, Linker, SettingsCreator, block_on  # noqa: E402

t0 = time.perf_counter(); c0 = time.process_time()
settings = SettingsCreator(
    link_type="dedupe_only",
    comparisons=[cl.LevenshteinAtThresholds("first_name", [1, 2]), cl.LevenshteinAtThresholds("last_name", [1, 2]),
                 cl.EmailComparison("email"), cl.DateOfBirthComparison("birth_date", input_is_string=True),
                 cl.ExactMatch("postal_code")],
    blocking_rules_to_generate_predictions=[block_on("first_name", "last_name", "postal_code"), block_on("last_name", "birth_date"),
                                            block_on("first_name", "birth_date"), block_on("birth_date", "postal_code")],
)
db = DuckDBAPI()
linker = Linker(db.register(df), settings)
linker.training.estimate_probability_two_random_records_match([block_on("email")], recall=0.7)
linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
linker.training.estimate_parameters_using_expectation_maximisation(block_on("first_name", "last_name", "postal_code"))
linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth_date"))
pred = linker.inference.predict(threshold_match_probability=0.99)
clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.99).as_pandas_dataframe()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
ids = dict(zip(clusters["unique_id"], clusters["cluster_id"]))
print(f"splink 5.0.0 (DuckDB): {wall:.2f} s wall, {cpu:.2f} s CPU, {pairwise_scores(ids, truth)}")
