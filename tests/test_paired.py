"""Paired statistics of `bench ab` (results/paired.py): pure functions, checked against scipy and
by simulation with fixed seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from results.compare import IMPROVEMENT, NOISE, REGRESSION, UNCHANGED
from results.paired import (
    PairedCase,
    estimate,
    hodges_lehmann,
    paired_log_ratios,
    signed_rank_p,
    verdicts,
)


def test_hodges_lehmann_is_the_median_of_walsh_averages() -> None:
    d = [0.0, 1.0, 5.0]
    walsh = sorted([0.0, 0.5, 2.5, 1.0, 3.0, 5.0])
    est, lo, hi = hodges_lehmann(d)
    assert est == pytest.approx(float(np.median(walsh)))
    assert (lo, hi) == (-math.inf, math.inf)  # 3 values cannot give a 95% interval


def test_interval_exists_from_six_pairs_and_spans_the_extremes() -> None:
    d = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    _, lo, hi = hodges_lehmann(d)
    assert (lo, hi) == (0.1, 0.6)  # n=6: the widest interval, min..max of Walsh averages


@pytest.mark.parametrize("n", [8, 25, 60])
def test_p_values_match_scipy_exact_wilcoxon(n: int) -> None:
    rng = np.random.default_rng(n)
    d = rng.normal(0.01, 0.02, size=n)
    for greater, alt in ((True, "greater"), (False, "less")):
        ours = signed_rank_p(d, 0.0, greater)
        ref = sps.wilcoxon(d, alternative=alt, method="exact").pvalue
        assert ours == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("n", [10, 40])
def test_interval_coverage_near_95_percent_on_heavy_tails(n: int) -> None:
    rng = np.random.default_rng(7)
    centre, hits, reps = 0.03, 0, 800
    for _ in range(reps):
        d = centre + 0.02 * rng.standard_t(3, size=n)
        _, lo, hi = hodges_lehmann(d)
        hits += lo <= centre <= hi
    assert 0.92 <= hits / reps <= 0.98


def test_large_n_uses_the_normal_approximation_consistently() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.0, 0.01, size=500)
    est, lo, hi = hodges_lehmann(d)
    assert lo < est < hi and hi - lo < 0.01
    p = signed_rank_p(d, 0.0, True)
    assert p == pytest.approx(sps.wilcoxon(d, alternative="greater").pvalue, abs=0.01)


def test_paired_log_ratios_and_shape_check() -> None:
    r = paired_log_ratios([1.0, 2.0], [1.1, 2.2])
    assert np.allclose(r, math.log(1.1))
    with pytest.raises(ValueError):
        paired_log_ratios([1.0], [1.0, 2.0])


def test_estimate_ratio_interval_and_floor() -> None:
    rng = np.random.default_rng(11)
    d = np.log(1.10) + rng.normal(0, 0.01, size=30)
    e = estimate(d, threshold=0.05)
    assert e.ci_low < e.ratio < e.ci_high
    assert e.ci_low > 1.05  # clearly beyond the threshold
    assert e.p_value < 0.01
    assert e.half_width == pytest.approx(max(e.ci_high / e.ratio - 1, 1 - e.ci_low / e.ratio))
    assert e.floor == pytest.approx(e.ci_high - 1)
    few = estimate([0.01, 0.02, 0.0])
    assert math.isinf(few.half_width) and math.isinf(few.floor)


def _case(key: str, shift: float, n: int = 30, sd: float = 0.01, seed: int = 0) -> PairedCase:
    rng = np.random.default_rng(seed)
    e = estimate(math.log(shift) + rng.normal(0, sd, size=n), 0.05)
    return PairedCase(key, 1.0, shift, n, n, e)


def test_verdicts_regression_improvement_unchanged_noise() -> None:
    cases = [_case("slow", 1.10, seed=1), _case("fast", 0.90, seed=2),
             _case("same", 1.0, seed=3), _case("edge", 1.05, sd=0.05, n=12, seed=4)]
    by = {c.case_key: c for c in verdicts(cases, threshold=0.05).cases}
    assert by["slow"].verdict == REGRESSION
    assert by["fast"].verdict == IMPROVEMENT
    assert by["same"].verdict == UNCHANGED
    assert by["edge"].verdict == NOISE  # an interval across the threshold decides nothing


def test_false_discovery_control_across_many_null_cases() -> None:
    cases = [_case(f"c{i}", 1.0, sd=0.03, n=10, seed=100 + i) for i in range(200)]
    cmp = verdicts(cases, threshold=0.01)
    flagged = cmp.counts()[REGRESSION] + cmp.counts()[IMPROVEMENT]
    assert flagged <= 4  # no true change beyond 1%: BH keeps false calls rare


def test_threshold_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        verdicts([], threshold=1.5)
