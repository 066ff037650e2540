"""harness.stats against independent computations: numpy/scipy for the summary, exact binomial
arithmetic for the order statistics behind the median's CI, and a coverage simulation."""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps

from harness.stats import PERCENTILES, Summary, ci_rel, median_ci, summarize

# --------------------------------------------------------------------------------------------
# Independent reference computations (no numpy percentile, no scipy binom)


def _quantile_linear(sorted_x: list[float], q: float) -> float:
    """Type-7 (linear) sample quantile, written out by hand."""
    h = (len(sorted_x) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_x) - 1)
    return sorted_x[lo] + (h - lo) * (sorted_x[hi] - sorted_x[lo])


def _tukey_outliers(samples: list[float]) -> int:
    xs = sorted(samples)
    q1, q3 = _quantile_linear(xs, 0.25), _quantile_linear(xs, 0.75)
    iqr = q3 - q1
    return sum(1 for v in xs if v < q1 - 1.5 * iqr or v > q3 + 1.5 * iqr)


@functools.cache
def _binomial_cdf(n: int) -> tuple[int, ...]:
    """Exact cumulative counts: entry j is sum_{i<=j} C(n, i) (divide by 2^n for P(B <= j))."""
    return tuple(itertools.accumulate(math.comb(n, i) for i in range(n + 1)))


def _coverage(n: int, k: int) -> Fraction:
    """Exact P(X_(k) <= median <= X_(n-k+1)) = P(k <= B <= n-k), B ~ Bin(n, 1/2)."""
    if k < 1 or 2 * k > n + 1:
        return Fraction(0)
    cdf = _binomial_cdf(n)
    return Fraction(cdf[n - k] - cdf[k - 1], 2**n)


def _largest_k(n: int, level: float) -> int | None:
    """The largest k whose order-statistic interval [X_(k), X_(n-k+1)] reaches `level`."""
    best = None
    for k in range(1, (n + 1) // 2 + 1):
        if _coverage(n, k) < Fraction(level):
            break  # coverage falls as k grows
        best = k
    return best


def _hs_interval(x: np.ndarray, level: float) -> tuple[float, float]:
    """Hettmansperger-Sheather interpolation, from exact binomial coverages."""
    n = x.size
    k = _largest_k(n, level)
    assert k is not None
    gk, gk1 = float(_coverage(n, k)), float(_coverage(n, k + 1))
    if gk1 == 0 or gk == gk1:
        return float(x[k - 1]), float(x[n - k])
    i = (gk - level) / (gk - gk1)
    lam = (n - k) * i / (k + (n - 2 * k) * i)
    return (
        float((1 - lam) * x[k - 1] + lam * x[k]),
        float((1 - lam) * x[n - k] + lam * x[n - k - 1]),
    )


# --------------------------------------------------------------------------------------------
# summarize() against numpy / scipy / hand-written references

SAMPLE_SETS = {
    "lognormal": np.random.default_rng(1).lognormal(-9, 0.4, 257),
    "normal": np.random.default_rng(2).normal(1e-3, 1e-5, 40),
    "with_outliers": np.concatenate(
        [np.random.default_rng(3).normal(5e-6, 1e-8, 100), [9e-6, 1.2e-5, 1e-6]]
    ),
    "tiny": np.array([3.0, 1.0, 2.0]),
    "seven": np.array([7.0, 1.0, 3.0, 5.0, 2.0, 6.0, 4.0]),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_SETS))
def test_summarize_matches_numpy_and_scipy(name: str) -> None:
    raw = SAMPLE_SETS[name]
    s = summarize(list(raw))  # a plain, unsorted list
    xs = sorted(float(v) for v in raw)
    assert s.n == len(xs)
    assert s.min == xs[0]
    assert s.max == xs[-1]
    assert s.mean == pytest.approx(float(np.mean(raw)), rel=1e-12)
    assert s.stdev == pytest.approx(float(np.std(raw, ddof=1)), rel=1e-12)
    assert s.stdev == pytest.approx(float(sps.tstd(raw)), rel=1e-9)
    assert s.median == pytest.approx(float(np.median(raw)), rel=1e-12)
    for p in PERCENTILES:
        expected = _quantile_linear(xs, p / 100)
        assert getattr(s, f"p{p}") == pytest.approx(expected, rel=1e-12, abs=0), p
        assert getattr(s, f"p{p}") == pytest.approx(float(np.percentile(raw, p)), rel=1e-12)
    assert s.iqr == pytest.approx(float(sps.iqr(raw)), rel=1e-9, abs=1e-300)
    assert s.outliers == _tukey_outliers(xs)
    assert (s.ci_low, s.ci_high) == median_ci(np.sort(raw))
    assert s.ci_level == 0.95
    assert s.min <= s.p5 <= s.p25 <= s.median <= s.p75 <= s.p95 <= s.p99 <= s.max


def test_summarize_counts_tukey_outliers_on_both_sides() -> None:
    xs = [10.0] * 20 + [10.5] * 20 + [11.0] * 20 + [100.0, 200.0, -50.0]
    s = summarize(xs)
    assert s.outliers == 3 == _tukey_outliers(xs)
    # Values exactly on a fence are not outliers.
    base = [1.0, 2.0, 3.0, 4.0, 5.0]  # q1=2, q3=4, iqr=2: fences -1 and 7
    assert summarize([*base, 7.0]).outliers == _tukey_outliers([*base, 7.0])
    assert summarize([1.0, 2.0, 3.0, 4.0, 5.0]).outliers == 0


def test_summarize_with_outliers_set_finds_the_planted_ones() -> None:
    s = summarize(SAMPLE_SETS["with_outliers"])
    assert s.outliers >= 3


def test_summarize_does_not_modify_its_input() -> None:
    data = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 9.0, 0.5])
    copy = data.copy()
    summarize(data)
    np.testing.assert_array_equal(data, copy)


def test_summarize_empty_raises_value_error() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize(np.array([]))


def test_summarize_single_sample() -> None:
    s = summarize([2.5e-3])
    assert s.n == 1
    assert s.min == s.max == s.mean == s.median == 2.5e-3
    assert s.p5 == s.p99 == 2.5e-3
    assert s.stdev == 0.0
    assert s.iqr == 0.0
    assert s.outliers == 0
    assert s.ci_low == -math.inf
    assert s.ci_high == math.inf
    assert s.ci_rel == math.inf


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_fewer_than_six_samples_give_an_infinite_ci(n: int) -> None:
    # With n <= 5 even [min, max] covers the median with probability 1 - 2/2^n < 95%.
    assert _largest_k(n, 0.95) is None
    s = summarize(np.linspace(1.0, 2.0, n))
    assert (s.ci_low, s.ci_high) == (-math.inf, math.inf)
    assert s.ci_rel == math.inf
    assert median_ci(np.linspace(1.0, 2.0, n)) == (-math.inf, math.inf)


def test_six_samples_give_min_max_at_95_percent() -> None:
    # n=6: [X_(1), X_(6)] covers with 1 - 2/64 = 96.9%, [X_(2), X_(5)] only 78%: interpolated.
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    lo, hi = median_ci(x)
    assert math.isfinite(lo) and math.isfinite(hi)
    assert 1.0 <= lo <= 2.0
    assert 5.0 <= hi <= 6.0
    assert lo == pytest.approx(7.0 - hi)  # symmetric data, symmetric interval


def test_identical_samples() -> None:
    s = summarize([4.2e-6] * 50)
    assert s.min == s.max == s.median == s.mean == pytest.approx(4.2e-6)
    assert s.stdev == pytest.approx(0.0, abs=1e-20)
    assert s.iqr == 0.0
    assert s.outliers == 0
    assert s.ci_low == pytest.approx(4.2e-6)
    assert s.ci_high == pytest.approx(4.2e-6)
    assert s.ci_rel == pytest.approx(0.0, abs=1e-12)


def test_median_ci_empty_is_nan() -> None:
    lo, hi = median_ci(np.array([]))
    assert math.isnan(lo) and math.isnan(hi)


def test_summary_to_dict_round_trips_fields_and_adds_ci_rel() -> None:
    s = summarize(SAMPLE_SETS["lognormal"])
    d = s.to_dict()
    assert d["ci_rel"] == s.ci_rel
    assert Summary(**{k: v for k, v in d.items() if k != "ci_rel"}) == s
    assert s.ci_rel == pytest.approx(
        max(s.median - s.ci_low, s.ci_high - s.median) / s.median
    )


def test_ci_rel_edge_cases() -> None:
    assert ci_rel(10.0, 9.0, 10.5) == pytest.approx(0.1)  # the larger side
    assert ci_rel(10.0, 9.8, 11.0) == pytest.approx(0.1)
    assert ci_rel(10.0, -math.inf, 11.0) == math.inf
    assert ci_rel(10.0, 9.0, math.inf) == math.inf
    assert ci_rel(10.0, math.nan, 11.0) == math.inf
    assert ci_rel(0.0, 0.0, 0.0) == 0.0
    assert ci_rel(0.0, -1.0, 1.0) == math.inf
    assert ci_rel(-2.0, -3.0, -1.0) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# median_ci against exact order-statistic bounds


@pytest.mark.parametrize("n", [6, 7, 8, 9, 10, 11, 12, 15, 20, 31, 50, 99, 100, 257, 1000])
@pytest.mark.parametrize("level", [0.90, 0.95, 0.99])
def test_median_ci_lies_between_conservative_order_statistic_bounds(n: int, level: float) -> None:
    k = _largest_k(n, level)
    if k is None:
        assert median_ci(np.arange(1.0, n + 1), level) == (-math.inf, math.inf)
        return
    assert _coverage(n, k) >= Fraction(level) > _coverage(n, k + 1)
    x = np.sort(np.random.default_rng(n * 1000 + int(level * 100)).lognormal(0, 1, n))
    lo, hi = median_ci(x, level)
    # [X_(k), X_(n-k+1)] reaches the level; [X_(k+1), X_(n-k)] does not: the interpolated
    # interval lies between them on each side.
    assert x[k - 1] <= lo, (k, lo)
    assert hi <= x[n - k], (k, hi)
    if 2 * (k + 1) <= n + 1:
        assert lo <= x[k], (k, lo)
        assert x[n - k - 1] <= hi, (k, hi)
    assert lo <= np.median(x) <= hi
    # And equals the Hettmansperger-Sheather formula computed from exact binomials.
    exp_lo, exp_hi = _hs_interval(x, level)
    assert lo == pytest.approx(exp_lo, rel=1e-9)
    assert hi == pytest.approx(exp_hi, rel=1e-9)


def test_median_ci_narrows_with_n_and_widens_with_level() -> None:
    rng = np.random.default_rng(7)
    widths = []
    for n in (20, 200, 2000):
        x = np.sort(rng.normal(1.0, 0.1, n))
        lo, hi = median_ci(x)
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    x = np.sort(rng.normal(1.0, 0.1, 300))
    w90 = np.subtract(*median_ci(x, 0.90)[::-1])
    w95 = np.subtract(*median_ci(x, 0.95)[::-1])
    w99 = np.subtract(*median_ci(x, 0.99)[::-1])
    assert w90 < w95 < w99


def test_median_ci_is_location_scale_equivariant() -> None:
    x = np.sort(np.random.default_rng(11).exponential(1.0, 73))
    lo, hi = median_ci(x)
    lo2, hi2 = median_ci(3.0 * x + 5.0)
    assert lo2 == pytest.approx(3.0 * lo + 5.0)
    assert hi2 == pytest.approx(3.0 * hi + 5.0)


def test_summarize_level_is_passed_through() -> None:
    x = SAMPLE_SETS["lognormal"]
    s90, s99 = summarize(x, level=0.90), summarize(x, level=0.99)
    assert s90.ci_level == 0.90 and s99.ci_level == 0.99
    assert s99.ci_low < s90.ci_low <= s90.median <= s90.ci_high < s99.ci_high


# --------------------------------------------------------------------------------------------
# Coverage: a nominal 95% interval covers the true median 93-97% of the time


def _mixture_cdf(x: float) -> float:
    return 0.7 * sps.norm.cdf(x, 1.0, 0.05) + 0.3 * sps.norm.cdf(x, 1.6, 0.1)


def _draw_mixture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    # A fast path and a slow path, the shape of many real latency distributions.
    fast = rng.random(shape) < 0.7
    return np.where(fast, rng.normal(1.0, 0.05, shape), rng.normal(1.6, 0.1, shape))


DISTRIBUTIONS = {
    "lognormal": (lambda rng, shape: rng.lognormal(0.0, 1.0, shape), 1.0),
    "exponential": (lambda rng, shape: rng.exponential(2.0, shape), 2.0 * math.log(2.0)),
    "bimodal": (_draw_mixture, optimize.brentq(lambda x: _mixture_cdf(x) - 0.5, 0.5, 2.0)),
}
REPS = 2000


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [20, 50, 200])
def test_median_ci_coverage_on_skewed_distributions(dist: str, n: int) -> None:
    draw, true_median = DISTRIBUTIONS[dist]
    assert _mixture_cdf(DISTRIBUTIONS["bimodal"][1]) == pytest.approx(0.5)
    rng = np.random.default_rng(20240 + n + len(dist))
    data = np.sort(draw(rng, (REPS, n)), axis=1)
    # For a given n the interval is a fixed interpolation between order statistics, so find
    # where its ends sit (fractional ranks) once, prove that on real samples, then apply it
    # to every replicate at numpy speed.
    ranks = np.arange(n, dtype=float)
    lo_rank, hi_rank = median_ci(ranks)
    for row in data[:40]:
        assert median_ci(row) == pytest.approx(
            (np.interp(lo_rank, ranks, row), np.interp(hi_rank, ranks, row)), rel=1e-12
        )
    lo_i, hi_i = math.floor(lo_rank), math.ceil(hi_rank)
    lo = data[:, lo_i] + (lo_rank - lo_i) * (data[:, lo_i + 1] - data[:, lo_i])
    hi = data[:, hi_i] - (hi_i - hi_rank) * (data[:, hi_i] - data[:, hi_i - 1])
    covered = float(np.mean((lo <= true_median) & (true_median <= hi)))
    assert 0.93 <= covered <= 0.97, f"{dist} n={n}: coverage {covered:.3f}"


def test_median_ci_coverage_direct_calls_small_n() -> None:
    """The same property, calling median_ci on every replicate (small n, fewer reps)."""
    rng = np.random.default_rng(99)
    n, reps = 15, 1500
    data = np.sort(rng.lognormal(0.0, 1.0, (reps, n)), axis=1)
    hits = 0
    for row in data:
        lo, hi = median_ci(row)
        hits += lo <= 1.0 <= hi
    assert 0.93 <= hits / reps <= 0.97


def test_median_ci_holds_the_median_between_tied_order_statistics() -> None:
    # per-call seconds from integer nanoseconds: many ties, as a spin's samples have. The
    # interpolated bounds between two equal order statistics must equal them, to the ulp.
    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(300):
        n = int(rng.integers(50, 3000))
        ns = rng.integers(20100, 20140, n)
        s = summarize(ns * 1e-9)
        misses += not (s.ci_low <= s.median <= s.ci_high)
    assert misses == 0
