"""Paired comparison of two sides measured in alternating turns (`bench ab`). Pure: no I/O.

Each pair of adjacent turns (one per side, in random order) gives one paired log-ratio
``ln(head turn median / base turn median)``. Both turns of a pair saw the same machine within a
few tens of milliseconds, so the machine's drift cancels in the ratio; what is left is the
change and the short-term noise. The estimate is the Hodges–Lehmann estimator of the paired
log-ratios (the median of their Walsh averages) and its interval comes from inverting the
Wilcoxon signed-rank test (exact null distribution up to EXACT_MAX pairs, normal beyond): it is
distribution-free, needs only a symmetric distribution of the log-ratios around their centre,
and keeps its coverage with a few dozen pairs, where a normal interval on so few values would not.

Verdicts follow `results.compare`: `regression`/`improvement` when the change lies beyond the
threshold with the false-discovery rate controlled across cases (Benjamini–Hochberg on the
p-value of "the change lies within the threshold"), `unchanged` when the interval lies within
it, `noise` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from results.compare import (
    IMPROVEMENT,
    NOISE,
    REGRESSION,
    UNCHANGED,
    CaseComparison,
    Comparison,
    benjamini_hochberg,
)

EXACT_MAX = 300  # pairs up to which the signed-rank null distribution is computed exactly
MIN_GROUP = 3  # pairs a worker combination needs before its offset is weighed


@lru_cache(maxsize=64)
def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= t) for t = 0 .. n(n+1)/2 under the null (exact, by counting subsets)."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):  # add rank k to every subset: counts[t] += counts[t - k]
        counts[k:] = counts[k:] + counts[:-k].copy()
        counts /= 2.0  # keep it a probability as we go (2^n subsets in all)
    return np.cumsum(counts)


def _cdf(n: int, t: float) -> float:
    """P(T+ <= t) under the null, exact for small n, normal with continuity beyond."""
    if n <= EXACT_MAX:
        cdf = _signed_rank_cdf(n)
        i = math.floor(t + 1e-9)
        return 0.0 if i < 0 else float(cdf[min(i, len(cdf) - 1)])
    mean, var = n * (n + 1) / 4, n * (n + 1) * (2 * n + 1) / 24
    return float(ndtr((t + 0.5 - mean) / math.sqrt(var)))


def _critical(n: int, level: float) -> int | None:
    """Largest c with P(T+ <= c - 1) <= alpha/2, or None when no such interval exists."""
    alpha2 = (1 - level) / 2
    if n <= EXACT_MAX:
        cdf = _signed_rank_cdf(n)
        ok = np.nonzero(cdf <= alpha2)[0]  # t with P(T+ <= t) <= alpha/2
        return int(ok.max()) + 1 if ok.size else None
    mean, var = n * (n + 1) / 4, n * (n + 1) * (2 * n + 1) / 24
    c = math.floor(mean - float(ndtri(1 - alpha2)) * math.sqrt(var))
    return c if c >= 1 else None


def _walsh(d: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(d.size)
    return np.sort((d[i] + d[j]) / 2)


def signed_rank_p(d: Sequence[float], shift: float, greater: bool) -> float:
    """One-sided Wilcoxon signed-rank p-value of H0 "centre <= shift" (greater) or
    "centre >= shift" (not greater)."""
    x = np.asarray(d, dtype=float) - shift
    x = x[x != 0]
    n = x.size
    if n == 0:
        return 1.0
    ranks = _ranks(np.abs(x))
    t_plus = float(ranks[x > 0].sum())
    top = n * (n + 1) / 2
    if greater:  # large T+ is evidence against "centre <= shift"
        return min(1.0, 1.0 - _cdf(n, math.ceil(t_plus - 1e-9) - 1))
    return min(1.0, _cdf(n, t_plus)) if t_plus <= top else 1.0


def _ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(a.size)
    ranks[order] = np.arange(1, a.size + 1)
    for value in np.unique(a):  # average the ranks of ties
        tied = a == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def hodges_lehmann(d: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(estimate, low, high) of the centre of `d`: the median of the Walsh averages and the
    signed-rank interval; low/high are infinite when there are too few values for `level`."""
    x = np.asarray(d, dtype=float)
    if x.size == 0:
        raise ValueError("no paired values")
    w = _walsh(x)
    est = float(np.median(w))
    c = _critical(x.size, level)
    if c is None:
        return est, -math.inf, math.inf
    return est, float(w[c - 1]), float(w[w.size - c])


def paired_log_ratios(base_turns: Sequence[float], head_turns: Sequence[float]) -> np.ndarray:
    """ln(head / base) per pair of turn medians (seconds per call; lower is faster)."""
    b = np.maximum(np.asarray(base_turns, dtype=float), np.finfo(float).tiny)
    h = np.maximum(np.asarray(head_turns, dtype=float), np.finfo(float).tiny)
    if b.shape != h.shape:
        raise ValueError("every pair needs one turn of each side")
    return np.log(h) - np.log(b)


@dataclass(frozen=True)
class PairedEstimate:
    """The paired comparison of one case, before the verdict across cases."""

    ratio: float  # head / base
    ci_low: float
    ci_high: float
    p_value: float  # of "the change lies within the threshold", two-sided
    pairs: int
    invocation_sd: float = 0.0  # of the log-ratio, from the offset between worker processes

    @property
    def half_width(self) -> float:
        """Relative half-width of the interval (the larger side), for the stopping rule."""
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return math.inf
        return max(self.ci_high / self.ratio - 1, 1 - self.ci_low / self.ratio)

    @property
    def floor(self) -> float:
        """The smallest change this case could have detected: how far from "no change" the
        interval reaches (an A/A run's figure is the case's noise floor at that budget)."""
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return math.inf
        return max(self.ci_high - 1, 1 - self.ci_low)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "half_width": self.half_width, "floor": self.floor}


def invocation_variance(log_ratios: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """Between-invocation variance of the combined log-ratio, and the number of groups used.

    Each group is one combination of a base and a head worker process. Processes of the same
    code differ by a few percent on some machines (memory layout, placement: Mytkowicz et al.
    2009, Kalibera & Jones 2013), and pairs within one combination share that offset, so the
    pairs alone understate the uncertainty. The per-combination Hodges–Lehmann estimates are
    pooled as a random-effects meta-analysis (DerSimonian–Laird): the heterogeneity beyond what
    their own spread explains is the invocation variance tau^2; none, and the pairs' interval
    stands. A group's own variance comes from its robust spread (MAD; the Hodges–Lehmann
    estimator's variance is pi/3 sigma^2/n at the normal), so that it is the same whatever
    level the caller's interval has and exists from MIN_GROUP pairs (an exact signed-rank
    interval needs six pairs at 95% and more at stricter levels, and groups without one would
    drop out and take the invocation variance with them). In a balanced W x W design the
    combined offset (mean of W base and W head processes' offsets) has variance tau^2 / W."""
    est, var = [], []
    for g in np.unique(groups):
        d = log_ratios[groups == g]
        if d.size < MIN_GROUP:
            continue
        e = float(np.median(_walsh(d)))  # the Hodges–Lehmann estimate (no interval needed)
        sigma = 1.4826 * float(np.median(np.abs(d - np.median(d))))
        est.append(e)
        var.append(max(math.pi / 3 * sigma ** 2 / d.size, 1e-12))
    k = len(est)
    if k < 2:
        return 0.0, k
    w = 1 / np.asarray(var)
    e = np.asarray(est)
    mean = float(np.sum(w * e) / np.sum(w))
    q = float(np.sum(w * (e - mean) ** 2))
    tau2 = max(0.0, (q - (k - 1)) / float(np.sum(w) - np.sum(w ** 2) / np.sum(w)))
    workers = max(1, round(math.sqrt(k)))
    return tau2 / workers, k


def estimate(log_ratios: Sequence[float], threshold: float = 0.05, level: float = 0.95,
             groups: Sequence[int] | None = None) -> PairedEstimate:
    """Hodges–Lehmann ratio, its signed-rank interval and the within-threshold p-value.

    With `groups` (the worker combination of each pair), the interval and the p-value also
    allow for the offset between worker processes (see invocation_variance)."""
    d = np.asarray(log_ratios, dtype=float)
    est, lo, hi = hodges_lehmann(d, level)
    up, down = math.log1p(threshold), math.log1p(-threshold)
    inv = 0.0
    if groups is not None and d.size:
        inv, _ = invocation_variance(d, np.asarray(groups))
    if inv > 0 and math.isfinite(lo) and math.isfinite(hi):
        z = float(ndtri(0.5 + level / 2))
        lo = est - math.hypot(est - lo, z * math.sqrt(inv))
        hi = est + math.hypot(hi - est, z * math.sqrt(inv))
        se = (hi - lo) / (2 * z)
        p_up = float(ndtr(-(est - up) / se))
        p_down = float(ndtr((est - down) / se))
    else:
        p_up = signed_rank_p(d, up, greater=True)  # H0: ratio <= 1 + threshold
        p_down = signed_rank_p(d, down, greater=False)  # H0: ratio >= 1 - threshold
    return PairedEstimate(math.exp(est), math.exp(lo), math.exp(hi),
                          min(1.0, 2 * min(p_up, p_down)), int(d.size),
                          math.sqrt(inv))


def decided(log_ratios: Sequence[float], threshold: float, fdr: float, cases: int,
            target_ci: float, groups: Sequence[int] | None = None) -> bool:
    """Would more pairs change this case's verdict? The stopping rule of `bench ab`.

    Yes, until one of: the interval at the level Benjamini–Hochberg needs at worst (1 - fdr /
    cases; a p-value below fdr / cases is rejected whatever the other cases show) lies beyond
    the threshold (a change `verdicts` will call); the 95% interval lies within it (unchanged);
    or that strict interval is within ±target_ci (as precise as asked: the change is at the
    threshold, and more pairs would only say so more exactly). A width rule alone stops a case
    whose interval is narrow at 95% but not at the level the correction across cases asks for,
    which then reads `noise`."""
    strict = estimate(log_ratios, threshold, 1 - fdr / max(1, cases), groups)
    if strict.ci_low > 1 + threshold or strict.ci_high < 1 - threshold:
        return True
    if strict.half_width <= target_ci:
        return True
    plain = estimate(log_ratios, threshold, 0.95, groups)
    return 1 - threshold <= plain.ci_low and plain.ci_high <= 1 + threshold


def min_pairs(fdr: float, cases: int) -> int:
    """Fewest pairs with which the exact signed-rank test can reach p < fdr / cases (all pairs
    on one side: p = 2 / 2^n), plus two, so that one stray pair does not forbid a verdict."""
    return math.ceil(math.log2(2 * max(1, cases) / fdr)) + 2


@dataclass(frozen=True)
class PairedCase:
    """What `bench ab` knows of one case besides the ratio: its turns and their medians."""

    case_key: str
    base_median: float  # of the pooled samples of the accepted turns
    head_median: float
    base_n: int
    head_n: int
    estimate: PairedEstimate


def verdicts(cases: Sequence[PairedCase], threshold: float = 0.05, fdr: float = 0.05,
             level: float = 0.95) -> Comparison:
    """The verdict per case, false-discovery rate controlled across cases, as a Comparison
    (so `bench compare`'s renderers show it)."""
    if not 0 < threshold < 1:
        raise ValueError("threshold must be a fraction between 0 and 1")
    up, down = 1 + threshold, 1 - threshold
    rejected = benjamini_hochberg([c.estimate.p_value for c in cases], fdr)
    out = []
    for c, rej in zip(cases, rejected, strict=True):
        e = c.estimate
        if rej:
            verdict = REGRESSION if e.ratio > 1 else IMPROVEMENT
        elif down <= e.ci_low and e.ci_high <= up:
            verdict = UNCHANGED
        else:
            verdict = NOISE
        out.append(CaseComparison(c.case_key, c.base_median, c.head_median, c.base_n, c.head_n,
                                  e.ratio, e.ci_low, e.ci_high, e.p_value, verdict))
    return Comparison(cases=out, threshold=threshold, fdr=fdr, level=level)
