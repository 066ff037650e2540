"""The parent's logic of `bench ab` (harness/ab.py) with scripted workers and a scripted machine
watch: pairing, stopping, re-measuring disturbed pairs, failures on one side. No process is
started and no figure depends on the machine running the test."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import pytest

from harness.ab import MAX_REDO, Experiment, Side
from harness.config import PlannedCase
from harness.noise import Verdict
from harness.timing import STOP_BUDGET, STOP_CI, TimingPolicy
from harness.workload import make_case
from results.paired import estimate


class FakeWorker:
    """Answers like harness/ab_worker.py; every call of case i takes per_call[i] seconds."""

    def __init__(self, per_call: list[float], noise: Any = None) -> None:
        self.per_call, self.noise = per_call, noise
        self.turns = 0
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
            return {"t": [t] * int(f["samples"]), "canary_s": 1e-4}
        if op == "metrics":
            return {"metrics": {}}
        raise AssertionError(op)

    def close(self) -> None: ...


class ScriptedWatch:
    """Calls pairs disturbed as told: `disturbed(n)` for the n-th judged pair."""

    def __init__(self, disturbed: Any = lambda n: False) -> None:
        self.disturbed, self.n = disturbed, 0

    def read(self) -> None:
        return None

    def new_case(self) -> None: ...

    def judge(self, readings: Any, canaries: Any, head_first: bool = False) -> Verdict:
        self.n += 1
        bad = self.disturbed(self.n)
        return Verdict(bad, ["canary 2.00x slower in one turn"] if bad else [])


POLICY = TimingPolicy(target_ci=0.01, budget=30.0, min_samples=10, warmup_budget=0.05,
                      warmup_min_time=0.0, min_time=0.0)


def experiment(base: list[float], head: list[float], per_side: int = 1,
               watch: Any = None, policy: TimingPolicy = POLICY,
               head_noise: Any = None, failed: dict[str, int] | None = None) -> Experiment:
    plan = [PlannedCase(make_case("spin", None, {"us": str(10 * (i + 1))}, "test"), policy)
            for i in range(len(base))]
    exp = Experiment(plan, [Side("base"), Side("head", env=(("X", "1"),))], seed=7,
                     workers=per_side, watch=watch or ScriptedWatch())
    exp.workers = {"base": [FakeWorker(base) for _ in range(per_side)],
                   "head": [FakeWorker(head, head_noise) for _ in range(per_side)]}
    for side in ("base", "head"):
        cases = [{"key": p.case.key, "status": "ok", "error": None, "work": {"items": 1},
                  "info": {}, "setup_s": 0.0} for p in plan]
        if failed and side in failed:
            cases[failed[side]].update(status="failed", error="check failed: on purpose")
        exp.loaded[side] = {"cases": cases, "env": {}, "git": None}
    return exp


def test_a_steady_ratio_is_found_and_stops_on_the_interval() -> None:
    exp = experiment([100e-6], [110e-6])
    r = exp.measure(0)
    assert r.stop_reason == STOP_CI and len(r.log_ratios) == POLICY.min_samples
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
    policy = POLICY.replace(target_ci=1e-12, budget=0.02)
    noise = itertools.cycle([0.98, 1.02, 1.0, 1.01]).__next__
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
