"""The parent's logic of `bench ab` (harness/ab.py) with scripted workers and a scripted machine
watch: pairing, stopping, re-measuring disturbed pairs, failures on one side. No process is
started and no figure depends on the machine running the test."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from typing import Any

import pytest

from harness.ab import MAX_REDO, STOP_DECIDED, Experiment, Side, WorkerDied
from harness.config import PlannedCase
from harness.noise import Verdict
from harness.timing import STOP_BUDGET, TimingPolicy
from harness.workload import make_case
from results.paired import estimate


class FakeWorker:
    """Answers like harness/ab_worker.py; every call of case i takes per_call[i] seconds."""

    def __init__(self, per_call: list[float], noise: Any = None, cpu_share: float = 1.0) -> None:
        self.per_call, self.noise, self.cpu_share = per_call, noise, cpu_share
        self.turns = 0
        self.layouts: list[tuple[int, int]] = []  # (count, warm-up calls) asked per case
        self.max_layouts = 99  # instances this worker can hold (its memory)
        self.pins: list[frozenset[int]] = []  # the CPUs of each turn
        self.info = {"version": "test", "harness_path": "-", "python": "3", "pid": 1}

    def request(self, op: str, timeout: float | None = None, **f: Any) -> dict[str, Any]:
        if op == "overhead":
            return {"overhead_s": 1e-7}
        if op == "time":
            t = self.per_call[f["case"]]
            if self.noise is not None:
                t *= self.noise()
            if f.get("canary"):
                self.turns += 1
                self.pins.append(self.cpus)
            wall = t * int(f["samples"])
            return {"t": [t] * int(f["samples"]), "canary_s": 1e-4, "wall_s": wall,
                    "cpu_s": wall * self.cpu_share}
        if op == "metrics":
            return {"metrics": {}}
        if op == "layouts":
            self.layouts.append((f["count"], f["calls"]))
            return {"layouts": min(f["count"], self.max_layouts)}
        raise AssertionError(op)

    def begin(self, op: str, **f: Any) -> None:
        self.begun = (op, f)

    def end(self, timeout: float | None = None) -> dict[str, Any]:
        op, f = self.begun
        return self.request(op, timeout, **f)

    cpus: frozenset[int] = frozenset()

    def pin(self, cpus: frozenset[int]) -> None:
        self.cpus = cpus

    def close(self) -> None: ...


class ScriptedWatch:
    """Calls pairs disturbed as told: `disturbed(n)` for the n-th judged pair."""

    def __init__(self, disturbed: Any = lambda n: False) -> None:
        self.disturbed, self.n = disturbed, 0

    def read(self) -> None:
        return None

    def new_case(self, offsets: Any = None) -> None:
        self.offsets = offsets or {}

    def judge(self, readings: Any, canaries: Any, head_first: bool = False) -> Verdict:
        self.n += 1
        bad = self.disturbed(self.n)
        return Verdict(bad, ["canary 2.00x slower in one turn"] if bad else [])


POLICY = TimingPolicy(target_ci=0.01, budget=30.0, min_samples=10, warmup_budget=0.05,
                      warmup_min_time=0.0, min_time=0.0)


def experiment(base: list[float], head: list[float], per_side: int = 1,
               watch: Any = None, policy: TimingPolicy = POLICY,
               head_noise: Any = None, failed: dict[str, int] | None = None,
               cpu_share: float = 1.0) -> Experiment:
    plan = [PlannedCase(make_case("spin", None, {"us": str(10 * (i + 1))}, "test"), policy)
            for i in range(len(base))]
    exp = Experiment(plan, [Side("base"), Side("head", env=(("X", "1"),))], seed=7,
                     workers=per_side, watch=watch or ScriptedWatch())
    exp.workers = {"base": [FakeWorker(base, cpu_share=cpu_share) for _ in range(per_side)],
                   "head": [FakeWorker(head, head_noise, cpu_share) for _ in range(per_side)]}
    for side in ("base", "head"):
        cases = [{"key": p.case.key, "status": "ok", "error": None, "work": {"items": 1},
                  "info": {}, "setup_s": 0.0} for p in plan]
        if failed and side in failed:
            cases[failed[side]].update(status="failed", error="check failed: on purpose")
        exp.loaded[side] = {"cases": cases, "env": {}, "git": None}
    return exp


def at_the_threshold() -> Any:
    """Head turns 5% slower, with noise in antithetic pairs (+x, -x) so that the estimate
    stays at the 5% threshold: never decided, however many pairs."""
    rng = random.Random(5)

    def draws() -> Any:
        while True:
            x = rng.gauss(0, 0.08)
            yield 1.05 * math.exp(x)
            yield 1.05 * math.exp(-x)
    return draws().__next__


def test_a_steady_ratio_is_found_and_stops_once_decided() -> None:
    exp = experiment([100e-6], [110e-6])
    r = exp.measure(0)
    assert r.stop_reason == STOP_DECIDED and r.decided
    assert len(r.log_ratios) == POLICY.min_samples
    assert all(d == pytest.approx(math.log(1.1)) for d in r.log_ratios)
    est = estimate(r.log_ratios, 0.05, groups=r.groups)
    assert est.ratio == pytest.approx(1.1)
    assert r.turn_samples >= 1 and r.block >= 1
    m = exp.side_measurement(r, "head", est)
    assert m["status"] == "ok" and m["summary"]["median"] == pytest.approx(110e-6)
    assert m["timing"]["ab"]["pairs"] == POLICY.min_samples
    assert m["metrics"]["ab_ratio"] == pytest.approx(1.1)


def test_turns_are_about_turn_s_long() -> None:
    exp = experiment([100e-6], [100e-6])
    exp.turn_s = 0.005
    r = exp.measure(0)
    assert r.turn_samples * r.block * 100e-6 == pytest.approx(0.005, rel=0.2)


def test_disturbed_pairs_are_measured_again_at_most_max_redo_times() -> None:
    watch = ScriptedWatch(lambda n: n <= MAX_REDO + 1)  # the first pair: every attempt
    exp = experiment([100e-6], [100e-6], watch=watch)
    r = exp.measure(0)
    assert r.pairs_disturbed == MAX_REDO + 1
    assert r.disturbed_kept == 1  # kept once the bound was hit, and said so
    assert r.reasons == {"canary": MAX_REDO + 1}
    assert len(r.log_ratios) == POLICY.min_samples


def test_a_pair_disturbed_once_is_replaced_not_kept() -> None:
    exp = experiment([100e-6], [100e-6], watch=ScriptedWatch(lambda n: n == 3))
    r = exp.measure(0)
    assert (r.pairs_disturbed, r.disturbed_kept) == (1, 0)


def test_every_pairing_of_worker_processes_is_used_evenly() -> None:
    policy = POLICY.replace(target_ci=1e-12, min_samples=12, max_samples=12)
    noise = itertools.cycle([0.99, 1.01, 1.0]).__next__
    exp = experiment([100e-6], [100e-6], per_side=2, policy=policy, head_noise=noise)
    r = exp.measure(0)
    assert len(r.log_ratios) == 12
    assert Counter(r.groups) == {0: 3, 1: 3, 2: 3, 3: 3}


def test_the_budget_covers_both_sides_together() -> None:
    policy = POLICY.replace(target_ci=1e-12, budget=0.005)
    noise = at_the_threshold()
    exp = experiment([100e-6], [100e-6], policy=policy, head_noise=noise)
    r = exp.measure(0)
    assert r.stop_reason == STOP_BUDGET
    spent = sum(s.timed_s for s in r.sides.values())
    assert spent >= policy.budget


def test_a_case_failed_on_one_side_is_not_compared() -> None:
    exp = experiment([100e-6, 100e-6], [100e-6, 100e-6], failed={"head": 1})
    ok, bad = exp.measure(0), exp.measure(1)
    assert ok.compared and not bad.compared
    assert bad.failed_on == ["head"]
    base = exp.side_measurement(bad, "base", None)
    head = exp.side_measurement(bad, "head", None)
    assert head["status"] == "failed" and "on purpose" in head["error"]
    assert base["status"] == "failed" and "failed on the head side" in base["error"]


def test_an_undecided_case_runs_to_its_allowance_and_goes_on_when_given_more() -> None:
    policy = POLICY.replace(budget=0.005, target_ci=1e-12)
    noise = at_the_threshold()
    exp = experiment([100e-6], [100e-6], policy=policy, head_noise=noise)
    r = exp.measure(0)
    assert r.stop_reason == STOP_BUDGET and not r.decided
    first = len(r.log_ratios)
    spent = r.spent_s
    exp.extend(r, spent + 0.005)
    assert len(r.log_ratios) > first  # the second pass adds pairs to the same case
    assert r.spent_s >= spent + 0.005 and r.stop_reason == STOP_BUDGET


@pytest.mark.parametrize("share", [1.0, 3.0])
def test_both_turns_of_a_pair_run_on_one_cpu_unless_the_case_is_parallel(share, monkeypatch):
    import harness.ab as ab

    monkeypatch.setattr(ab, "ALL_CPUS", frozenset({0, 1, 2, 3}))
    exp = experiment([100e-6], [100e-6], cpu_share=share)
    r = exp.measure(0)
    base, head = exp.workers["base"][0].pins, exp.workers["head"][0].pins
    assert len(base) == len(head) > 0
    if share < ab.PARALLEL:
        assert r.pinned
        # every turn on one CPU, the same for both turns of each pair (the turns of a pair
        # are consecutive requests to the two sides, pinned just before)
        assert all(len(cpus) == 1 for cpus in base + head)
        assert base == head
        assert len(set(base)) > 1  # drawn per pair, not one CPU for all
    else:
        assert not r.pinned and set(base + head) == {ab.ALL_CPUS}


def test_a_calibrating_run_spends_the_whole_budget_on_every_case() -> None:
    policy = POLICY.replace(budget=0.005)
    exp = experiment([100e-6], [100e-6], policy=policy)
    exp.decide = False  # what `bench ab --calibrate` asks: the noise floor at this budget
    r = exp.measure(0)
    assert r.stop_reason == STOP_BUDGET and not r.decided
    assert r.spent_s >= policy.budget


def test_cheap_cases_get_more_layouts_and_every_uncalibrated_process_is_warmed() -> None:
    exp = experiment([100e-6], [100e-6], per_side=3)
    exp.workers["head"][2].max_layouts = 3  # a process that ran out of memory for more
    r = exp.measure(0)
    for side in ("base", "head"):
        first, *others = exp.workers[side]
        warmup_calls = r.sides[side].calibration.warmup_calls
        assert warmup_calls > 0
        assert first.layouts == [(8, 0)]  # calibration warmed it
        assert all(w.layouts == [(8, warmup_calls)] for w in others)
    assert r.layouts == {"base": 8, "head": 3}  # the fewest any process of the side holds
    rec = exp.side_measurement(r, "head", estimate(r.log_ratios, 0.05, groups=r.groups))
    assert rec["timing"]["ab"]["layouts"] == 3


def test_a_case_slow_to_prepare_is_held_once() -> None:
    exp = experiment([100e-6], [100e-6], per_side=2)
    for side in ("base", "head"):
        exp.loaded[side]["cases"][0]["setup_s"] = 1.0  # 2% of the 30 s budget: none more
    r = exp.measure(0)
    assert r.layouts == {"base": 1, "head": 1}
    for side in ("base", "head"):
        first, second = exp.workers[side]
        assert first.layouts == []  # nothing to ask of the calibrated process
        assert second.layouts == [(1, r.sides[side].calibration.warmup_calls)]


def test_a_sides_figures_are_the_ones_a_run_derives() -> None:
    """bench ab stores what `figures` makes of a side's samples (as bench run does): the work
    model's metrics, then the workload's own as its worker says them; without a worker's
    answer the figures stand."""
    from harness.measurement import figures
    from harness.workmodel import Work

    exp = experiment([100e-6], [110e-6])
    r = exp.measure(0)

    class Asked:
        def extra_metrics(self, params: Any, median_s: float, info: Any) -> dict[str, float]:
            return {"told_by_worker": median_s}

    for worker in exp.workers["head"]:
        worker.request = lambda op, timeout=None, **f: (  # type: ignore[method-assign]
            {"metrics": {"told_by_worker": f["median_s"]}})
    m = exp.side_measurement(r, "head", None)
    summary, metrics = figures(r.sides["head"].samples, None, Work(items=1), Asked(),
                               {}, {})
    assert m["summary"] == summary.to_dict() and m["metrics"] == metrics
    assert m["metrics"]["told_by_worker"] == summary.median

    def gone(op: str, timeout: float | None = None, **f: Any) -> dict[str, Any]:
        raise WorkerDied("head", "gone")

    for worker in exp.workers["head"]:
        worker.request = gone  # type: ignore[method-assign]
    m = exp.side_measurement(r, "head", None)
    assert "told_by_worker" not in m["metrics"] and m["metrics"]["latency_s"] == summary.median
