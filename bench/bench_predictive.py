"""Micro benchmark of the predictive models (MBG/NBD, BG/NBD and Gamma-Gamma).

Simulates customers from MBG/NBD (the model of the predictive scores) and Gamma-Gamma with known
parameters, times the fits and the predictions of MBG/NBD (expected purchases in 90 days,
probability of being alive, 12-month discounted CLV, next purchase), and prints seconds, rows per
second, the fitted parameters and the peak resident memory. The BG/NBD fit on the same rows is
the baseline (ratio printed).

    python bench/bench_predictive.py [--rows 1000000] [--continuous] [--seed 1]

Times are in days. By default recency and T are whole days, as computed from order dates;
``--continuous`` keeps the simulated real-valued times (every row distinct, the worst case
for the fit, which groups identical rows).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from tessera.enrich.predictive import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel

TRUE_BG = {"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.5}  # rates per day
TRUE_GG = {"p": 6.0, "q": 4.0, "v": 15.0}


def simulate(n: int, *, horizon_days: int = 365, continuous: bool = False, seed: int = 1):
    """Vectorized MBG/NBD + Gamma-Gamma draw: frequency, recency, T (days) and average repeat value."""
    rng = np.random.default_rng(seed)
    T = rng.integers(1, horizon_days + 1, n).astype(np.float64)  # first order 1..365 days ago
    if continuous:
        T -= rng.random(n)
        T = np.maximum(T, 1e-3)
    lam = rng.gamma(TRUE_BG["r"], 1.0 / TRUE_BG["alpha"], n)
    p = rng.beta(TRUE_BG["a"], TRUE_BG["b"], n)
    life = rng.geometric(p) - 1  # repeat purchases made before dropping out (a chance after each, the first too)
    arrivals = rng.poisson(lam * T)  # repeat purchases a live customer would make in (0, T]
    x = np.minimum(life, arrivals)
    # time of the x-th of `arrivals` uniform arrival times: T * Beta(x, arrivals - x + 1)
    pos = x > 0
    tx = np.zeros(n)
    tx[pos] = T[pos] * rng.beta(x[pos], arrivals[pos] - x[pos] + 1)
    if not continuous:
        tx = np.where(pos, np.clip(np.ceil(tx), 1.0, T), 0.0)
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["v"], n)
    avg = np.zeros(n)
    avg[pos] = rng.gamma(TRUE_GG["p"] * x[pos], 1.0 / (nu[pos] * x[pos]))
    return x.astype(np.float64), tx, T, avg


def timed(label: str, rows: int, fn):
    t0 = time.perf_counter()
    out = fn()
    s = time.perf_counter() - t0
    print(f"{label:<34} {s:7.2f} s  {rows / s:12,.0f} rows/s")
    return out, s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--continuous", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n = args.rows

    x, tx, T, avg = simulate(n, continuous=args.continuous, seed=args.seed)
    print(f"{n:,} customers, {int((x > 0).sum()):,} with a repeat order, times in "
          f"{'continuous days' if args.continuous else 'whole days'}")

    bg, s_mbg = timed("MBG/NBD fit", n, lambda: ModifiedBetaGeoModel(time_unit_days=1).fit(x, tx, T))
    fitted = ", ".join(f"{k}={v:.4f} (true {TRUE_BG[k]})" for k, v in bg.params.items())
    print(f"  {bg.n_distinct_:,} distinct rows; {fitted}")
    old, s_bg = timed("BG/NBD fit (baseline)", n, lambda: BetaGeoModel(time_unit_days=1).fit(x, tx, T))
    print("  " + ", ".join(f"{k}={v:.4f}" for k, v in old.params.items()) + f"; MBG/NBD fit / BG/NBD fit: "
          f"{s_mbg / s_bg:.2f}x")
    rep = x > 0
    gg, _ = timed("Gamma-Gamma fit", int(rep.sum()), lambda: GammaGammaModel().fit(x, avg))
    print("  " + ", ".join(f"{k}={v:.4f} (true {TRUE_GG[k]})" for k, v in gg.params.items()))

    t0 = time.perf_counter()
    timed("expected purchases, 90 days", n, lambda: bg.expected_purchases(90, x, tx, T))
    timed("probability alive", n, lambda: bg.probability_alive(x, tx, T))
    timed("CLV 12 months (discounted)", n, lambda: gg.customer_lifetime_value(bg, x, tx, T, avg))
    timed("next purchase (median, days)", n, lambda: bg.expected_next_purchase_days(x, tx, T))
    total = time.perf_counter() - t0
    print(f"{'predictions, total':<34} {total:7.2f} s  {n / total:12,.0f} rows/s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
