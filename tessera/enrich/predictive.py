"""Predictive customer scores: MBG/NBD or BG/NBD (repeat purchases and drop-out) and Gamma-Gamma (spend).

The models are fitted by maximum likelihood with numpy/scipy on one summary row per customer:

    frequency  x    number of repeat purchases (purchase days after the first one)
    recency    t_x  time from the first to the last purchase (0 when x = 0)
    T               time from the first purchase to the end of the observation window
    monetary_value  average value of the repeat purchases (Gamma-Gamma only)

``frequency``, ``recency`` and ``T`` are in one time unit, ``time_unit_days`` days long (1 by
default, 7 for weeks); :func:`rfm_summary` computes them from orders.

Both purchase models: while alive a customer buys at Poisson rate lambda ~ Gamma(r, alpha) and may
drop out for good right after a purchase, with probability p ~ Beta(a, b). BG/NBD
(:class:`BetaGeoModel`) gives that chance after each *repeat* purchase only, so a customer without
repeat purchase is alive whatever their age; MBG/NBD (:class:`ModifiedBetaGeoModel`, the one the
predictive scores use) gives it after every purchase, the first one included, so a one-time
buyer's probability of being alive falls with their age. MBG/NBD, for every x:

    L(r, alpha, a, b | x, t_x, T) = B(a, b+x+1)/B(a, b) Gamma(r+x) alpha^r / Gamma(r)
                                    [(alpha+T)^-(r+x) + a/(b+x) (alpha+t_x)^-(r+x)]
    P(alive | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))
    E[Y(t) | x, t_x, T] = P(alive) (a+b+x)/(a-1)
                          [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; t/(alpha+T+t))]

References
    Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
    Pareto/NBD Model", Marketing Science 24(2) -- BG/NBD, likelihood (eq. 6), conditional
    expectation (eq. 10), probability of being alive (appendix).
    Batislam, Denizel & Filiztekin (2007), "Empirical validation and comparison of models for
    customer base analysis", International Journal of Research in Marketing 24(3) -- MBG/NBD;
    with Wagner & Hoppe (2008), "Erratum on the MBG/NBD model", IJRM 25(3), for E[Y(t) | x, t_x, T].
    Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
    Analysis", Journal of Marketing Research 42(4) -- Gamma-Gamma spend model.

On the CDNOW sample (2,357 customers, weeks) the BG/NBD fit gives the published r=0.243,
alpha=4.414, a=0.793, b=2.426 (log-likelihood -9582.4); the MBG/NBD fit gives r=0.525,
alpha=6.183, a=0.891, b=1.614 (log-likelihood -9582.13), as the ModifiedBetaGeoFitter of the
``lifetimes`` package; the Gamma-Gamma fit on its 946 repeat customers gives p=6.25, q=3.74 as
published and gamma=15.448 (published 15.44; same log-likelihood -4055.92 to 0.002, the
likelihood being flat along that ridge).

Speed: the fit runs once per distinct (x, t_x, T) row and the expectations once per distinct
(x, T) pair, so summaries computed from order dates (whole days or weeks) are cheap; 1,000,000
customers over a year of daily history fit in well under a second (bench/bench_predictive.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

from tessera.errors import TesseraError

DAYS_PER_MONTH = 365.25 / 12
_LOG_BOUND = 25.0  # log-parameters are kept in [-25, 25]; reaching the edge means a degenerate fit
_SUBSAMPLE_ROWS = 50_000  # rows of the subsample fit that gives the starting point on large data


class PredictiveError(TesseraError):
    """A predictive model cannot be fitted or used on this data."""

    code = "predictive"
    status = 422


class InsufficientHistoryError(PredictiveError):
    """Too few customers with a repeat order to fit a predictive model."""

    code = "insufficient_history"


def _arrays(n_expected: int | None = None, **named) -> list[np.ndarray]:
    out = []
    for name, values in named.items():
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if n_expected is not None and len(arr) != n_expected:
            raise PredictiveError(f"{name} has {len(arr)} values, expected {n_expected} (one per customer).")
        n_expected = len(arr)
        if not np.isfinite(arr).all():
            raise PredictiveError(f"{name} contains {int((~np.isfinite(arr)).sum())} missing or infinite values.")
        out.append(arr)
    return out


def _check_summary(x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> None:
    problems = []
    if (x < 0).any():
        problems.append(f"{int((x < 0).sum())} customers have a negative frequency")
    if (T < 0).any():
        problems.append(f"{int((T < 0).sum())} customers have a negative age T")
    bad = (x > 0) & ((tx < 0) | (tx > T * (1 + 1e-9)))
    if bad.any():
        problems.append(f"{int(bad.sum())} customers have a recency outside [0, T]")
    if problems:
        raise PredictiveError("Invalid customer summary: " + "; ".join(problems) + ".")


def _dot(u: np.ndarray, v: np.ndarray) -> float:
    """Inner product of two vectors without BLAS (whose threads slow it down on a busy machine)."""
    return float(np.einsum("i,i->", u, v))


def _check_history(n_repeat: float, minimum: int) -> None:
    if n_repeat < minimum:
        raise InsufficientHistoryError(
            f"Predictive scores need at least {minimum} customers with a repeat order; this workspace has "
            f"{int(round(n_repeat))}. Collect more history or turn predictive scores off."
        )


def _group(*cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..k-1 of the distinct rows of ``cols`` and one row index per code."""
    n = len(cols[0])
    codes = np.zeros(n, dtype=np.int64)
    for col in cols:
        cc, uniques = pd.factorize(col)
        codes, _ = pd.factorize(codes * len(uniques) + cc)
    first = np.empty(int(codes.max()) + 1 if n else 0, dtype=np.int64)
    first[codes] = np.arange(n)
    return codes, first


_PLAIN = {"BG/NBD": "purchase-frequency model (BG/NBD: how often customers buy and when they stop)",
          "MBG/NBD": "purchase-frequency model (MBG/NBD: how often customers buy and when they stop)",
          "Gamma-Gamma": "spend model (Gamma-Gamma: how much customers spend per order)"}
_FIT_FIX = ("This happens when the order history is too short for the customers' pace, or when customers do "
            "not really stop buying (or all stop at once). Use a longer history (a year or more), check that the "
            "order dates (OrderDate) are real dates and that the run's as_of is not before them, or turn "
            "predictive scores off for this dataset.")


def _minimize(fun, theta0, names: tuple[str, ...], max_iterations: int, what: str, ftol: float) -> np.ndarray:
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(theta0)
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iterations, "ftol": ftol, "gtol": 1e-8})
    values = ", ".join(f"{k}={v:.6g}" for k, v in zip(names, np.exp(res.x)))
    # a line search that stops at the optimum only for lack of floating-point precision is fine
    ok = res.success or ("ABNORMAL" in str(res.message) and np.max(np.abs(res.jac)) < 1e-6)
    model = _PLAIN.get(what, what)
    detail = f"(details: the optimizer says '{res.message or 'no reason given'}'; last parameters: {values})"
    if not ok or not np.isfinite(res.fun):
        if res.nit >= max_iterations:
            why = f"the search for its parameters used all of its {max_iterations} steps without settling"
        elif not np.isfinite(res.fun):
            why = "the order history gives the model an impossible likelihood"
        else:
            why = "the search for its parameters stopped before finding the best ones"
        raise PredictiveError(f"The {model} could not be fitted: {why}. {_FIT_FIX} {detail}.")
    if np.any(np.abs(res.x) >= _LOG_BOUND - 1e-6):
        raise PredictiveError(f"The {model} could not be fitted: the order history only fits it at an extreme "
                              f"(a parameter ran to the edge of its range), so its predictions would be nonsense. "
                              f"{_FIT_FIX} {detail}.")
    return res.x


def _fit(data_class, columns: tuple[np.ndarray, ...], theta0, names, max_iterations: int, what: str):
    """Maximum likelihood on log-parameters; with many rows, a fit on a random subsample of the
    rows gives the starting point, so that few iterations run on all of them."""
    if len(columns[0]) > 4 * _SUBSAMPLE_ROWS:
        sub = np.random.default_rng(0).choice(len(columns[0]), _SUBSAMPLE_ROWS, replace=False)
        theta0 = _minimize(data_class(*(c[sub] for c in columns)).negll, theta0, names, max_iterations, what, 1e-9)
    data = data_class(*columns)
    theta = _minimize(data.negll, theta0, names, max_iterations, what, 1e-13)
    return theta, -data.negll(theta)[0] * data.total


class BetaGeoModel:
    """BG/NBD model: while alive a customer buys at Poisson rate lambda ~ Gamma(r, alpha); after
    each repeat purchase they drop out with probability p ~ Beta(a, b). A customer without repeat
    purchase is alive whatever their age (see ModifiedBetaGeoModel)."""

    name = "BG/NBD"
    _extra_dropout = 0.0  # drop-out chances besides those after the repeat purchases (MBG/NBD: 1)

    @staticmethod
    def _data(*columns) -> _BGData:
        return _BGData(*columns)

    def __init__(self, *, time_unit_days: float = 1.0, min_repeat_customers: int = 200, max_iterations: int = 1000):
        self.time_unit_days = float(time_unit_days)
        self.min_repeat_customers = int(min_repeat_customers)
        self.max_iterations = int(max_iterations)
        self._theta: np.ndarray | None = None
        self.log_likelihood_: float | None = None
        self.n_customers_: float = 0.0
        self.n_distinct_: int = 0

    @classmethod
    def from_params(cls, r: float, alpha: float, a: float, b: float, **options) -> BetaGeoModel:
        """A model with known parameters (e.g. stored from an earlier fit)."""
        model = cls(**options)
        model._theta = np.log(np.array([r, alpha, a, b], dtype=np.float64))
        return model

    @property
    def params(self) -> dict[str, float]:
        r, alpha, a, b = np.exp(self._fitted())
        return {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}

    def _fitted(self) -> np.ndarray:
        if self._theta is None:
            raise PredictiveError(f"The {self.name} model is not fitted yet.")
        return self._theta

    def fit(self, frequency, recency, T, weights=None) -> BetaGeoModel:
        """Maximum likelihood (BG/NBD: eq. 6) on one row per customer; ``weights`` counts identical customers.
        Raises InsufficientHistoryError below ``min_repeat_customers`` repeat customers and
        PredictiveError when the optimizer does not converge."""
        x, tx, T = _arrays(frequency=frequency, recency=recency, T=T)
        w = np.ones_like(x) if weights is None else _arrays(len(x), weights=weights)[0]
        _check_summary(x, tx, T)
        _check_history(float(w[x > 0].sum()), self.min_repeat_customers)
        tx = np.where(x > 0, tx, 0.0)
        codes, first = _group(x, tx, T)
        w = np.bincount(codes, weights=w)
        x, tx, T = x[first], tx[first], T[first]
        keep = w > 0
        x, tx, T, w = x[keep], tx[keep], T[keep], w[keep]
        self.n_customers_, self.n_distinct_ = float(w.sum()), len(w)
        # starting point: r = 1, alpha from the overall repeat-purchase rate, a = b = 1
        theta = np.log([1.0, max(_dot(w, T) / max(_dot(w, x), 1.0), 1e-6), 1.0, 1.0])
        self._theta, self.log_likelihood_ = _fit(self._data, (x, tx, T, w), theta, ("r", "alpha", "a", "b"),
                                                 self.max_iterations, self.name)
        return self

    def probability_alive(self, frequency, recency, T) -> np.ndarray:
        """P(alive at T | x, t_x, T); 1 when x = 0 (drop-out happens only right after a repeat purchase).
        The churn risk is 1 minus this."""
        x, tx, T = _arrays(frequency=frequency, recency=recency, T=T)
        r, alpha, a, b = np.exp(self._fitted())
        tx = np.where(x > 0, tx, T)
        d = np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
        return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(d, 700.0))), 1.0)

    def _expected_if_alive(self, x: np.ndarray, T: np.ndarray, horizons: np.ndarray) -> np.ndarray:
        """E[purchases in (T, T+t] | alive at T, x, T] for each row of (x, T) and each t (shape (k, h)).
        Eq. 10 numerator, with the Euler transform of 2F1 (small parameters, fast convergence):
        a live customer's rate is lambda ~ Gamma(r+x, alpha+T), their drop-out probability
        p ~ Beta(a, b+x) (BG/NBD) or Beta(a, b+x+1) (MBG/NBD), and
        E[purchases | lambda, p] = (1 - exp(-lambda p t)) / p."""
        r, alpha, a, b = np.exp(self._fitted())
        if abs(a - 1.0) < 1e-7:
            a = 1.0 + 1e-7
        # BG/NBD: (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)];
        # MBG/NBD has b+x+1 and a+b+x in place of b+x and a+b+x-1 (the first purchase is also a
        # drop-out chance). Euler: (1-z)^(r+x) 2F1(r+x, b'; c; z) = (1-z)^(a-1) 2F1(c-r-x, a-1; c; z).
        c = (a + b + x - 1.0 + self._extra_dropout)[:, None]
        t = np.asarray(horizons, dtype=np.float64)[None, :]
        one_minus_z = (alpha + T)[:, None] / (alpha + T[:, None] + t)
        with np.errstate(invalid="ignore", over="ignore"):
            f = hyp2f1(a + b - 1.0 + self._extra_dropout - r, a - 1.0, c, 1.0 - one_minus_z)
            out = c / (a - 1.0) * (1.0 - one_minus_z ** (a - 1.0) * f)
        if not np.isfinite(out).all():
            # Very large a and b (a drop-out probability with almost no spread) overflow 2F1; the
            # Beta is then a point mass at p = a / (a + b), where the expectation has a closed
            # form: (1 - E[exp(-lambda p t)]) / p with lambda ~ Gamma(r + x, alpha + T).
            p_drop = a / (a + b)
            shape = (r + x)[:, None]
            point = (1.0 - ((alpha + T)[:, None] / (alpha + T[:, None] + p_drop * t)) ** shape) / p_drop
            out = np.where(np.isfinite(out), out, point)
        return out

    def _per_pair(self, x: np.ndarray, T: np.ndarray, horizons, reduce=None) -> np.ndarray:
        """_expected_if_alive computed once per distinct (x, T), optionally reduced along the horizons."""
        codes, first = _group(x, T)
        out = self._expected_if_alive(x[first], T[first], np.atleast_1d(horizons))
        return (out[:, 0] if reduce is None else reduce(out))[codes]

    def expected_purchases(self, t: float, frequency, recency, T) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: expected number of purchases in the next ``t`` time units (eq. 10)."""
        x, tx, T = _arrays(frequency=frequency, recency=recency, T=T)
        return self.probability_alive(x, tx, T) * self._per_pair(x, T, float(t))

    def expected_next_purchase_days(self, frequency, recency, T, probability: float = 0.5) -> np.ndarray:
        """Days after the end of the observation window by which the customer has placed their next
        order with the given probability (the median by default), drop-out included:
        solves P(alive) * (1 - ((alpha+T)/(alpha+T+t))^(r+x)) = probability, the time to the next
        purchase of a live customer being exponential with rate lambda ~ Gamma(r+x, alpha+T).
        NaN when P(alive) <= probability: the customer more likely never orders again.
        (The mean is not used: it is infinite whenever r + x <= 1.)"""
        if not 0.0 < probability < 1.0:
            raise PredictiveError(f"probability must be in (0, 1), got {probability}.")
        x, tx, T = _arrays(frequency=frequency, recency=recency, T=T)
        r, alpha, _, _ = np.exp(self._fitted())
        alive = self.probability_alive(x, tx, T)
        ok = alive > probability
        u = np.where(ok, 1.0 - probability / np.where(ok, alive, 1.0), 1.0)
        t = (alpha + T) * np.expm1(-np.log(u) / (r + x))
        return np.where(ok, t * self.time_unit_days, np.nan)


class _BGData:
    """Distinct (x, t_x, T) rows with weights, and the BG/NBD negative mean log-likelihood."""

    def __init__(self, x, tx, T, w):
        self.total = float(w.sum())
        self.xs, ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(ix, weights=w)
        zero = x == 0
        self.T0, self.w0 = T[zero], w[zero]
        rep = ~zero
        self.x1, self.tx1, self.T1, self.w1, self.ix1 = x[rep], tx[rep], T[rep], w[rep], ix[rep]
        self.w1x = self.w1 * self.x1

    def negll(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(theta)
        xs, wx, x1, w1 = self.xs, self.wx, self.x1, self.w1
        # terms that depend on x only
        ll = _dot(wx, gammaln(r + xs) - gammaln(r) + betaln(a, b + xs) - betaln(a, b)) + self.total * r * np.log(alpha)
        g_r = _dot(wx, digamma(r + xs) - digamma(r)) + self.total * np.log(alpha)
        g_alpha = self.total * r / alpha
        g_a = _dot(wx, digamma(a + b) - digamma(a + b + xs))
        g_b = _dot(wx, digamma(b + xs) - digamma(a + b + xs) - digamma(b) + digamma(a + b))
        # customers without repeat purchase: -r log(alpha + T)
        lt0 = np.log(alpha + self.T0)
        w0_lt = _dot(self.w0, lt0)
        ll -= r * w0_lt
        g_r -= w0_lt
        g_alpha -= r * _dot(self.w0, 1.0 / (alpha + self.T0))
        # repeat customers: -(r+x) log(alpha+T) + softplus(d), d = log(a/(b+x-1)) + (r+x) log((alpha+T)/(alpha+t_x))
        inv_t = 1.0 / (alpha + self.T1)
        inv_tx = 1.0 / (alpha + self.tx1)
        lt = -np.log(inv_t)
        diff = np.log(inv_tx)
        diff += lt
        rx = x1 + r
        d = rx * diff
        d += (np.log(a) - np.log(b + xs - 1.0, where=xs > 0, out=np.zeros_like(xs)))[self.ix1]
        e = np.exp(-np.abs(d))
        softplus = np.log1p(e)
        softplus += np.maximum(d, 0.0)
        ws = np.exp(d - softplus)
        ws *= w1  # weight * sigmoid(d)
        wsx = ws * x1
        inv_tx -= inv_t  # 1/(alpha+t_x) - 1/(alpha+T)
        w1_lt, w1x_lt = _dot(w1, lt), _dot(self.w1x, lt)
        ll += _dot(w1, softplus) - r * w1_lt - w1x_lt
        g_r += _dot(ws, diff) - w1_lt
        g_alpha -= r * _dot(ws, inv_tx) + _dot(wsx, inv_tx) + r * _dot(w1, inv_t) + _dot(self.w1x, inv_t)
        ws_x = np.bincount(self.ix1, weights=ws, minlength=len(xs))
        g_a += ws_x.sum() / a
        g_b -= _dot(ws_x[xs > 0], 1.0 / (b + xs[xs > 0] - 1.0))
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
        return -ll / self.total, -grad / self.total


class _MBGData:
    """Distinct (x, t_x, T) rows with weights, and the MBG/NBD negative mean log-likelihood (every
    row, one-time buyers included, has the drop-out term)."""

    def __init__(self, x, tx, T, w):
        self.total = float(w.sum())
        self.xs, self.ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(self.ix, weights=w)
        self.x, self.tx, self.T, self.w = x, tx, T, w
        self.w_x = w * x

    def negll(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(theta)
        xs, wx, x, w = self.xs, self.wx, self.x, self.w
        # terms that depend on x only: log Gamma(r+x)/Gamma(r) + r log(alpha) + log B(a, b+x+1)/B(a, b)
        ll = (_dot(wx, gammaln(r + xs) - gammaln(r) + betaln(a, b + xs + 1.0) - betaln(a, b))
              + self.total * r * np.log(alpha))
        g_r = _dot(wx, digamma(r + xs) - digamma(r)) + self.total * np.log(alpha)
        g_alpha = self.total * r / alpha
        g_a = _dot(wx, digamma(a + b) - digamma(a + b + xs + 1.0))
        g_b = _dot(wx, digamma(b + xs + 1.0) - digamma(a + b + xs + 1.0) - digamma(b) + digamma(a + b))
        # every row: -(r+x) log(alpha+T) + softplus(d), d = log(a/(b+x)) + (r+x) log((alpha+T)/(alpha+t_x))
        inv_t = 1.0 / (alpha + self.T)
        inv_tx = 1.0 / (alpha + self.tx)
        lt = -np.log(inv_t)
        diff = np.log(inv_tx)
        diff += lt
        d = (x + r) * diff
        d += (np.log(a) - np.log(b + xs))[self.ix]
        softplus = np.log1p(np.exp(-np.abs(d)))
        softplus += np.maximum(d, 0.0)
        ws = np.exp(d - softplus)
        ws *= w  # weight * sigmoid(d)
        wsx = ws * x
        inv_tx -= inv_t  # 1/(alpha+t_x) - 1/(alpha+T)
        w_lt, wx_lt = _dot(w, lt), _dot(self.w_x, lt)
        ll += _dot(w, softplus) - r * w_lt - wx_lt
        g_r += _dot(ws, diff) - w_lt
        g_alpha -= r * _dot(ws, inv_tx) + _dot(wsx, inv_tx) + r * _dot(w, inv_t) + _dot(self.w_x, inv_t)
        ws_x = np.bincount(self.ix, weights=ws, minlength=len(xs))
        g_a += ws_x.sum() / a
        g_b -= _dot(ws_x, 1.0 / (b + xs))
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
        return -ll / self.total, -grad / self.total


class ModifiedBetaGeoModel(BetaGeoModel):
    """MBG/NBD model (Batislam, Denizel & Filiztekin 2007): as BG/NBD, but a customer may also drop
    out right after their first purchase, so a one-time buyer's chance of being alive falls with
    their age. Same parameters (r, alpha, a, b) and methods as BetaGeoModel."""

    name = "MBG/NBD"
    _extra_dropout = 1.0

    @staticmethod
    def _data(*columns) -> _MBGData:
        return _MBGData(*columns)

    def probability_alive(self, frequency, recency, T) -> np.ndarray:
        """P(alive at T | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)), for every x
        (t_x = 0 when x = 0). A customer who has just bought for the first time is alive with
        probability b/(a+b), the chance of not dropping out right after that purchase."""
        x, tx, T = _arrays(frequency=frequency, recency=recency, T=T)
        r, alpha, a, b = np.exp(self._fitted())
        tx = np.where(x > 0, tx, 0.0)
        d = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
        return 1.0 / (1.0 + np.exp(np.minimum(d, 700.0)))


class _GGData:
    """Repeat customers (x, average value m, weight) and the Gamma-Gamma negative mean log-likelihood."""

    def __init__(self, x, m, w):
        self.total = float(w.sum())
        self.xs, ix = np.unique(x, return_inverse=True)
        self.wx = np.bincount(ix, weights=w)
        self.y = m * x  # total spend of the repeat purchases
        self.w, self.w_x = w, w * x
        ly = np.log(self.y)
        self.wxly = _dot(self.w_x, ly)
        self.const = _dot(w, np.log(x) - ly)  # sum w [(px-1) log y + log x] = p * wxly + const

    def negll(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = np.exp(theta)
        xs, wx, total = self.xs, self.wx, self.total
        px = p * xs
        vy = self.y + v
        lv = np.log(vy)
        inv = np.reciprocal(vy, out=vy)
        w_lv, wx_lv = _dot(self.w, lv), _dot(self.w_x, lv)
        ll = (_dot(wx, gammaln(px + q) - gammaln(px) - gammaln(q)) + total * q * np.log(v) + p * self.wxly + self.const
              - p * wx_lv - q * w_lv)
        g_p = _dot(wx, xs * (digamma(px + q) - digamma(px))) + self.wxly - wx_lv
        g_q = _dot(wx, digamma(px + q) - digamma(q)) + total * np.log(v) - w_lv
        g_v = total * q / v - p * _dot(self.w_x, inv) - q * _dot(self.w, inv)
        return -ll / total, -np.array([g_p * p, g_q * q, g_v * v]) / total


class GammaGammaModel:
    """Gamma-Gamma spend model: transaction values ~ Gamma(p, nu) per customer, nu ~ Gamma(q, gamma).
    ``params`` names gamma ``v``. Assumes spend is independent of purchase frequency."""

    def __init__(self, *, min_repeat_customers: int = 200, max_iterations: int = 1000):
        self.min_repeat_customers = int(min_repeat_customers)
        self.max_iterations = int(max_iterations)
        self._theta: np.ndarray | None = None
        self.log_likelihood_: float | None = None
        self.n_customers_: float = 0.0

    @classmethod
    def from_params(cls, p: float, q: float, v: float, **options) -> GammaGammaModel:
        """A model with known parameters (e.g. stored from an earlier fit)."""
        model = cls(**options)
        model._theta = np.log(np.array([p, q, v], dtype=np.float64))
        return model

    @property
    def params(self) -> dict[str, float]:
        p, q, v = np.exp(self._fitted())
        return {"p": float(p), "q": float(q), "v": float(v)}

    def _fitted(self) -> np.ndarray:
        if self._theta is None:
            raise PredictiveError("The Gamma-Gamma model is not fitted yet.")
        return self._theta

    def fit(self, frequency, monetary_value, weights=None) -> GammaGammaModel:
        """Fit on the customers with x > 0 and a positive average value (the others are skipped)."""
        x, m = _arrays(frequency=frequency, monetary_value=monetary_value)
        w = np.ones_like(x) if weights is None else _arrays(len(x), weights=weights)[0]
        keep = (x > 0) & (m > 0) & (w > 0)
        x, m, w = x[keep], m[keep], w[keep]
        _check_history(float(w.sum()), self.min_repeat_customers)
        self.n_customers_ = float(w.sum())
        theta0 = np.log([1.0, 2.0, _dot(w, m) / float(w.sum())])
        self._theta, self.log_likelihood_ = _fit(_GGData, (x, m, w), theta0, ("p", "q", "v"),
                                                 self.max_iterations, "Gamma-Gamma")
        if self.params["q"] <= 1.0:
            raise PredictiveError(f"The Gamma-Gamma fit gives q={self.params['q']:.3g} <= 1: the average spend has no "
                                  "finite mean (a few extreme values?); the spend model cannot be used.")
        return self

    def conditional_expected_average_profit(self, frequency, monetary_value) -> np.ndarray:
        """E[M | x, m]: (p*v + p*x*m) / (p*x + q - 1); the population mean p*v/(q-1) when x = 0."""
        x, m = _arrays(frequency=frequency, monetary_value=monetary_value)
        p, q, v = np.exp(self._fitted())
        m = np.where(x > 0, m, 0.0)
        return (p * v + p * x * m) / (p * x + q - 1.0)

    def customer_lifetime_value(self, bgnbd: BetaGeoModel, frequency, recency, T, monetary_value, *,
                                months: int = 12, discount_rate_monthly: float = 0.01,
                                time_unit_days: float | None = None) -> np.ndarray:
        """Discounted value of the next ``months`` months (of 365.25/12 days):
        sum over m of E[purchases in month m] * E[M | x, m] / (1 + d)^m.
        ``time_unit_days`` is the unit of frequency/recency/T and of ``bgnbd`` (default: bgnbd's)."""
        x, tx, T, m = _arrays(frequency=frequency, recency=recency, T=T, monetary_value=monetary_value)
        unit = bgnbd.time_unit_days if time_unit_days is None else float(time_unit_days)
        steps = np.arange(1, int(months) + 1)
        factors = (1.0 + discount_rate_monthly) ** -steps.astype(np.float64)
        def discount(cumulative: np.ndarray) -> np.ndarray:
            return np.einsum("ij,j->i", np.diff(cumulative, axis=1, prepend=0.0), factors)

        discounted = bgnbd._per_pair(x, T, steps * (DAYS_PER_MONTH / unit), discount)
        return bgnbd.probability_alive(x, tx, T) * discounted * self.conditional_expected_average_profit(x, m)


def rfm_summary(customer_id, order_time, amount=None, *, observation_end, time_unit_days: float = 1.0) -> pd.DataFrame:
    """Per-customer frequency, recency, T (and monetary_value when ``amount`` is given) from orders.

    Orders of one customer on the same calendar day count as one purchase (amounts summed);
    orders after ``observation_end`` are ignored. monetary_value is the mean value of the
    repeat purchase days (the first purchase excluded), 0 when there is none.
    """
    df = pd.DataFrame({"c": np.asarray(customer_id), "d": pd.DatetimeIndex(order_time).floor("D")})
    df["v"] = 0.0 if amount is None else np.asarray(amount, dtype=np.float64)
    end = pd.Timestamp(observation_end).floor("D")
    days = df[df["d"] <= end].groupby(["c", "d"], sort=True)["v"].sum().reset_index()
    g = days.groupby("c", sort=True)
    first = g["d"].min()
    unit = pd.Timedelta(days=time_unit_days)
    out = pd.DataFrame({"frequency": g.size() - 1})
    out["recency"] = (g["d"].max() - first) / unit
    out["T"] = (end - first) / unit
    if amount is not None:
        repeat = days[days["d"] > g["d"].transform("min")]
        out["monetary_value"] = repeat.groupby("c")["v"].mean().reindex(out.index).fillna(0.0)
    out.index.name = "customer_id"
    return out
