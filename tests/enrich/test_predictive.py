"""BG/NBD, MBG/NBD and Gamma-Gamma models (tessera.enrich.predictive).

The published estimates are checked on the CDNOW sample of Fader, Hardie & Lee (2005), read
from the CSV files shipped by the registry package ``lifetimes==0.11.3`` (pinned in
requirements.lock). The package itself is never imported: only its data files are read. The
MBG/NBD reference figures were printed by that package's ModifiedBetaGeoFitter (see
test_mbgnbd_matches_lifetimes_on_cdnow).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln, gammaln, hyp2f1

from tessera.enrich.predictive import (
    DAYS_PER_MONTH,
    BetaGeoModel,
    GammaGammaModel,
    InsufficientHistoryError,
    ModifiedBetaGeoModel,
    PredictiveError,
    _BGData,
    _GGData,
    _MBGData,
    rfm_summary,
)
from tessera.errors import TesseraError


def _cdnow(name: str) -> pd.DataFrame:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("test data package lifetimes==0.11.3 is not installed (see requirements.lock)")
    return pd.read_csv(os.path.join(spec.submodule_search_locations[0], "datasets", name))


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return _cdnow("cdnow_customers_summary.csv")  # ID, frequency, recency, T (weeks)


@pytest.fixture(scope="module")
def cdnow_monetary() -> pd.DataFrame:
    return _cdnow("cdnow_customers_summary_with_transactions.csv")  # ID, x, t_x, T, zbar


@pytest.fixture(scope="module")
def bg_cdnow(cdnow) -> BetaGeoModel:
    return BetaGeoModel(time_unit_days=7).fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


@pytest.fixture(scope="module")
def mbg_cdnow(cdnow) -> ModifiedBetaGeoModel:
    return ModifiedBetaGeoModel(time_unit_days=7).fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def simulate(n, r, alpha, a, b, horizon, seed=0, modified=False):
    """Customers drawn from BG/NBD (MBG/NBD when `modified`: a drop-out chance right after the
    first purchase too): first purchase uniformly within `horizon` before the end."""
    rng = np.random.default_rng(seed)
    T = rng.uniform(0.5, horizon, n)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    life = rng.geometric(p) - int(modified)  # repeat purchases before drop-out
    arrivals = rng.poisson(lam * T)
    x = np.minimum(life, arrivals)
    tx = np.zeros(n)
    pos = x > 0
    tx[pos] = T[pos] * rng.beta(x[pos], arrivals[pos] - x[pos] + 1)
    return x.astype(float), tx, T


# --- published estimates ---------------------------------------------------------------------


def test_bgnbd_reproduces_published_cdnow_estimates(bg_cdnow, cdnow):
    assert len(cdnow) == 2357
    p = bg_cdnow.params
    assert (round(p["r"], 3), round(p["alpha"], 3), round(p["a"], 3), round(p["b"], 3)) == (0.243, 4.414, 0.793, 2.426)
    assert bg_cdnow.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)


def test_bgnbd_conditional_expectation_matches_paper(bg_cdnow):
    # Fader, Hardie & Lee (2005), section 5: x=2, t_x=30.43, T=38.86 -> 1.226 purchases in 39 weeks
    assert bg_cdnow.expected_purchases(39, [2], [30.43], [38.86])[0] == pytest.approx(1.226, abs=5e-4)


def test_gamma_gamma_reproduces_published_cdnow_estimates(cdnow_monetary):
    df = cdnow_monetary
    gg = GammaGammaModel().fit(df["x"], df["zbar"])
    assert gg.n_customers_ == 946
    p = gg.params
    # published: p=6.25, q=3.74, gamma=15.44; the maximum of the likelihood is at gamma=15.448
    assert (round(p["p"], 2), round(p["q"], 2)) == (6.25, 3.74)
    assert round(p["v"], 2) == 15.45 and abs(p["v"] - 15.44) < 0.01
    assert gg.log_likelihood_ == pytest.approx(-4055.92, abs=0.01)


def test_mbgnbd_matches_lifetimes_on_cdnow(mbg_cdnow, cdnow):
    # Reference: lifetimes 0.11.3, ModifiedBetaGeoFitter().fit(frequency, recency, T) on
    # cdnow_customers_summary.csv (default tol), then conditional_probability_alive and
    # conditional_expected_number_of_purchases_up_to_time(39, ...) for the customers below.
    p = mbg_cdnow.params
    ref = {"r": 0.5248377, "alpha": 6.1829885, "a": 0.8913563, "b": 1.6140000}
    for k, v in ref.items():
        assert p[k] == pytest.approx(v, rel=2e-6), (k, p)
    assert mbg_cdnow.log_likelihood_ == pytest.approx(-9582.13268, abs=1e-4)
    x, tx, T = np.array([0, 0, 0, 2, 7]), np.array([0, 0, 0, 30.43, 35.0]), np.array([0.0, 20.0, 70.0, 38.86, 38.0])
    np.testing.assert_allclose(mbg_cdnow.probability_alive(x, tx, T),
                               [0.64421975, 0.45914729, 0.32644296, 0.70612626, 0.85059739], rtol=1e-6)
    np.testing.assert_allclose(mbg_cdnow.expected_purchases(39, x, tx, T),
                               [1.18228380, 0.28853555, 0.08028398, 1.26267078, 4.39332304], rtol=1e-6)


def test_one_time_buyers_are_not_all_alive():
    # a hand-made summary in weeks: x, t_x, T and the number of such customers
    rows = np.array([(0, 0, 2, 40), (0, 0, 10, 40), (0, 0, 30, 40), (0, 0, 52, 40), (0, 0, 80, 60),
                     (1, 5, 20, 20), (1, 30, 60, 20), (2, 10, 50, 20), (3, 45, 50, 20), (4, 20, 70, 15),
                     (6, 48, 52, 15), (10, 75, 78, 10), (12, 37, 38, 5), (2, 40, 41, 20), (5, 15, 80, 15)], float)
    x, tx, T, w = rows.T
    model = ModifiedBetaGeoModel(time_unit_days=7, min_repeat_customers=100).fit(x, tx, T, weights=w)
    assert model.n_customers_ == 380 and model.n_distinct_ == 15
    old, recent, frequent = model.probability_alive([0, 0, 12], [0, 0, 37.5], [80, 1, 38])
    assert old < 0.1 < 0.5 < recent  # one order 80 weeks ago vs. one order last week
    assert frequent > 0.95  # 13 orders, the last one half a week ago
    ages = np.array([1.0, 5, 20, 52, 80, 200])
    assert np.all(np.diff(model.probability_alive(np.zeros(6), np.zeros(6), ages)) < 0)
    # BG/NBD, whatever its parameters, keeps every one-time buyer alive: the flaw MBG/NBD fixes
    bg = BetaGeoModel.from_params(**model.params)
    assert bg.probability_alive([0, 0], [0, 0], [80, 1]).tolist() == [1.0, 1.0]


def test_mbgnbd_formulas_by_hand():
    model = ModifiedBetaGeoModel.from_params(R, ALPHA, A, B)
    x, tx, T = np.array([0, 0, 1, 3, 7]), np.array([0, 0, 2.0, 10.0, 30.0]), np.array([0.0, 8.0, 5.0, 20.0, 31.0])
    odds = A / (B + x) * ((ALPHA + T) / (ALPHA + tx)) ** (R + x)
    alive = model.probability_alive(x, tx, T)
    np.testing.assert_allclose(alive, 1 / (1 + odds), rtol=1e-12)
    assert alive[0] == pytest.approx(B / (A + B))  # just bought once: survived the first drop-out chance
    for t in (0.5, 13.0, 200.0):
        z = t / (ALPHA + T + t)
        f = hyp2f1(R + x, B + x + 1, A + B + x, z)
        num = (A + B + x) / (A - 1) * (1 - ((ALPHA + T) / (ALPHA + T + t)) ** (R + x) * f)
        np.testing.assert_allclose(model.expected_purchases(t, x, tx, T), num / (1 + odds), rtol=1e-9)
    # likelihood: B(a, b+x+1)/B(a, b) G(r+x) alpha^r / G(r) [(alpha+T)^-(r+x) + a/(b+x) (alpha+t_x)^-(r+x)]
    w = np.array([1.0, 2.0, 1.0, 3.0, 1.0])
    lik = (np.exp(betaln(A, B + x + 1) - betaln(A, B) + gammaln(R + x) - gammaln(R)) * ALPHA**R
           * ((ALPHA + T) ** -(R + x) + A / (B + x) * (ALPHA + tx) ** -(R + x)))
    value, _ = _MBGData(x.astype(float), tx, T, w).negll(np.log([R, ALPHA, A, B]))
    assert value == pytest.approx(-np.dot(w, np.log(lik)) / w.sum(), rel=1e-12)


# --- hand-computable cases ---------------------------------------------------------------------

R, ALPHA, A, B = 0.5, 2.0, 1.5, 3.0


@pytest.fixture()
def bg() -> BetaGeoModel:
    return BetaGeoModel.from_params(R, ALPHA, A, B)


def test_probability_alive_by_hand(bg):
    expected = 1.0 / (1.0 + A / (B + 2 - 1) * ((ALPHA + 5) / (ALPHA + 3)) ** (R + 2))
    got = bg.probability_alive([0, 0, 2], [0, 0, 3], [1, 100, 5])
    assert got[:2].tolist() == [1.0, 1.0]  # no repeat purchase: drop-out has had no chance yet
    assert got[2] == pytest.approx(expected, rel=1e-12)


def test_expected_purchases_new_customer_is_unconditional_expectation(bg):
    # x = 0, T = 0 carries no information: eq. 10 reduces to eq. 9
    for t in (0.5, 3.0, 40.0):
        eq9 = (A + B - 1) / (A - 1) * (1 - (ALPHA / (ALPHA + t)) ** R * hyp2f1(R, B, A + B - 1, t / (ALPHA + t)))
        assert bg.expected_purchases(t, [0], [0], [0])[0] == pytest.approx(eq9, rel=1e-10)


@pytest.mark.parametrize("params", [(R, ALPHA, A, B), (0.243, 4.414, 0.793, 2.426)])
def test_expected_purchases_matches_eq10(params):
    r, alpha, a, b = params
    model = BetaGeoModel.from_params(r, alpha, a, b)
    x, tx, T, t = np.array([1, 3, 7, 0]), np.array([2.0, 10.0, 30.0, 0.0]), np.array([5.0, 20.0, 31.0, 8.0]), 13.0
    z = t / (alpha + T + t)
    f = hyp2f1(r + x, b + x, a + b + x - 1, z)
    num = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * f)
    den = 1 + (x > 0) * a / np.maximum(b + x - 1, 1e-9) * ((alpha + T) / (alpha + tx)) ** (r + x)
    np.testing.assert_allclose(model.expected_purchases(t, x, tx, T), num / den, rtol=1e-9)


def test_monotonicity(bg_cdnow):
    m = bg_cdnow
    T = np.linspace(30, 80, 11)
    alive = m.probability_alive(np.full(11, 3), np.full(11, 25.0), T)
    assert np.all(np.diff(alive) < 0)  # the longer the silence, the lower the chance
    tx = np.linspace(1, 38, 11)
    assert np.all(np.diff(m.probability_alive(np.full(11, 3), tx, np.full(11, 38.0))) > 0)
    e = [m.expected_purchases(t, [3], [25.0], [38.0])[0] for t in (1, 4, 13, 26, 52)]
    assert np.all(np.diff(e) > 0)
    # recent buyers (t_x = T): more purchases, more expected
    assert np.all(np.diff(m.expected_purchases(26, np.arange(1, 8), np.full(7, 38.0), np.full(7, 38.0))) > 0)
    assert np.all((alive > 0) & (alive <= 1))


@pytest.mark.parametrize("model_class", [BetaGeoModel, ModifiedBetaGeoModel])
def test_next_purchase_days(model_class):
    model = model_class.from_params(R, ALPHA, A, B, time_unit_days=7)
    x, tx, T = np.array([0, 2, 2, 5]), np.array([0, 3, 4.9, 1]), np.array([5.0, 5, 5, 60])
    alive = model.probability_alive(x, tx, T)
    days = model.expected_next_purchase_days(x, tx, T)
    assert alive[3] < 0.5 and np.isnan(days[3])  # more likely gone than not: no date
    t = days[:3] / 7
    reached = alive[:3] * (1 - ((ALPHA + T[:3]) / (ALPHA + T[:3] + t)) ** (R + x[:3]))
    np.testing.assert_allclose(reached, 0.5, rtol=1e-10)
    assert days[2] < days[1]  # the more recent buyer comes back sooner
    assert model.expected_next_purchase_days(x[:1], tx[:1], T[:1], probability=0.51)[0] > days[0]
    with pytest.raises(PredictiveError):
        model.expected_next_purchase_days(x, tx, T, probability=1.0)


def test_gamma_gamma_conditional_average_and_clv(bg):
    gg = GammaGammaModel.from_params(6.0, 4.0, 15.0)
    avg = gg.conditional_expected_average_profit([0, 2, 10], [99.0, 20.0, 20.0])
    assert avg[0] == pytest.approx(6.0 * 15.0 / 3.0)  # population mean
    assert avg[1] == pytest.approx((6 * 15 + 6 * 2 * 20) / (6 * 2 + 4 - 1))
    assert avg[1] < avg[2] < 20.0 or avg[1] > avg[2] > 20.0  # shrunk towards the mean, less with more data

    x, tx, T, m = np.array([0, 2, 6]), np.array([0, 3, 9.0]), np.array([4.0, 5, 10]), np.array([0, 20.0, 35])
    month = DAYS_PER_MONTH  # the model's unit is the day
    e1 = bg.expected_purchases(month, x, tx, T)
    e2 = bg.expected_purchases(2 * month, x, tx, T)
    value = gg.conditional_expected_average_profit(x, m)
    np.testing.assert_allclose(gg.customer_lifetime_value(bg, x, tx, T, m, months=1, discount_rate_monthly=0.0),
                               e1 * value, rtol=1e-10)
    np.testing.assert_allclose(gg.customer_lifetime_value(bg, x, tx, T, m, months=2, discount_rate_monthly=0.01),
                               (e1 / 1.01 + (e2 - e1) / 1.01**2) * value, rtol=1e-10)
    # weeks: the same customers described in weeks give the same value
    bg_weeks = BetaGeoModel.from_params(R, ALPHA / 7, A, B, time_unit_days=7)
    np.testing.assert_allclose(gg.customer_lifetime_value(bg_weeks, x, tx / 7, T / 7, m),
                               gg.customer_lifetime_value(bg, x, tx, T, m), rtol=1e-9)
    clv12 = gg.customer_lifetime_value(bg, x, tx, T, m)
    assert np.all(clv12 > gg.customer_lifetime_value(bg, x, tx, T, m, discount_rate_monthly=0.05))


# --- fitting ---------------------------------------------------------------------------------


def test_gradients_match_finite_differences(cdnow, cdnow_monetary):
    x, tx, T = (cdnow[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    rep = cdnow_monetary["x"] > 0
    cases = [
        (_BGData(x, tx, T, np.ones_like(x)), np.log([0.3, 5.0, 0.9, 2.0])),
        (_MBGData(x, np.where(x > 0, tx, 0.0), T, np.ones_like(x)), np.log([0.3, 5.0, 0.9, 2.0])),
        (_MBGData(x, np.where(x > 0, tx, 0.0), T, np.arange(len(x)) % 3 + 1.0), np.log([0.6, 3.0, 1.7, 0.8])),
        (_GGData(cdnow_monetary["x"][rep].to_numpy(float), cdnow_monetary["zbar"][rep].to_numpy(float),
                 np.ones(int(rep.sum()))), np.log([5.0, 3.0, 12.0])),
    ]
    for data, theta in cases:
        _, grad = data.negll(theta)
        h = 1e-6
        numeric = [(data.negll(theta + h * e)[0] - data.negll(theta - h * e)[0]) / (2 * h) for e in np.eye(len(theta))]
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("model_class", [BetaGeoModel, ModifiedBetaGeoModel])
def test_weights_equal_repeated_rows(cdnow, model_class):
    rng = np.random.default_rng(3)
    w = rng.integers(1, 4, len(cdnow))
    cols = [cdnow[c].to_numpy(float) for c in ("frequency", "recency", "T")]
    weighted = model_class().fit(*cols, weights=w).params
    repeated = model_class().fit(*(np.repeat(c, w) for c in cols)).params
    for k in weighted:
        assert weighted[k] == pytest.approx(repeated[k], rel=1e-5)


def test_recovers_known_parameters():
    true = {"r": 0.6, "alpha": 12.0, "a": 1.3, "b": 3.5}
    x, tx, T = simulate(200_000, *true.values(), horizon=200.0, seed=7)
    fitted = BetaGeoModel().fit(x, tx, T).params
    for k, v in true.items():
        assert fitted[k] == pytest.approx(v, rel=0.1), (k, fitted)

    x_m, tx_m, T_m = simulate(100_000, *true.values(), horizon=200.0, seed=9, modified=True)
    fitted = ModifiedBetaGeoModel().fit(x_m, tx_m, T_m).params
    for k, v in true.items():
        assert fitted[k] == pytest.approx(v, rel=0.1), (k, fitted)

    rng = np.random.default_rng(8)
    rep = x > 0
    nu = rng.gamma(4.0, 1.0 / 30.0, rep.sum())
    m = rng.gamma(5.0 * x[rep], 1.0 / (nu * x[rep]))
    gg = GammaGammaModel().fit(x[rep], m).params
    for k, v in {"p": 5.0, "q": 4.0, "v": 30.0}.items():
        assert gg[k] == pytest.approx(v, rel=0.1), (k, gg)


# --- errors ----------------------------------------------------------------------------------


def test_too_little_history_gives_a_clear_message():
    x, tx, T = simulate(2_000, 0.5, 10.0, 1.2, 3.0, horizon=100.0, seed=1)
    keep = (x == 0) | (np.cumsum(x > 0) <= 37)  # exactly 37 customers with a repeat order
    with pytest.raises(InsufficientHistoryError) as err:
        BetaGeoModel().fit(x[keep], tx[keep], T[keep])
    assert str(err.value) == ("Predictive scores need at least 200 customers with a repeat order; this workspace "
                              "has 37. Collect more history or turn predictive scores off.")
    assert isinstance(err.value, TesseraError)
    with pytest.raises(InsufficientHistoryError, match="has 37"):
        GammaGammaModel().fit(x[keep], np.where(x[keep] > 0, 10.0, 0.0))
    BetaGeoModel(min_repeat_customers=30).fit(x[keep], tx[keep], T[keep])  # the threshold is a setting


def test_no_convergence_is_reported(cdnow):
    with pytest.raises(PredictiveError) as err:
        BetaGeoModel(max_iterations=1).fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    text = str(err.value)
    assert text.startswith("The purchase-frequency model (BG/NBD: how often customers buy and when they stop) "
                           "could not be fitted: the search for its parameters used all of its 1 steps")
    assert "Use a longer history" in text and "turn predictive scores off" in text
    assert re.search(r"last parameters: r=.*alpha=.*a=.*b=", text)


def test_invalid_summary_and_unfitted_model():
    with pytest.raises(PredictiveError, match="1 customers have a recency outside"):
        BetaGeoModel(min_repeat_customers=0).fit([1, 2], [5.0, 1.0], [4.0, 3.0])
    with pytest.raises(PredictiveError, match="missing or infinite"):
        BetaGeoModel().fit([1, np.nan], [1.0, 1.0], [4.0, 3.0])
    with pytest.raises(PredictiveError, match="not fitted"):
        BetaGeoModel().probability_alive([1], [1.0], [2.0])
    with pytest.raises(PredictiveError, match="The MBG/NBD model is not fitted"):
        ModifiedBetaGeoModel().expected_purchases(10, [0], [0.0], [2.0])
    with pytest.raises(PredictiveError, match="1 customers have a recency outside"):
        ModifiedBetaGeoModel(min_repeat_customers=0).fit([1, 2], [5.0, 1.0], [4.0, 3.0])


def test_rfm_summary_from_orders():
    orders = pd.DataFrame(
        [
            ("c1", "2024-01-01 09:00", 10.0),
            ("c1", "2024-01-01 18:00", 5.0),  # same day: one purchase of 15
            ("c1", "2024-01-11 12:00", 20.0),
            ("c1", "2024-01-31 08:00", 40.0),
            ("c2", "2024-02-01 10:00", 7.0),
            ("c3", "2024-01-05 10:00", 8.0),
            ("c3", "2024-03-01 10:00", 9.0),  # after the end of the window: ignored
        ],
        columns=["customer", "at", "amount"],
    )
    s = rfm_summary(orders["customer"], pd.to_datetime(orders["at"]), orders["amount"], observation_end="2024-02-10")
    assert s.loc["c1"].tolist() == [2, 30.0, 40.0, 30.0]
    assert s.loc["c2"].tolist() == [0, 0.0, 9.0, 0.0]
    assert s.loc["c3"].tolist() == [0, 0.0, 36.0, 0.0]
    weeks = rfm_summary(orders["customer"], orders["at"], observation_end="2024-02-10", time_unit_days=7)
    assert weeks.loc["c1", "T"] == pytest.approx(40 / 7) and "monetary_value" not in weeks
    assert math.isclose(weeks.loc["c1", "recency"], 30 / 7)


@pytest.mark.parametrize("model_class", [BetaGeoModel, ModifiedBetaGeoModel])
def test_expected_purchases_stay_finite_when_dropout_has_no_spread(model_class):
    # a and b this large overflow 2F1: the point-mass form p = a / (a + b) takes over.
    model = model_class.from_params(r=0.63, alpha=172.6, a=3.67e6, b=9.41e6)
    x, tx, T = np.array([0.0, 2.0, 5.0]), np.array([0.0, 300.0, 900.0]), np.array([400.0, 1000.0, 1200.0])
    got = model.expected_purchases(90.0, x, tx, T)
    assert np.isfinite(got).all()
    p = 3.67e6 / (3.67e6 + 9.41e6)
    point = (1 - ((172.6 + T) / (172.6 + T + p * 90.0)) ** (0.63 + x)) / p
    np.testing.assert_allclose(got, model.probability_alive(x, tx, T) * point, rtol=1e-6)
