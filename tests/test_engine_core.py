"""The engine's core (calibrate, sample, the pure rules) on a scripted clock.

Every operation here is synthetic: a sampler that advances a fake clock by durations the test
chooses, so each rule is asserted exactly, whatever the machine's speed.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from harness.backends.base import Backend, DeviceTimer
from harness.timing import (
    ALONE,
    BLOCK_OVERHEAD,
    BLOCK_STEADY,
    STOP_BUDGET,
    STOP_CI,
    STOP_MAX,
    Calibration,
    DistributedEngine,
    Engine,
    RankZeroDecides,
    Sampled,
    TimingPolicy,
    _calibrate,
    _settled,
    block_for,
    calibrate,
    sample,
    settled,
)
from workloads.spin import _spin


class FakeClock:
    """Seconds that pass only when a synthetic operation says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Synthetic:
    """A sampler: call i lasts `duration(i)` seconds; each sample adds `overhead` (the clock
    reads and the sync); the fake clock advances by the whole sample."""

    def __init__(self, clock: FakeClock, duration: Callable[[int], float],
                 overhead: float = 0.0) -> None:
        self.clock, self.duration, self.overhead = clock, duration, overhead
        self.calls = 0
        self.blocks: list[int] = []

    def __call__(self, block: int) -> float:
        total = sum(self.duration(self.calls + i) for i in range(block)) + self.overhead
        self.calls += block
        self.blocks.append(block)
        self.clock.now += total
        return total / block


def const(seconds: float) -> Callable[[int], float]:
    return lambda i: seconds


def synthetic(duration: Callable[[int], float], overhead: float = 0.0) -> Synthetic:
    return Synthetic(FakeClock(), duration, overhead)


# --------------------------------------------------------------------------------------------
# Pure rules


def test_block_for_is_the_smallest_block_that_meets_the_overhead_rule() -> None:
    assert block_for(1e-6, 1e-3, 0.01) == 1
    assert block_for(1e-6, 100e-6, 0.01) == 1
    assert block_for(1e-6, 1e-6, 0.01) == 100
    assert block_for(1e-6, 0.0, 0.01) == 1 << 20
    assert block_for(1e-6, 1e-6, 0.05) == 20
    for ov in (5e-8, 1.2e-7, 1.7e-7, 1e-6):
        for per_call in (1e-8, 1e-7, 5e-7, 2e-6, 1e-5, 4e-5):
            b = block_for(ov, per_call, 0.01)
            assert ov <= 0.01 * b * per_call * (1 + 1e-12)
            assert b == 1 or ov > 0.01 * (b - 1) * per_call  # and no larger than needed
    # The case from the slower machine: 120 ns of overhead and a 10 us call need 2 calls.
    assert block_for(120e-9, 10e-6, 0.01) == 2


def test_settled_compares_the_medians_of_two_windows() -> None:
    assert not settled([1.0] * 9)  # two windows of five needed
    assert settled([1.0] * 10)
    assert settled([1.0] * 5 + [1.049] * 5)
    assert not settled([1.0] * 5 + [1.051] * 5)
    assert settled([9.0, 1.0, 1.0, 1.0, 9.0, 1.0, 1.04, 1.0, 50.0, 1.0])  # medians, not means
    assert _settled is settled


# --------------------------------------------------------------------------------------------
# calibrate: first call, warm-up, block


def test_warmup_ends_once_settled_and_warmup_min_time_has_passed() -> None:
    s = synthetic(const(50e-6))
    policy = TimingPolicy(warmup_min_time=0.01, warmup_budget=1.0, min_block_time=0.0)
    cal = calibrate(s, policy, 1e-7, s.clock)
    assert isinstance(cal, Calibration)
    assert cal.block == 1 and cal.block_rule == BLOCK_OVERHEAD
    assert cal.first_call_s == 50e-6
    # settled after 10 samples, but warm-up lasts 0.01 s: the first sample past 0.01 s ends it
    assert 0.01 <= cal.warmup_s < 0.01 + 50e-6
    assert cal.warmup_calls == s.calls == 1 + round(cal.warmup_s / 50e-6)
    assert cal.single_call_s is None and cal.back_to_back_call_s is None
    assert cal.typical_call_s == 50e-6


def test_warmup_needs_two_settled_windows_when_min_time_is_zero() -> None:
    s = synthetic(const(50e-6))
    cal = calibrate(s, TimingPolicy(warmup_min_time=0.0, min_block_time=0.0), 1e-7, s.clock)
    assert cal.warmup_calls == 1 + 10  # the first call + two settle windows of five


def test_warmup_restarts_when_the_op_gets_faster() -> None:
    # A JIT-compiled op: 2 ms for the first 3 calls, then 1 us. The block starts at 1 (from the
    # first call) and must restart to what 1 us calls need: 100 ns / 1% / 1 us = 10 calls.
    ov = 100e-9
    s = synthetic(lambda i: 2e-3 if i < 3 else 1e-6, overhead=ov)
    cal = calibrate(s, TimingPolicy(warmup_min_time=0.0, min_block_time=0.0), ov, s.clock)
    assert s.blocks[0] == 1 and s.blocks[1] == 1
    assert cal.block == block_for(ov, 1e-6 + ov / 10, 0.01) == 10
    assert s.blocks[-10:] == [10] * 10  # settled at the new block: a full window after restart
    assert ov <= 0.01 * cal.block * cal.typical_call_s


def test_warmup_does_not_shrink_the_block_on_one_slow_sample() -> None:
    # 1 us calls need blocks of 10; one preempted sample (per call 20x slower) would ask for 1.
    ov = 100e-9
    slow_at = {15 * 10 + 1 + k for k in range(10)}  # the calls of the 16th block of ten
    s = synthetic(lambda i: 20e-6 if i in slow_at else 1e-6, overhead=ov)
    cal = calibrate(s, TimingPolicy(warmup_min_time=0.0, min_block_time=0.0), ov, s.clock)
    assert set(s.blocks[1:]) == {10}
    assert cal.block == 10


def test_warmup_shrinks_the_block_when_the_window_says_so() -> None:
    # The first call is fast (a cached path), then every call costs 10x: the window of five
    # asks for less than half the block, and warm-up restarts with the smaller block.
    ov = 100e-9
    s = synthetic(lambda i: 1e-6 if i == 0 else 10e-6, overhead=ov)
    cal = calibrate(s, TimingPolicy(warmup_min_time=0.0, min_block_time=0.0), ov, s.clock)
    assert s.blocks[1] == 10
    assert cal.block == block_for(ov, 10e-6 + ov, 0.01) == 1


def test_warmup_budget_caps_an_op_that_never_settles() -> None:
    # Windows of five calls alternately 10 and 12 us: any two adjacent windows of five
    # samples differ by 20% in their medians, so the times never settle.
    s = synthetic(lambda i: 10e-6 * (1 + 0.2 * ((i // 5) % 2)))
    policy = TimingPolicy(warmup_budget=0.05, warmup_min_time=0.0, min_block_time=0.0)
    cal = calibrate(s, policy, 1e-7, s.clock)
    last = s.blocks[-1] * s.duration(s.calls - 1)
    # it ends at the budget, or once ten more samples would pass it (the long-op rule)
    assert 0.05 - 10 * last < cal.warmup_s < 0.05 + last
    assert cal.warmup_calls > 1000  # not cut short by a settle


def test_warmup_of_a_long_op_stops_after_two_calls_the_budget_cannot_repeat() -> None:
    s = synthetic(const(0.2))
    cal = calibrate(s, TimingPolicy(warmup_budget=1.0, min_block_time=0.0), 1e-7, s.clock)
    assert cal.warmup_calls == 3  # the first call and two settled ones
    assert cal.warmup_s == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(12))
def test_block_meets_the_overhead_rule_at_the_end_of_warmup(seed: int) -> None:
    """Whatever the op does during warm-up (a slow first call, preempted samples, a drift,
    a last sample that is slow), the final block holds overhead <= frac x block x typical."""
    rng = random.Random(seed)
    ov = rng.choice([50e-9, 120e-9, 170e-9, 1e-6])
    base = rng.choice([0.3e-6, 1e-6, 3e-6, 6e-6, 10e-6, 12e-6])
    budget = 0.02
    clock = FakeClock()

    def duration(i: int) -> float:
        if i == 0:
            return base * rng.choice([1, 3, 50])  # a cold first call
        if clock.now > budget * 0.98:
            return base * 30  # the last samples of warm-up are preempted
        return base * (1 + 0.3 * rng.random()) * (20 if rng.random() < 0.02 else 1)

    s = Synthetic(clock, duration, overhead=ov)
    frac = rng.choice([0.01, 0.05])
    policy = TimingPolicy(warmup_budget=budget, warmup_min_time=budget, overhead_frac=frac,
                          min_block_time=0.0)
    cal = calibrate(s, policy, ov, clock)
    assert cal.typical_call_s is not None
    assert ov <= frac * cal.block * cal.typical_call_s * (1 + 1e-12)


def test_the_slower_machine_case_gets_two_calls_per_sample() -> None:
    # A 10 us spin (10.33 us measured), 120 ns of overhead: block 1 gave 1.2% overhead.
    ov = 120e-9
    s = synthetic(lambda i: 30e-6 if i == 0 else 10.33e-6 - ov, overhead=ov)
    cal = calibrate(s, TimingPolicy(min_block_time=0.0), ov, s.clock)
    assert cal.block == 2
    assert ov <= 0.01 * cal.block * cal.typical_call_s


# --------------------------------------------------------------------------------------------
# calibrate: the steady-state check


def periodic(fast: float, slow: float, every: int) -> Callable[[int], float]:
    """Fast calls and a slow one every `every` calls, as a small torch matmul on a CPU."""
    return lambda i: slow if (i + 1) % every == 0 else fast


def test_periodic_slow_calls_are_timed_in_steady_state_blocks() -> None:
    fast, slow, every = 10e-6, 80e-6, 7
    mean = (fast * (every - 1) + slow) / every  # 20 us
    s = synthetic(periodic(fast, slow, every))
    cal = calibrate(s, TimingPolicy(), 1e-7, s.clock)
    assert cal.block_rule == BLOCK_STEADY
    assert cal.single_call_s == fast  # the median of single calls: the fast ones
    # a block of ~50 calls holds 7 or 8 slow ones
    assert cal.back_to_back_call_s == pytest.approx(mean, rel=0.1)
    assert cal.block * cal.back_to_back_call_s >= TimingPolicy().min_block_time * 0.5
    assert s.blocks[-5:] == [cal.block] * 5  # five blocks back to back, then decided


def test_alike_calls_stay_in_blocks_of_the_overhead_rule() -> None:
    s = synthetic(const(20e-6))
    cal = calibrate(s, TimingPolicy(), 1e-7, s.clock)
    assert cal.block == 1 and cal.block_rule == BLOCK_OVERHEAD
    assert cal.single_call_s == 20e-6
    assert cal.back_to_back_call_s == pytest.approx(20e-6, rel=1e-9)  # exact, up to rounding
    # singles for 5 x min_block_time, then five blocks of 1 ms
    assert s.blocks[-5:] == [math.ceil(1e-3 / 20e-6)] * 5


def test_interruptions_in_some_blocks_are_the_machines() -> None:
    # Alike 20 us calls; two of the five long blocks are interrupted (+30%): not the op's.
    state = {"check": False}
    s = synthetic(const(20e-6))
    inner = s.__call__

    def sampler(block: int) -> float:
        t = inner(block)
        if block > 1:
            state["n"] = state.get("n", 0) + 1
            if state["n"] in (2, 4):
                s.clock.now += 0.3 * t * block
                return t * 1.3
        return t

    cal = calibrate(sampler, TimingPolicy(), 1e-7, s.clock)
    assert cal.block_rule == BLOCK_OVERHEAD and cal.block == 1
    assert cal.back_to_back_call_s == pytest.approx(20e-6, rel=1e-9)  # the median block


def test_pipelined_calls_faster_back_to_back_are_timed_in_blocks() -> None:
    # An async device: a call alone takes its 50 us latency, calls back to back overlap and
    # cost 10 us each.
    clock = FakeClock()

    def sampler(block: int) -> float:
        total = 50e-6 + (block - 1) * 10e-6
        clock.now += total
        return total / block

    cal = calibrate(sampler, TimingPolicy(), 1e-7, clock)
    assert cal.block_rule == BLOCK_STEADY
    assert cal.single_call_s == 50e-6
    assert cal.back_to_back_call_s < 0.95 * 50e-6
    assert cal.block == math.ceil(1e-3 / 50e-6)  # min_block_time at the singles' mean


def test_no_check_when_min_block_time_is_zero_or_a_sample_spans_it() -> None:
    s = synthetic(periodic(10e-6, 80e-6, 7))
    cal = calibrate(s, TimingPolicy(min_block_time=0.0), 1e-7, s.clock)
    assert cal.block_rule == BLOCK_OVERHEAD and cal.single_call_s is None
    s = synthetic(periodic(1.1e-3, 8e-3, 7))  # every sample longer than 1 ms
    cal = calibrate(s, TimingPolicy(), 1e-7, s.clock)
    assert cal.block_rule == BLOCK_OVERHEAD and cal.single_call_s is None


# --------------------------------------------------------------------------------------------
# sample: the stopping rule


def jitter(center: float, rel: float, seed: int = 0) -> Callable[[int], float]:
    rng = np.random.default_rng(seed)
    values = center * (1 + rel * rng.uniform(-1, 1, 200_000))
    return lambda i: float(values[i % len(values)])


def test_stops_on_the_ci_target_once_min_time_has_passed() -> None:
    s = synthetic(jitter(1e-3, 0.001))
    policy = TimingPolicy(target_ci=0.01, min_samples=10, min_time=0.1, budget=5.0)
    got = sample(s, 1, policy, s.clock)
    assert isinstance(got, Sampled)
    assert got.stop_reason == STOP_CI
    n = len(got.samples)
    assert got.samples == got.local and got.ranks == [got.samples]
    assert 0.1 <= sum(got.samples) < 0.1 * 1.1 + 2e-3  # stopped at the first check past 0.1 s
    assert n == s.calls


def test_stops_on_budget_when_the_target_is_unreachable() -> None:
    s = synthetic(jitter(1e-3, 0.9))
    policy = TimingPolicy(target_ci=1e-9, budget=0.05, min_samples=10)
    got = sample(s, 1, policy, s.clock)
    assert got.stop_reason == STOP_BUDGET
    # the budget is checked after every sample: it stops at the first one past 0.05 s
    assert sum(got.samples) >= 0.05 > sum(got.samples[:-1])


def test_max_samples_caps_sampling() -> None:
    s = synthetic(jitter(1e-3, 0.5))
    got = sample(s, 1, TimingPolicy(target_ci=1e-9, budget=60.0, min_samples=5,
                                    max_samples=37), s.clock)
    assert got.stop_reason == STOP_MAX and len(got.samples) == 37


def test_min_samples_even_when_the_target_is_met_at_once() -> None:
    s = synthetic(const(1e-3))
    got = sample(s, 1, TimingPolicy(target_ci=0.5, budget=30.0, min_samples=150, min_time=0.0),
                 s.clock)
    assert got.stop_reason == STOP_CI and len(got.samples) == 150


def test_min_samples_even_when_the_budget_is_spent() -> None:
    s = synthetic(jitter(1e-3, 0.5))
    got = sample(s, 1, TimingPolicy(target_ci=1e-9, budget=1e-6, min_samples=30), s.clock)
    assert got.stop_reason == STOP_BUDGET and len(got.samples) == 30


def test_min_time_is_sampled_even_when_the_target_is_met_early() -> None:
    s = synthetic(const(20e-6))
    got = sample(s, 1, TimingPolicy(target_ci=0.5, min_samples=10, min_time=0.08), s.clock)
    assert got.stop_reason == STOP_CI
    assert sum(got.samples) >= 0.08


def test_samples_are_per_call_for_a_block() -> None:
    s = synthetic(const(1e-6), overhead=1e-7)
    got = sample(s, 10, TimingPolicy(target_ci=0.5, min_samples=10, min_time=0.0), s.clock)
    assert set(s.blocks) == {10}
    assert got.samples == pytest.approx([1e-6 + 1e-8] * len(got.samples))


def test_progress_is_reported_at_each_check_with_the_final_width() -> None:
    seen: list[tuple[int, float]] = []
    s = synthetic(jitter(1e-4, 0.05))
    got = sample(s, 1, TimingPolicy(target_ci=0.02, min_samples=12, min_time=0.0), s.clock,
                 lambda n, w: seen.append((n, w)))
    counts = [n for n, _ in seen]
    assert counts[0] == 12 and counts == sorted(set(counts))
    assert counts[-1] == len(got.samples)
    assert got.stop_reason == STOP_CI and seen[-1][1] <= 0.02
    # checks every ~10% more samples
    assert all(b - a == max(1, a // 10) for a, b in itertools.pairwise(counts))


# --------------------------------------------------------------------------------------------
# Decisions shared between ranks (a fake two-rank world, in threads)


class ThreadComm:
    """A world of `size` threads: gather to 0, bcast from 0, barrier — what the engine uses."""

    def __init__(self, shared: dict[str, Any], rank: int, size: int) -> None:
        self.shared, self.rank, self.size = shared, rank, size
        self.ticks = 0
        self.gathers = 0
        self.phase = ""

    def _sync(self) -> None:
        self.shared["barrier"].wait(timeout=30)

    def barrier(self) -> None:
        self._sync()

    def gather(self, obj: Any) -> list[Any] | None:
        self.gathers += 1
        self.shared[self.rank] = obj
        self._sync()
        out = [self.shared[r] for r in range(self.size)] if self.rank == 0 else None
        self._sync()
        return out

    def bcast(self, obj: Any = None) -> Any:
        if self.rank == 0:
            self.shared["b"] = obj
        self._sync()
        out = self.shared["b"]
        self._sync()
        return out

    def tick(self) -> None:
        self.ticks += 1


def run_ranks(size: int, body: Callable[[ThreadComm], Any]) -> list[Any]:
    shared: dict[str, Any] = {"barrier": threading.Barrier(size)}
    comms = [ThreadComm(shared, r, size) for r in range(size)]
    results: list[Any] = [None] * size
    errors: list[BaseException] = []

    def target(r: int) -> None:
        try:
            results[r] = body(comms[r])
        except BaseException as exc:  # surface a rank's failure in the test
            errors.append(exc)
            shared["barrier"].abort()

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def test_rank_zero_decides_on_the_max_across_ranks() -> None:
    # Rank 1 is 3x slower with jitter of its own; rank 0 alone would decide other blocks
    # and other stops. Both ranks take the same samples and stop at the same one.
    policy = TimingPolicy(target_ci=0.01, min_samples=10, min_time=0.01, budget=5.0,
                          warmup_min_time=0.0, min_block_time=0.0)
    ov = 100e-9

    def body(comm: ThreadComm) -> tuple[Calibration, Sampled, Synthetic]:
        per_call = 1e-6 * (1 + 2 * comm.rank)
        s = synthetic(jitter(per_call, 0.002, seed=comm.rank), overhead=ov)
        decide = RankZeroDecides(comm)
        cal, _ = _calibrate(s, policy, ov, s.clock, decide)
        got = sample(s, cal.block, policy, s.clock, decide=decide)
        return cal, got, s

    (cal0, got0, s0), (cal1, got1, s1) = run_ranks(2, body)
    # one block for all, decided on the slowest rank: 3 us calls need 4 calls, 1 us ones 10
    assert cal0.block == cal1.block == block_for(ov, 3e-6 + ov / 4, 0.01) == 4
    assert s0.blocks == s1.blocks  # the same samples, the same blocks, warm-up included
    assert got0.stop_reason == got1.stop_reason == STOP_CI
    assert len(got0.local) == len(got1.local) == len(got0.samples)
    assert got1.samples == got1.local and got1.ranks is None
    assert got0.ranks == [got0.local, got1.local]
    assert got0.samples == [max(a, b) for a, b in zip(got0.local, got1.local, strict=True)]
    # the stop came from rank 0's clock on the max series: at the first check past min_time
    assert sum(got0.samples) * cal0.block >= policy.min_time


def test_ranks_decide_only_at_the_checks() -> None:
    policy = TimingPolicy(target_ci=1e-9, min_samples=10, max_samples=40, budget=60.0,
                          warmup_min_time=0.0, min_block_time=0.0)

    def body(comm: ThreadComm) -> tuple[int, int, Sampled]:
        s = synthetic(jitter(1e-4, 0.5, seed=comm.rank))
        before = comm.gathers
        got = sample(s, 1, policy, s.clock, decide=RankZeroDecides(comm))
        return comm.gathers - before, s.calls, got

    (g0, n0, got0), (g1, n1, _) = run_ranks(2, body)
    assert got0.stop_reason == STOP_MAX and n0 == n1 == 40
    # checks at 10, 11, ..., 19, 20, 22, ..., 40: far fewer than one per sample
    assert g0 == g1 < 40 / 1.5


def test_steady_state_check_decided_on_rank_zero() -> None:
    # Rank 1's calls have a slow one every 7; rank 0's are alike. Rank 0 decides on the
    # max across ranks, so both time in steady-state blocks.
    policy = TimingPolicy(warmup_min_time=0.0)

    def body(comm: ThreadComm) -> Calibration:
        op = periodic(10e-6, 80e-6, 7) if comm.rank == 1 else const(10e-6)
        s = synthetic(op)
        return _calibrate(s, policy, 1e-7, s.clock, RankZeroDecides(comm))[0]

    cal0, cal1 = run_ranks(2, body)
    assert cal0.block_rule == cal1.block_rule == BLOCK_STEADY
    assert cal0.block == cal1.block > 1
    assert cal0.single_call_s == cal1.single_call_s == 10e-6  # rank 0's figures, shared
    assert cal0.back_to_back_call_s == cal1.back_to_back_call_s > 1.05 * 10e-6
    assert cal0.typical_call_s == 10e-6 and cal1.typical_call_s is None


def test_alone_decides_after_every_sample() -> None:
    assert ALONE.decides and ALONE.every_sample
    assert ALONE.gather([1.0, 2.0]) == [[1.0, 2.0]]
    assert ALONE.decide(lambda a, b: a + b, 1, 2) == 3


class _TimedHost(Backend):
    """A host backend with a device timer that reports 1 ms of device time per call."""

    model = "timedhost"
    package = "numpy"
    extra = "all"
    devices = ("cpu",)

    def __init__(self, calls: list[int]) -> None:
        super().__init__("cpu")
        self.calls = calls

    def _setup(self) -> None:
        pass

    def device_timer(self) -> DeviceTimer | None:
        calls = self.calls

        class Timer(DeviceTimer):
            def start(self) -> None:
                self.mark = calls[0]

            def stop(self) -> float:
                return (calls[0] - self.mark) * 1e-3

        return Timer()


def test_distributed_engine_shares_decisions_and_keeps_device_time() -> None:
    policy = TimingPolicy(target_ci=1e-9, budget=60.0, min_samples=5, max_samples=30,
                          warmup_budget=0.05)

    def body(comm: ThreadComm) -> tuple[Any, int]:
        calls = [0]
        backend = _TimedHost(calls)
        backend.setup()

        def op() -> None:  # a slow call every 7: the steady-state check would catch it
            calls[0] += 1
            _spin(80_000 if calls[0] % 7 == 0 else 10_000)

        engine = DistributedEngine(backend, policy, comm)
        timing = engine.measure(op)
        return timing, calls[0]

    (t0, c0), (t1, c1) = run_ranks(2, body)
    assert t0.stop_reason == t1.stop_reason == STOP_MAX
    assert len(t0.samples) == len(t1.samples) == 30 and t0.block == t1.block
    assert c0 == c1 == t0.warmup_calls + 30 * t0.block  # every rank made the same calls
    # collectives keep OSU's rule: no steady-state check
    assert t0.block_rule == t1.block_rule == BLOCK_OVERHEAD and t0.single_call_s is None
    assert t0.extra["ranks"] == 2 and len(t0.extra["rank_medians"]) == 2
    assert t0.samples == [max(a, b) for a, b in zip(t0.extra["rank_samples"],
                                                     t1.extra["rank_samples"], strict=True)]
    assert t0.first_call_s == max(t0.extra["first_call_ranks"])
    # device time per call, the max across ranks on rank 0, each rank's own elsewhere
    assert t0.device_samples == pytest.approx([1e-3] * 30)
    assert t1.device_samples == pytest.approx([1e-3] * 30)
    assert len(t0.extra["rank_device_samples"]) == 2


def test_ranks_running_their_own_op_get_the_steady_state_check_collectives_do_not() -> None:
    """gemm on 2 ranks is timed as on one (the steady-state check, decided on rank 0); an op
    that brings its own barrier (a collective) keeps OSU's rule; alone, the local engine."""
    from harness.distributed import Solo
    from harness.runner import engine_for
    from harness.workload import Prepared

    backend = _TimedHost([0])
    policy = TimingPolicy()

    class Two(Solo):
        size = 2

    def op() -> None:
        return None

    own = engine_for(backend, policy, Two(), Prepared(op=op))  # type: ignore[arg-type]
    assert isinstance(own, DistributedEngine) and own.steady_state
    with_barrier = Prepared(op=op, barrier=lambda: None)
    coll = engine_for(backend, policy, Two(), with_barrier)  # type: ignore[arg-type]
    assert isinstance(coll, DistributedEngine) and not coll.steady_state
    alone = engine_for(backend, policy, Solo(), Prepared(op=op))
    assert type(alone) is Engine
