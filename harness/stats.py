"""Pure statistics over raw samples: no I/O, no clocks.

The confidence interval of the median is distribution-free: it comes from order statistics,
interpolated between neighbouring order statistics as Hettmansperger and Sheather (1986) describe,
so its coverage stays close to nominal for small n instead of jumping between binomial steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

PERCENTILES = (5, 25, 75, 95, 99)


@dataclass(frozen=True)
class Summary:
    """What a measurement's raw samples say, in the samples' unit (seconds)."""

    n: int
    min: float
    max: float
    mean: float
    stdev: float
    median: float
    p5: float
    p25: float
    p75: float
    p95: float
    p99: float
    iqr: float
    ci_low: float
    ci_high: float
    ci_level: float
    outliers: int

    @property
    def ci_rel(self) -> float:
        """Half-width of the median's CI relative to the median (the larger side)."""
        return ci_rel(self.median, self.ci_low, self.ci_high)

    def to_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["ci_rel"] = self.ci_rel
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Summary:
        """A stored summary (its derived `ci_rel` dropped; a missing bound is unbounded; "inf"
        as JSON holds it). A summary lacking another field is a TypeError."""
        values = {f.name: float(v) if isinstance(v, str) else v
                  for f in fields(cls) if (v := d.get(f.name)) is not None}
        values.setdefault("ci_low", -math.inf)
        values.setdefault("ci_high", math.inf)
        return cls(**values)


def ci_rel(median: float, low: float, high: float) -> float:
    if not math.isfinite(low) or not math.isfinite(high):
        return math.inf
    if median == 0:
        return 0.0 if low == high == 0 else math.inf
    return max(median - low, high - median) / abs(median)


def median_ci(sorted_samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from sorted samples.

    Returns (-inf, inf) when n is too small for any pair of order statistics to reach `level`.
    """
    from scipy.special import bdtr, ndtri  # scipy.stats would cost 0.5 s of start-up

    x = np.asarray(sorted_samples, dtype=float)
    n = x.size
    if n == 0:
        return (math.nan, math.nan)
    # gamma(k) = P(k <= B <= n-k), B ~ Bin(n, 1/2): coverage of [x_(k), x_(n-k+1)] (1-based).
    # Start from the normal approximation and step to the exact k.
    k = max(1, int(n / 2 + ndtri((1 - level) / 2) * math.sqrt(n) / 2))

    def gamma(j: int) -> float:
        if j < 1 or 2 * j > n + 1:
            return 0.0
        return float(bdtr(n - j, n, 0.5) - bdtr(j - 1, n, 0.5))

    while k > 1 and gamma(k) < level:
        k -= 1
    while 2 * (k + 1) <= n + 1 and gamma(k + 1) >= level:
        k += 1
    gk = gamma(k)
    if gk < level:
        return (-math.inf, math.inf)
    gk1 = gamma(k + 1)
    lo, hi = x[k - 1], x[n - k]
    if gk1 <= 0 or gk == gk1 or 2 * (k + 1) > n + 1:
        return (float(lo), float(hi))
    interp = (gk - level) / (gk - gk1)
    lam = (n - k) * interp / (k + (n - 2 * k) * interp)
    # a + lam (b - a), not (1 - lam) a + lam b: between tied order statistics the latter can
    # lose an ulp, and the interval then misses the median it is the interval of
    low = x[k - 1] + lam * (x[k] - x[k - 1])
    high = x[n - k] - lam * (x[n - k] - x[n - k - 1])
    return (float(low), float(high))


def summarize(samples: Sequence[float] | np.ndarray, level: float = 0.95) -> Summary:
    """Summary of raw samples; raises ValueError on an empty sequence."""
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    if n == 0:
        raise ValueError("no samples to summarize")
    p5, p25, median, p75, p95, p99 = np.percentile(x, [5, 25, 50, 75, 95, 99])
    iqr = p75 - p25
    fence_lo, fence_hi = p25 - 1.5 * iqr, p75 + 1.5 * iqr
    outliers = int(np.count_nonzero((x < fence_lo) | (x > fence_hi)))
    lo, hi = median_ci(x, level)
    return Summary(
        n=n,
        min=float(x[0]),
        max=float(x[-1]),
        mean=float(x.mean()),
        stdev=float(x.std(ddof=1)) if n > 1 else 0.0,
        median=float(median),
        p5=float(p5),
        p25=float(p25),
        p75=float(p75),
        p95=float(p95),
        p99=float(p99),
        iqr=float(iqr),
        ci_low=lo,
        ci_high=hi,
        ci_level=level,
        outliers=outliers,
    )
