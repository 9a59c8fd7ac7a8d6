"""Probabilistic matching (Fellegi-Sunter) of the records of a dataset, in the engine.

1. Candidate pairs come from the blocking rules: records equal on every column of a rule
   (after lower case, accents and surrounding spaces removed); a blocking value carried by more
   than ``max_block_size`` records pairs none of them.
2. Each pair gets a comparison level per comparison (0: a value is missing, 1: exact, then the
   method's fuzzy levels, last: different). Pairs are computed and stored by the engine.
3. u probabilities (how often a level happens between two different people) are counted on
   pseudo-random pairs of records (records ranked by the md5 of their id, each paired with the
   records some fixed offsets away: the same pairs on every engine). m probabilities (the same
   for one person) and the share of matches are estimated by expectation-maximisation on the
   counts of each pattern of levels among the candidate pairs, without labels. The engine
   aggregates; the few hundred pattern counts are what the driver sees.
4. The match probability of a pattern is its posterior under the fitted model: pairs from
   ``merge`` up are links of the identity graph, pairs from ``review`` up go to the review queue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import pyarrow as pa

from tessera.config.models import ComparisonConfig, MatchingConfig
from tessera.engine.base import EngineAdapter
from tessera.engine.dialects import Dialect

U_SAMPLE_PAIRS = 100_000  # pseudo-random pairs counted for the u probabilities
EM_ITERATIONS = 60
PRIOR_PAIRS = 20.0  # weight of the default m probabilities (keeps a handful of pairs from overfitting)

DEFAULT_LEVELS = {"levenshtein": [1, 2], "jaro_winkler": [0.92, 0.8], "email": [1], "date": [], "exact": []}


def level_names(c: ComparisonConfig) -> list[str]:
    """The names of the comparison levels of ``c`` (index = level)."""
    levels = c.levels if c.levels is not None else DEFAULT_LEVELS[c.method]
    fuzzy: list[str] = []
    if c.method == "levenshtein":
        fuzzy = [f"{int(t)} edit(s) or fewer" for t in levels]
    elif c.method == "jaro_winkler":
        fuzzy = [f"Jaro-Winkler >= {t}" for t in levels]
    elif c.method == "email":
        fuzzy = ["same local part"] + [f"local part: {int(t)} edit(s) or fewer" for t in levels]
    elif c.method == "date":
        fuzzy = ["one character differs", "day and month swapped"] + [f"within {int(t)} days" for t in levels]
    return ["missing", "exact", *fuzzy, "different"]


def _text(v: ibis.Value, dialect: Dialect) -> ibis.Value:
    s = dialect.strip_accents(v.cast("string").strip().lower())
    return s.nullif("")


@dataclass
class Prepared:
    """The normalized columns matching reads, one row per record."""

    table: ibis.Table
    text: dict[str, str]  # column -> normalized text column
    dates: dict[str, str]  # column -> date column (date comparisons on date columns)


def prepare(adapter: EngineAdapter, staged: ibis.Table, cfg: MatchingConfig, tag: str) -> Prepared:
    dialect = adapter.dialect
    cols = list(dict.fromkeys([c.column for c in cfg.comparisons] + [c for rule in cfg.blocking for c in rule]))
    sel, text, dates = {}, {}, {}
    for i, col in enumerate(cols):
        text[col] = f"_t{i}"
        sel[f"_t{i}"] = _text(staged[col], dialect)
        if staged[col].type().is_date() or staged[col].type().is_timestamp():
            dates[col] = f"_d{i}"
            sel[f"_d{i}"] = staged[col].cast("date")
    table = adapter.create_table(f"{tag}match_rows", staged.select("_idx", "_tessera_record", **sel), temp=True)
    return Prepared(table, text, dates)


def _level(c: ComparisonConfig, l: ibis.Table, r: ibis.Table, p: Prepared, dialect: Dialect) -> ibis.Value:
    """The comparison level of ``c`` for the pair (l, r), as int8."""
    a, b = l[p.text[c.column]], r[p.text[c.column]]
    levels = c.levels if c.levels is not None else DEFAULT_LEVELS[c.method]
    cases: list[tuple[ibis.Value, int]] = [(a.isnull() | b.isnull(), 0), (a == b, 1)]
    n = 2
    different = len(level_names(c)) - 1
    if c.method in ("levenshtein", "email"):
        if c.method == "email":
            a, b = a.split("@")[0], b.split("@")[0]
            cases.append((a == b, n))
            n += 1
        if levels:
            # The edit distance is at least the difference of lengths: most pairs are told apart
            # without computing it (the engines evaluate CASE branches in order).
            cases.append(((a.length() - b.length()).abs() > int(max(levels)), different))
        if levels and max(levels) < 2:
            # One edit leaves the first three or the last three characters of a long enough string alike.
            far = (a.length() >= 6) & (b.length() >= 6) & (a.substr(0, 3) != b.substr(0, 3)) & (a.right(3) != b.right(3))
            cases.append((far, different))
        dist = dialect.levenshtein(a, b)
        for t in levels:
            cases.append((dist <= int(t), n))
            n += 1
    elif c.method == "jaro_winkler":
        sim = dialect.jaro_winkler(a, b)
        for t in levels:
            cases.append((sim >= float(t), n))
            n += 1
    elif c.method == "date":
        cases.append((dialect.levenshtein(a, b) <= 1, n))
        n += 1
        if c.column in p.dates:
            da, db = l[p.dates[c.column]], r[p.dates[c.column]]
            swapped = (da.year() == db.year()) & (da.month() == db.day()) & (da.day() == db.month())
            cases.append((swapped, n))
            n += 1
            days = da.delta(db, unit="day").abs()
            for t in levels:
                cases.append((days <= int(t), n))
                n += 1
        else:
            n += 1 + len(levels)  # same levels on every column: names stay aligned with level_names
    return ibis.cases(*cases, else_=n).cast(dt.int8)


def _pair_levels(pairs: ibis.Table, p: Prepared, cfg: MatchingConfig, dialect: Dialect) -> ibis.Table:
    """``pairs`` (idx_l, idx_r) with one level column ``g<i>`` per comparison; the left record is the
    one whose id comes first (record indexes differ between engines, ids do not)."""
    l = p.table.view()
    r = p.table.view()
    j = pairs.join(l, pairs.idx_l == l._idx).join(r, pairs.idx_r == r._idx)
    first = l._tessera_record < r._tessera_record
    return j.select(
        idx_l=ibis.cases((first, pairs.idx_l), else_=pairs.idx_r),
        idx_r=ibis.cases((first, pairs.idx_r), else_=pairs.idx_l),
        record_l=ibis.cases((first, l._tessera_record), else_=r._tessera_record),
        record_r=ibis.cases((first, r._tessera_record), else_=l._tessera_record),
        **{f"g{i}": _level(c, l, r, p, dialect) for i, c in enumerate(cfg.comparisons)},
    )


def candidate_pairs(p: Prepared, cfg: MatchingConfig) -> ibis.Table:
    """Distinct (idx_l < idx_r) pairs of records that agree on every column of a blocking rule."""
    parts = []
    for rule in cfg.blocking:
        names = [p.text[c] for c in rule]
        rows = p.table.filter(*[p.table[n].notnull() for n in names]).select("_idx", *names)
        sizes = rows.group_by(names).agg(_n=ibis._.count())
        rows = rows.join(sizes.filter(sizes._n <= cfg.max_block_size).drop("_n"), names)
        l, r = rows.view(), rows.view()
        pairs = l.join(r, [*[l[n] == r[n] for n in names], l._idx < r._idx]).select(idx_l=l._idx, idx_r=r._idx)
        parts.append(pairs)
    out = parts[0]
    for part in parts[1:]:
        out = out.union(part, distinct=False)
    return out.distinct()


def _u_pairs(adapter: EngineAdapter, p: Prepared, n: int, tag: str) -> ibis.Table:
    """Pseudo-random pairs: the same on every engine (ranks by md5 of the record id)."""
    ranked = adapter.create_table(f"{tag}match_ranks", p.table.select(
        "_idx", _u=ibis.row_number().over(order_by=p.table._tessera_record.hexdigest("md5"))), temp=True)
    k = max(1, min(n - 1, math.ceil(U_SAMPLE_PAIRS / max(n, 1))))
    offsets = sorted({1 + (j * (n - 1)) // k for j in range(k)})
    offs = adapter.create_table(f"{tag}match_offsets", pa.table({"_off": pa.array(offsets, pa.int64())}),
                                temp=True)
    j = ranked.cross_join(offs)
    shifted = j.mutate(target=(j._u + j._off) % n).select("_idx", "target")
    b = ranked.view().select(idx_b="_idx", target="_u")
    return adapter.create_table(f"{tag}match_upairs", shifted.join(b, "target").select(idx_l="_idx", idx_r="idx_b"),
                                temp=True)


@dataclass
class Model:
    """The fitted Fellegi-Sunter model."""

    m: list[np.ndarray]
    u: list[np.ndarray]
    prior: float  # share of matches among the candidate pairs
    iterations: int = 0

    def weights(self, levels: np.ndarray) -> np.ndarray:
        """log2 Bayes factor of each comparison level, per pattern (rows) and comparison (columns)."""
        out = np.zeros(levels.shape, dtype=float)
        for k in range(levels.shape[1]):
            bf = np.log2(self.m[k]) - np.log2(self.u[k])
            bf[0] = 0.0  # a missing value says nothing
            out[:, k] = bf[levels[:, k]]
        return out

    def probability(self, levels: np.ndarray) -> np.ndarray:
        w = self.weights(levels).sum(axis=1) + math.log2(self.prior / (1 - self.prior))
        return 1.0 / (1.0 + np.power(2.0, -w))


def _default_m(n_levels: int) -> np.ndarray:
    """A prior of m: matches mostly agree exactly, some fuzzily, few differ."""
    m = np.ones(n_levels)
    fuzzy = n_levels - 3
    m[1] = 0.85
    if fuzzy:
        m[2:2 + fuzzy] = 0.12 / fuzzy
    m[-1] = 0.03 if fuzzy else 0.15
    m[1:] /= m[1:].sum()
    return m


def _distribution(counts: np.ndarray, levels: np.ndarray, k: int, n_levels: int, weights: np.ndarray,
                  prior: np.ndarray | None = None) -> np.ndarray:
    """Share of each level (1..) of comparison k, weighted; level 0 (missing) is left out."""
    out = np.bincount(levels[:, k], weights=counts * weights, minlength=n_levels).astype(float)
    out[0] = 0.0
    if prior is not None:
        out[1:] += PRIOR_PAIRS * prior[1:]
    out[1:] += 1e-6  # no level is impossible
    out[1:] /= out[1:].sum()
    out[0] = 1.0
    return out


def _em(counts: np.ndarray, levels: np.ndarray, model: Model, used: list[int], defaults: list[np.ndarray],
        sizes: list[int], update_m: bool = True) -> Model:
    """EM over the pattern counts, with only the comparisons ``used`` in the likelihood."""
    sub_levels = levels[:, used]
    for it in range(EM_ITERATIONS):
        sub = Model([model.m[k] for k in used], [model.u[k] for k in used], model.prior)
        post = sub.probability(sub_levels)
        expected = float((counts * post).sum())
        prior = min(max((expected + 1.0) / (counts.sum() + 2.0), 1e-6), 1 - 1e-6)
        m = list(model.m)
        if update_m:
            for k in used:
                m[k] = _distribution(counts, levels, k, sizes[k], post, defaults[k])
        change = abs(prior - model.prior) + max(float(np.abs(a - b).max()) for a, b in zip(m, model.m))
        model = Model(m, model.u, prior, it + 1)
        if change < 1e-7:
            break
    return model


def fit(cfg: MatchingConfig, pattern_levels: np.ndarray, pattern_counts: np.ndarray,
        u_levels: np.ndarray, u_counts: np.ndarray, n_records: int) -> Model:
    """u from the pseudo-random pairs; m by EM on the pairs of each blocking rule, leaving out the
    comparisons of the rule's own columns (they agree on every pair of the rule, so they say nothing
    there), averaged over the rules. The prior is the chance that two records taken at random
    match: the expected matches among the candidate pairs over all pairs of records, the scale u
    is measured on, so a pattern's probability holds for any pair (candidate or not)."""
    sizes = [len(level_names(c)) for c in cfg.comparisons]
    u = [_distribution(u_counts, u_levels, k, n, np.ones(len(u_counts))) if len(u_counts) else
         np.r_[1.0, np.full(n - 1, 1.0 / (n - 1))] for k, n in enumerate(sizes)]
    defaults = [_default_m(n) for n in sizes]
    all_pairs = max(n_records * (n_records - 1) / 2, 1.0)
    if not len(pattern_counts):
        return Model(defaults, u, prior=min(0.5, 1.0 / max(n_records, 2)))
    columns = [c.column for c in cfg.comparisons]
    estimates: list[list[np.ndarray]] = [[] for _ in sizes]
    posterior = np.zeros(len(pattern_counts))
    for rule in cfg.blocking:
        ruled = [columns.index(c) for c in rule if c in columns]
        used = [k for k in range(len(sizes)) if k not in ruled]
        mine = np.ones(len(pattern_counts), dtype=bool)
        for k in ruled:
            mine &= pattern_levels[:, k] == 1
        if not used or not mine.any():
            continue
        fitted = _em(pattern_counts[mine], pattern_levels[mine], Model([d.copy() for d in defaults], u, 0.1),
                     used, defaults, sizes)
        for k in used:
            estimates[k].append(fitted.m[k])
        sub = Model([fitted.m[k] for k in used], [u[k] for k in used], fitted.prior)
        posterior[mine] = np.maximum(posterior[mine], sub.probability(pattern_levels[mine][:, used]))
    m = [np.mean(e, axis=0) if e else defaults[k] for k, e in enumerate(estimates)]
    expected = float((pattern_counts * posterior).sum())
    prior = min(max(expected / all_pairs, 1e-12), 0.5)
    return Model(m, u, prior, EM_ITERATIONS)


@dataclass
class MatchResult:
    matches: str  # work table: record_l, record_r, probability, weight, status, g0..gk (pairs from review up)
    links: pa.Table  # idx_l, idx_r of the pairs from merge up
    model: Model
    counts: dict = field(default_factory=dict)


def guard_condition(cfg: MatchingConfig, evidence: dict[str, str], pairs: ibis.Table) -> ibis.Value | None:
    """The guard rail of matching: a pair whose first names differ and whose e-mails or birth dates
    differ too is never linked, whatever its other evidence (twins, a household)."""
    columns = [c.column for c in cfg.comparisons]

    def different(semantic: str) -> ibis.Value | None:
        col = evidence.get(semantic)
        if col not in columns:
            return None
        k = columns.index(col)
        return pairs[f"g{k}"] == len(level_names(cfg.comparisons[k])) - 1

    first = different("FirstName")
    others = [x for x in (different("Email"), different("BirthDate")) if x is not None]
    if first is None or not others:
        return None
    either = others[0] if len(others) == 1 else others[0] | others[1]
    return first & either


def match(adapter: EngineAdapter, staged: ibis.Table, cfg: MatchingConfig, tag: str,
          evidence: dict[str, str] | None = None) -> MatchResult:
    """Score the candidate pairs of ``staged`` (``_idx``, ``_tessera_record`` and the columns)."""
    dialect = adapter.dialect
    methods = {c.method for c in cfg.comparisons}
    if methods & {"levenshtein", "email", "date"}:
        adapter.prepare_functions({"levenshtein"})
    n = adapter.count(staged)
    p = prepare(adapter, staged, cfg, tag)
    gcols = [f"g{i}" for i in range(len(cfg.comparisons))]
    blocked = adapter.create_table(f"{tag}match_blocked", candidate_pairs(p, cfg), temp=True)
    pairs = adapter.create_table(f"{tag}match_pairs", _pair_levels(blocked, p, cfg, dialect), temp=True)
    patterns = adapter.to_arrow(pairs.group_by(gcols).agg(_n=ibis._.count()).order_by(gcols))
    u_pat = pa.table({}) if n < 2 else adapter.to_arrow(
        _pair_levels(_u_pairs(adapter, p, n, tag), p, cfg, dialect).group_by(gcols).agg(_n=ibis._.count()).order_by(gcols)
    )

    def arrays(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        if t.num_rows == 0:
            return np.zeros((0, len(gcols)), dtype=np.int64), np.zeros(0)
        lv = np.stack([t.column(g).to_numpy().astype(np.int64) for g in gcols], axis=1)
        return lv, t.column("_n").to_numpy().astype(float)

    levels, counts = arrays(patterns)
    model = fit(cfg, levels, counts, *arrays(u_pat), n)
    prob = model.probability(levels) if len(counts) else np.zeros(0)
    weight = model.weights(levels).sum(axis=1) + math.log2(model.prior / (1 - model.prior)) if len(counts) \
        else np.zeros(0)
    keep = prob >= cfg.review
    scored = pa.table({
        **{g: pa.array(levels[keep, i].astype(np.int8)) for i, g in enumerate(gcols)},
        "probability": pa.array(prob[keep]),
        "weight": pa.array(np.round(weight[keep], 4)),
    })
    scored_t = adapter.create_table(f"{tag}match_scores", scored, temp=True)
    found = pairs.join(scored_t, gcols)
    cases = []
    refuse = guard_condition(cfg, evidence or {}, found) if cfg.guard else None
    if refuse is not None:
        cases.append((refuse, "refused"))
    status = ibis.cases(*cases, (found.probability >= cfg.merge, "merge"), else_="review")
    matches_name = f"{tag}matches"
    matches = adapter.create_table(matches_name, found.select(
        "idx_l", "idx_r", "record_l", "record_r", "probability", "weight", *gcols, status=status))
    links = adapter.to_arrow(matches.filter(matches.status == "merge").select("idx_l", "idx_r"))
    n_review = adapter.count(matches.filter(matches.status == "review"))
    n_refused = adapter.count(matches.filter(matches.status == "refused"))
    counts_out = {
        "candidate_pairs": int(counts.sum()),
        "matched_pairs": links.num_rows,
        "review_pairs": n_review,
        "refused_pairs": n_refused,
        "match_share": round(float(model.prior), 6),
    }
    return MatchResult(matches_name, links, model, counts_out)
