"""Comparing two runs case by case: the ratio of medians with a confidence interval, and a verdict.

Pure: no I/O. The interval is Price and Bonett's (2002) distribution-free interval for a ratio of
medians: each sample's log-median variance comes from a pair of order statistics, so it needs no
resampling and no distributional assumption, and a 1,000-case comparison takes milliseconds.

A verdict of `regression` or `improvement` needs the change to lie beyond the threshold with
false-discovery control across all cases (Benjamini–Hochberg), so a suite of hundreds of cases
does not raise a false alarm in every CI run. A change inside the threshold is `unchanged`; an
interval that straddles a threshold is `noise`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import bdtr, ndtr, ndtri, stdtr, stdtrit

REGRESSION, IMPROVEMENT, UNCHANGED, NOISE = "regression", "improvement", "unchanged", "noise"
VERDICT_ORDER = {REGRESSION: 0, NOISE: 1, IMPROVEMENT: 2, UNCHANGED: 3}


@dataclass(frozen=True)
class CaseComparison:
    case_key: str
    base_median: float
    head_median: float
    base_n: int
    head_n: int
    ratio: float  # head / base: above 1 is slower for a time
    ci_low: float
    ci_high: float
    p_value: float  # of "the change lies within the threshold", two-sided
    verdict: str

    @property
    def change(self) -> float:
        return self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change}


@dataclass
class Comparison:
    cases: list[CaseComparison]
    only_base: list[str] = field(default_factory=list)
    only_head: list[str] = field(default_factory=list)
    threshold: float = 0.05
    fdr: float = 0.05
    level: float = 0.95

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICT_ORDER}
        for c in self.cases:
            out[c.verdict] += 1
        return out

    def worst_first(self) -> list[CaseComparison]:
        return sorted(self.cases, key=lambda c: (VERDICT_ORDER[c.verdict], -abs(math.log(c.ratio))
                                                 if c.ratio > 0 else 0))


def log_median_se(samples: np.ndarray) -> tuple[float, float]:
    """(ln median, standard error of ln median) by Price and Bonett's order-statistic rule."""
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    if n == 0:
        raise ValueError("no samples")
    x = np.maximum(x, np.finfo(float).tiny)
    med = float(np.median(x))
    if n < 3:
        return math.log(med), math.inf
    c = max(1, round((n + 1) / 2 - math.sqrt(n)))
    alpha_star = 2 * float(bdtr(c - 1, n, 0.5))
    z = float(ndtri(1 - alpha_star / 2)) if alpha_star < 1 else 0.0
    if z <= 0:
        return math.log(med), math.inf
    spread = math.log(x[n - c]) - math.log(x[c - 1])
    return math.log(med), spread / (2 * z)


def benjamini_hochberg(p_values: Sequence[float], q: float) -> np.ndarray:
    """Boolean mask of the hypotheses rejected at false-discovery rate q."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p)
    passed = p[order] <= q * np.arange(1, m + 1) / m
    rejected = np.zeros(m, dtype=bool)
    if passed.any():
        k = int(np.nonzero(passed)[0].max())
        rejected[order[: k + 1]] = True
    return rejected


def between_rounds_se(base: Sequence[float], head: Sequence[float]) -> tuple[float, int]:
    """Standard error of the log-ratio from the spread of per-round medians, and its degrees
    of freedom: how much a case moves between rounds on this machine, which the samples of one
    round cannot show."""
    lb, lh = np.log(np.maximum(base, 1e-300)), np.log(np.maximum(head, 1e-300))
    df = len(lb) + len(lh) - 2
    pooled = ((len(lb) - 1) * np.var(lb, ddof=1) + (len(lh) - 1) * np.var(lh, ddof=1)) / df
    return math.sqrt(pooled * (1 / len(lb) + 1 / len(lh))), df


def compare(base: Mapping[str, Sequence[float]], head: Mapping[str, Sequence[float]],
            threshold: float = 0.05, fdr: float = 0.05, level: float = 0.95,
            base_rounds: Mapping[str, Sequence[float]] | None = None,
            head_rounds: Mapping[str, Sequence[float]] | None = None) -> Comparison:
    """Compare per-case raw samples (seconds per iteration; lower is better).

    Where both runs measured a case in two or more rounds (`bench run --rounds`), the interval
    also allows for the spread between rounds (Student's t on the round medians' pooled
    variance, added to the samples' own), so a machine whose figures wander between runs says
    `noise` instead of raising false alarms."""
    if not 0 < threshold < 1:
        raise ValueError("threshold must be a fraction between 0 and 1")
    keys = [k for k in base if k in head]
    z = float(ndtri(0.5 + level / 2))
    up, down = math.log1p(threshold), math.log1p(-threshold)
    stats = []
    for k in keys:
        lb, sb = log_median_se(np.asarray(base[k]))
        lh, sh = log_median_se(np.asarray(head[k]))
        d, se = lh - lb, math.hypot(sb, sh)
        rb, rh = (base_rounds or {}).get(k), (head_rounds or {}).get(k)
        df = 0
        if rb and rh and len(rb) > 1 and len(rh) > 1:
            se_rounds, df = between_rounds_se(rb, rh)
            se = math.hypot(se, se_rounds)
        if df:  # few rounds: Student's t, not the normal, for tests and the interval
            p_up = float(stdtr(df, -(d - up) / se)) if se > 0 else float(d <= up)
            p_down = float(stdtr(df, (d - down) / se)) if se > 0 else float(d >= down)
            crit = float(stdtrit(df, 0.5 + level / 2))
            stats.append((k, d, se, min(1.0, 2 * min(p_up, p_down)), len(base[k]),
                          len(head[k]), math.exp(lb), math.exp(lh), crit))
            continue
        if se == 0:  # identical constant samples: an exact figure
            p_up = 0.0 if d > up else 1.0
            p_down = 0.0 if d < down else 1.0
        elif math.isinf(se):
            p_up = p_down = 1.0
        else:
            p_up = float(ndtr(-(d - up) / se))  # H0: ratio <= 1 + threshold
            p_down = float(ndtr((d - down) / se))  # H0: ratio >= 1 - threshold
        stats.append((k, d, se, min(1.0, 2 * min(p_up, p_down)), len(base[k]), len(head[k]),
                      math.exp(lb), math.exp(lh), z))
    rejected = benjamini_hochberg([s[3] for s in stats], fdr)
    cases = []
    for (k, d, se, p, nb, nh, mb, mh, crit), rej in zip(stats, rejected, strict=True):
        lo, hi = (d - crit * se, d + crit * se) if math.isfinite(se) else (-math.inf, math.inf)
        if rej:
            verdict = REGRESSION if d > 0 else IMPROVEMENT
        elif down <= lo and hi <= up:
            verdict = UNCHANGED
        else:
            verdict = NOISE
        cases.append(CaseComparison(k, mb, mh, nb, nh, math.exp(d), math.exp(lo), math.exp(hi),
                                    p, verdict))
    return Comparison(
        cases=cases,
        only_base=[k for k in base if k not in head],
        only_head=[k for k in head if k not in base],
        threshold=threshold, fdr=fdr, level=level,
    )


def round_spread(medians: Any) -> float | None:
    """How far a case moved between its rounds: half the range of the round medians, as a
    fraction of their median (None without two rounds)."""
    if not isinstance(medians, list) or len(medians) < 2:
        return None
    mid = float(np.median(medians))
    return (max(medians) - min(medians)) / 2 / mid if mid else None


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """A nested fingerprint as {dotted key: value} (lists of mappings by index)."""
    out: dict[str, Any] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(d, list) and d and all(isinstance(x, Mapping) for x in d):
        for i, v in enumerate(d):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = d
    return out


def environment_diff(base: Mapping[str, Any],
                     head: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Differences between two environment fingerprints, as (dotted key, base, head)."""
    fb, fh = flatten(base), flatten(head)
    return [(k, fb.get(k), fh.get(k)) for k in sorted(set(fb) | set(fh)) if fb.get(k) != fh.get(k)]
