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
    decided,
    estimate,
    hodges_lehmann,
    min_pairs,
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


def test_min_pairs_lets_the_exact_test_reach_the_corrected_level() -> None:
    for cases in (1, 20, 500):
        n = min_pairs(0.05, cases)
        assert 2 / 2 ** (n - 2) < 0.05 / cases  # all pairs one way: p = 2 / 2^n
        assert 2 / 2 ** (n - 3) >= 0.05 / cases  # and not more than needed (+2)


def test_decided_waits_for_the_level_the_correction_across_cases_needs() -> None:
    rng = np.random.default_rng(3)
    # a 10% change at a 5% threshold, 2% noise per pair, one stray pair the other way: the
    # 95% interval is clear of the threshold, but with 19 other cases Benjamini-Hochberg does
    # not call it yet, so a rule on the 95% interval would stop it as `noise`
    d = [*(np.log(1.10) + rng.normal(0, 0.02, 11)), np.log(0.8)]
    assert estimate(d, 0.05).ci_low > 1.05
    null = estimate(list(rng.normal(0, 0.005, 12)), 0.05)
    cases = [PairedCase(f"c{i}", 1, 1, 1, 1, estimate(d, 0.05) if i == 0 else null)
             for i in range(20)]
    assert verdicts(cases, 0.05).cases[0].verdict == NOISE
    assert not decided(d, 0.05, 0.05, 20, target_ci=0.0)
    more = d + list(np.log(1.10) + rng.normal(0, 0.02, 12))
    assert decided(more, 0.05, 0.05, 20, target_ci=0.0)
    cases[0] = PairedCase("c0", 1, 1, 1, 1, estimate(more, 0.05))
    assert verdicts(cases, 0.05).cases[0].verdict == REGRESSION


def test_decided_stops_an_unchanged_case_and_a_precise_one_at_the_threshold() -> None:
    rng = np.random.default_rng(4)
    assert decided(list(rng.normal(0, 0.01, 20)), 0.05, 0.05, 20, target_ci=0.0)
    at = list(np.log(1.05) + rng.normal(0, 0.001, 60))  # exactly at the threshold
    assert not decided(at, 0.05, 0.05, 20, target_ci=0.0)
    assert decided(at, 0.05, 0.05, 20, target_ci=0.01)


def test_the_offset_between_processes_counts_at_every_level_and_from_few_pairs() -> None:
    # 9 pairings of 3 x 3 processes, 5 pairs each, the pairings 3% apart: too few pairs per
    # pairing for an exact interval at the strict level; the offset must still widen it
    rng = np.random.default_rng(8)
    offsets = rng.normal(0, 0.03, 9)
    groups = np.repeat(np.arange(9), 5)
    d = np.log(1.05) + offsets[groups] + rng.normal(0, 0.005, groups.size)
    plain = estimate(d, 0.02, 0.95, groups)
    strict = estimate(d, 0.02, 1 - 0.05 / 20, groups)
    assert plain.invocation_sd > 0.005
    assert strict.invocation_sd == pytest.approx(plain.invocation_sd)
    assert strict.ci_high - strict.ci_low > plain.ci_high - plain.ci_low
    alone = estimate(d, 0.02, 1 - 0.05 / 20)  # the pairs alone claim far too much
    assert strict.ci_high - strict.ci_low > 2 * (alone.ci_high - alone.ci_low)
