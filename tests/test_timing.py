"""The measurement engine with real operations on numpy:cpu, and fakes for what a device adds.

No test here asserts a wall-clock figure against a tight tolerance: the engine's rules are
tested on a scripted clock in test_engine_core.py, and accuracy figures (a spin within 2% of
its request, the per-call cost of periodic slow calls, the overhead) are measured by
benchmarks/engine_accuracy.py. What is asserted here is what cannot depend on the machine's
speed: bookkeeping (stop reasons, sample counts, calls accounted for, synchronisation, device
samples per call), and figures only to an order of magnitude.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import numpy as np
import pytest

from harness.backends.base import Backend, DeviceTimer
from harness.backends.numpy import NumpyBackend
from harness.stats import median_ci, summarize
from harness.timing import (
    BLOCK_OVERHEAD,
    BLOCK_STEADY,
    STOP_BUDGET,
    STOP_CI,
    STOP_MAX,
    Engine,
    Timing,
    TimingPolicy,
    sample_overhead,
)
from workloads.spin import Spin, _spin, periodic


@pytest.fixture(scope="module")
def numpy_cpu() -> NumpyBackend:
    backend = NumpyBackend("cpu")
    backend.setup()
    return backend


def spin_op(backend: Backend, us: float) -> Any:
    return Spin().prepare(backend, {"us": us}).op


def random_op(seed: int = 0, low_us: int = 20, high_us: int = 300) -> Any:
    """An operation whose duration is drawn at random on every call."""
    rng = random.Random(seed)

    def op() -> None:
        _spin(rng.randint(low_us, high_us) * 1000)

    return op


class RecordingBackend(Backend):
    """A host backend that logs every synchronize call and the result it was given."""

    model = "recording"
    package = "numpy"
    extra = "all"
    devices = ("cpu",)

    def __init__(self) -> None:
        super().__init__("cpu")
        self.events: list[tuple[str, Any]] = []
        self.sync_calls = 0
        self.last_synced: Any = "never"
        self.timer: DeviceTimer | None = None

    def _setup(self) -> None:
        pass

    def synchronize(self, result: Any = None) -> None:
        self.sync_calls += 1
        self.last_synced = result
        self.events.append(("sync", result))

    def device_timer(self) -> DeviceTimer | None:
        return self.timer

    def reset(self) -> None:
        self.events.clear()
        self.sync_calls = 0
        self.last_synced = "never"


class AsyncBackend(Backend):
    """A fake asynchronous device: an op only enqueues work; synchronize waits for the queue."""

    model = "asyncfake"
    package = "numpy"
    extra = "all"
    devices = ("dev",)

    def __init__(self, work_s: float) -> None:
        super().__init__("dev")
        self.work_ns = int(work_s * 1e9)
        self.queue_end = 0

    def _setup(self) -> None:
        pass

    def launch(self) -> int:
        now = time.perf_counter_ns()
        self.queue_end = max(self.queue_end, now) + self.work_ns
        return self.queue_end

    def synchronize(self, result: Any = None) -> None:
        while time.perf_counter_ns() < self.queue_end:
            pass


# --------------------------------------------------------------------------------------------
# Pure pieces


def test_timing_policy_defaults_replace_and_dict() -> None:
    p = TimingPolicy()
    assert p.target_ci == 0.01
    assert p.min_samples <= p.max_samples
    q = p.replace(budget=0.5, min_samples=3)
    assert (q.budget, q.min_samples) == (0.5, 3)
    assert q.target_ci == p.target_ci
    assert p.budget == 5.0  # the original is untouched (frozen)
    assert q.to_dict()["budget"] == 0.5
    assert TimingPolicy(**q.to_dict()) == q


def test_compile_s_is_first_call_beyond_the_steady_median() -> None:
    t = Timing(samples=[1.0, 2.0, 3.0], block=1, stop_reason=STOP_CI, first_call_s=5.0,
               warmup_s=0.0, warmup_calls=1, overhead_s=0.0)
    assert t.compile_s == pytest.approx(3.0)
    t.first_call_s = 1.5
    assert t.compile_s == 0.0  # never negative
    t.samples = []
    assert t.compile_s == 1.5


def test_sample_overhead_is_small_and_at_least_the_clock_resolution(numpy_cpu: Backend) -> None:
    ov = sample_overhead(numpy_cpu)
    assert time.get_clock_info("perf_counter").resolution <= ov < 1e-3


def test_block_for_meets_the_overhead_fraction(numpy_cpu: Backend) -> None:
    engine = Engine(numpy_cpu, TimingPolicy())
    engine.overhead = 1e-6  # pin it: 1% of a sample must cover 1 us -> 100 us per sample
    assert engine.block_for(1e-3) == 1
    assert engine.block_for(100e-6) == 1
    assert engine.block_for(1e-6) == 100
    assert engine.block_for(3e-7) == math.ceil(1e-4 / 3e-7)
    assert engine.block_for(0.0) == 1 << 20
    engine.policy = TimingPolicy(overhead_frac=0.05)
    assert engine.block_for(1e-6) == 20
    for per_call in (1e-8, 1e-7, 5e-7, 2e-6, 4e-5):
        block = engine.block_for(per_call)
        assert engine.overhead <= 0.05 * block * per_call * (1 + 1e-9)



def test_a_periodic_slow_call_gets_the_steady_state_check(numpy_cpu: Backend) -> None:
    # The rule itself (which block, which figures) is asserted on a scripted clock; a real
    # periodic op checks that the check is made and recorded, and the figures are sane.
    fast, slow, every = 10.0, 80.0, 7
    policy = TimingPolicy(target_ci=0.01, budget=0.5, warmup_budget=0.2)
    timing = Engine(numpy_cpu, policy).measure(periodic(fast, slow, every))
    assert timing.block_rule in (BLOCK_STEADY, BLOCK_OVERHEAD)
    assert timing.single_call_s is not None and timing.back_to_back_call_s is not None
    assert 5e-6 < timing.single_call_s < 500e-6 and 5e-6 < timing.back_to_back_call_s < 500e-6
    if timing.block_rule == BLOCK_STEADY:  # blocks of about min_block_time: the order of it
        # (the block is sized from calls timed during warm-up; on a shared machine the later
        # back-to-back figure moves by tens of percent, so only the order is real-clock-safe)
        assert timing.block * timing.back_to_back_call_s >= 0.1 * policy.min_block_time
    assert 5e-6 < float(np.median(timing.samples)) < 500e-6
    # With the check off, no check is made and calls stay in blocks of the overhead rule.
    single = Engine(numpy_cpu, policy.replace(min_block_time=0.0)).measure(
        periodic(fast, slow, every))
    assert single.block_rule == BLOCK_OVERHEAD and single.single_call_s is None
    assert single.back_to_back_call_s is None


def test_alike_calls_are_checked_and_both_figures_recorded(numpy_cpu: Backend) -> None:
    timing = Engine(numpy_cpu, TimingPolicy(budget=0.3)).measure(spin_op(numpy_cpu, 20.0))
    assert timing.back_to_back_call_s is not None and timing.single_call_s is not None
    assert timing.block_rule in (BLOCK_OVERHEAD, BLOCK_STEADY)
    if timing.block_rule == BLOCK_OVERHEAD:  # the spin is alike call to call on a quiet host
        assert timing.block == Engine(numpy_cpu, TimingPolicy()).block_for(1.0) == 1
    assert 10e-6 < timing.single_call_s < 400e-6


# --------------------------------------------------------------------------------------------
# Stopping rules with real operations on numpy:cpu


def test_stops_on_ci_target_for_a_steady_op(numpy_cpu: Backend) -> None:
    policy = TimingPolicy(target_ci=0.01, budget=3.0, warmup_budget=0.3)
    timing = Engine(numpy_cpu, policy).measure(spin_op(numpy_cpu, 50.0))
    assert timing.stop_reason in (STOP_CI, STOP_BUDGET)  # a very busy host may not reach 1%
    n = len(timing.samples)
    assert policy.min_samples <= n < policy.max_samples
    s = summarize(timing.samples)
    if timing.stop_reason == STOP_CI:
        assert s.ci_rel <= policy.target_ci
    assert 5e-6 < s.median < 1e-3  # an order of magnitude around 50 us
    assert timing.device_samples is None  # numpy has no device timer
    assert timing.warmup_calls >= 2
    assert timing.first_call_s > 0


def test_stops_on_budget_when_target_is_unreachable(numpy_cpu: Backend) -> None:
    policy = TimingPolicy(target_ci=1e-9, budget=0.3, warmup_budget=0.1)
    t0 = time.perf_counter()
    timing = Engine(numpy_cpu, policy).measure(random_op(seed=1))
    wall = time.perf_counter() - t0
    assert timing.stop_reason == STOP_BUDGET
    assert policy.min_samples <= len(timing.samples) < policy.max_samples
    assert sum(timing.samples) > 0
    # The budget ends sampling (when exactly is asserted on a scripted clock): no hang.
    assert wall < 30.0
    assert summarize(timing.samples).ci_rel > policy.target_ci


def test_max_samples_caps_the_measurement(numpy_cpu: Backend) -> None:
    policy = TimingPolicy(target_ci=1e-9, budget=60.0, min_samples=5, max_samples=37,
                          warmup_budget=0.1)
    timing = Engine(numpy_cpu, policy).measure(spin_op(numpy_cpu, 20.0))
    assert timing.stop_reason == STOP_MAX
    assert len(timing.samples) == 37


def test_min_samples_respected_even_when_the_target_is_met_early(numpy_cpu: Backend) -> None:
    policy = TimingPolicy(target_ci=0.5, budget=30.0, min_samples=150, warmup_budget=0.1,
                          min_time=0.0)
    timing = Engine(numpy_cpu, policy).measure(spin_op(numpy_cpu, 20.0))
    assert timing.stop_reason == STOP_CI
    assert len(timing.samples) == 150  # first checked at min_samples, met there


def test_min_time_is_sampled_even_when_the_target_is_met_early(numpy_cpu: Backend) -> None:
    policy = TimingPolicy(target_ci=0.5, budget=30.0, min_samples=10, warmup_budget=0.5,
                          min_time=0.08, warmup_min_time=0.04)
    timing = Engine(numpy_cpu, policy).measure(spin_op(numpy_cpu, 20.0))
    assert timing.stop_reason == STOP_CI
    # not stopped at the first 10 samples (0.2 ms of spins): sampling lasted 0.08 s
    assert len(timing.samples) > policy.min_samples
    assert timing.warmup_s >= 0.04


def test_min_samples_respected_even_when_the_budget_is_spent(numpy_cpu: Backend) -> None:
    policy = TimingPolicy(target_ci=1e-9, budget=1e-6, min_samples=30, warmup_budget=0.05)
    timing = Engine(numpy_cpu, policy).measure(spin_op(numpy_cpu, 20.0))
    assert timing.stop_reason == STOP_BUDGET
    assert len(timing.samples) == 30


def test_progress_reports_growing_counts_and_the_final_width(numpy_cpu: Backend) -> None:
    seen: list[tuple[int, float]] = []
    policy = TimingPolicy(target_ci=0.02, budget=3.0, min_samples=12, warmup_budget=0.1)
    engine = Engine(numpy_cpu, policy, progress=lambda n, w: seen.append((n, w)))
    timing = engine.measure(spin_op(numpy_cpu, 30.0))
    assert seen, "progress was never called"
    counts = [n for n, _ in seen]
    assert counts[0] == 12
    assert counts == sorted(set(counts))
    assert counts[-1] <= len(timing.samples)
    assert timing.stop_reason in (STOP_CI, STOP_BUDGET)
    if timing.stop_reason == STOP_CI:  # stopped at a check: the last one reported
        assert counts[-1] == len(timing.samples) and seen[-1][1] <= 0.02
        assert seen[-1][1] == pytest.approx(summarize(timing.samples).ci_rel)
    lo, hi = median_ci(np.sort(timing.samples))
    assert lo <= np.median(timing.samples) <= hi


def test_warmup_ends_once_times_settle(numpy_cpu: Backend) -> None:
    # When it settles is asserted on a scripted clock; here: within the cap, after two windows
    policy = TimingPolicy(target_ci=0.05, budget=0.5, warmup_budget=3.0)
    timing = Engine(numpy_cpu, policy).measure(spin_op(numpy_cpu, 50.0))
    assert timing.warmup_s < 3.0 + 1.0
    assert timing.warmup_calls >= 11  # the first call + two settle windows of five


def test_warmup_budget_caps_a_slow_op(numpy_cpu: Backend) -> None:
    policy = TimingPolicy(target_ci=0.5, budget=0.1, min_samples=3, warmup_budget=0.05)
    timing = Engine(numpy_cpu, policy).measure(lambda: time.sleep(0.02))
    assert timing.warmup_s < 0.05 + 1.0
    assert 2 <= timing.warmup_calls <= 6


def test_op_errors_propagate(numpy_cpu: Backend) -> None:
    calls = []

    def op() -> None:
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError, match="kernel failed"):
        Engine(numpy_cpu, TimingPolicy(warmup_budget=0.1)).measure(op)


# --------------------------------------------------------------------------------------------
# Blocked timing


def test_blocked_timing_for_a_sub_microsecond_op(numpy_cpu: Backend) -> None:
    policy = TimingPolicy(target_ci=0.05, budget=2.0, warmup_budget=0.3)
    engine = Engine(numpy_cpu, policy)
    calls = [0]

    def op() -> int:
        calls[0] += 1
        return calls[0]

    timing = engine.measure(op)
    assert timing.block > 1  # a call costs about what a clock read costs: 1% needs blocks
    per_call = float(np.median(timing.samples))
    assert per_call < 20e-6  # samples are per call, not per block (a block is >= 100x that)
    assert timing.overhead_s == engine.overhead
    # Every call is accounted for: first + warm-up calls, then `block` per sample.
    assert calls[0] == timing.warmup_calls + len(timing.samples) * timing.block


def test_blocked_per_call_time_is_accurate_for_a_short_spin(numpy_cpu: Backend) -> None:
    # ~2 us per call with 0.1% overhead allowed needs blocks (the clock read alone is 50-170
    # ns); samples stay per call. How close to 2 us: benchmarks/engine_accuracy.py.
    engine = Engine(numpy_cpu, TimingPolicy(target_ci=0.02, budget=0.5, warmup_budget=0.3,
                                            overhead_frac=0.001))
    timing = engine.measure(spin_op(numpy_cpu, 2.0))
    assert timing.block > 1
    assert 1e-6 < float(np.median(timing.samples)) < 40e-6


# --------------------------------------------------------------------------------------------
# Synchronisation and device timers


def test_synchronize_after_every_timed_block_with_the_last_result() -> None:
    backend = RecordingBackend()
    backend.setup()
    policy = TimingPolicy(target_ci=1e-9, budget=30.0, min_samples=5, max_samples=40,
                          warmup_budget=0.2)
    engine = Engine(backend, policy)
    backend.reset()  # forget the syncs of the overhead calibration
    counter = [0]

    def op() -> int:
        counter[0] += 1
        backend.events.append(("op", counter[0]))
        return counter[0]

    timing = engine.measure(op)
    assert timing.stop_reason == STOP_MAX and len(timing.samples) == 40

    # Split the log into blocks: runs of ops, each closed by exactly one sync.
    groups: list[list[int]] = []
    current: list[int] = []
    empty = 0  # the overhead measured again after warm-up: empty regions, outside any block
    for kind, value in backend.events:
        if kind == "op":
            current.append(value)
        elif value is None and not current:
            empty += 1
        else:
            assert current, "synchronize called with no op since the last one"
            assert value == current[-1], "synchronize must get the block's last result"
            groups.append(current)
            current = []
    assert current == [], "ops after the last synchronize: an unsynchronised region"
    assert backend.last_synced == counter[0]
    assert backend.sync_calls == len(groups) + empty
    # first call + warm-up blocks + one per sample
    assert len(groups) >= 1 + 1 + len(timing.samples)
    assert groups[0] == [1]  # the first call is timed alone
    assert all(len(g) == timing.block for g in groups[-len(timing.samples):])
    assert sum(len(g) for g in groups[: -len(timing.samples)]) == timing.warmup_calls


def test_timed_region_includes_the_device_work() -> None:
    # Launch returns at once; only synchronize waits for the 300 us of queued work. Had the
    # engine stopped the clock before synchronize, samples would be a microsecond or so.
    backend = AsyncBackend(work_s=300e-6)
    backend.setup()
    policy = TimingPolicy(target_ci=0.02, budget=5.0, warmup_budget=0.1)
    timing = Engine(backend, policy).measure(backend.launch)
    median = float(np.median(timing.samples))
    assert 300e-6 <= median < 30e-3  # every call queues 300 us of work; the sync waits for it
    assert timing.first_call_s >= 300e-6


class FakeDeviceTimer(DeviceTimer):
    """Reports 1 ms of device time per op call inside the region."""

    PER_CALL = 1e-3

    def __init__(self, backend: RecordingBackend, calls: list[int]) -> None:
        self.backend = backend
        self.calls = calls
        self.open = False
        self.regions = 0
        self.syncs_in_regions: list[int] = []

    def start(self) -> None:
        assert not self.open, "start() twice without stop()"
        self.open = True
        self.mark = self.calls[0]
        self.sync_mark = self.backend.sync_calls

    def stop(self) -> float:
        assert self.open, "stop() without start()"
        self.open = False
        self.regions += 1
        self.syncs_in_regions.append(self.backend.sync_calls - self.sync_mark)
        return (self.calls[0] - self.mark) * self.PER_CALL


@pytest.mark.parametrize("trivial", [False, True], ids=["block1", "blocked"])
def test_device_timer_samples_are_kept_per_call(trivial: bool) -> None:
    backend = RecordingBackend()
    backend.setup()
    calls = [0]
    timer = FakeDeviceTimer(backend, calls)
    backend.timer = timer

    def op() -> None:
        calls[0] += 1
        if not trivial:
            _spin(2_000_000)  # 2 ms: one call per sample whatever the sync costs (< 20 us)

    policy = TimingPolicy(target_ci=1e-9, budget=30.0, min_samples=5, max_samples=25,
                          warmup_budget=0.1)
    timing = Engine(backend, policy).measure(op)
    assert timing.device_samples is not None
    assert len(timing.device_samples) == len(timing.samples) == 25 == timer.regions
    # Device seconds are per call, like host samples: the engine divides by the block.
    assert timing.device_samples == pytest.approx([FakeDeviceTimer.PER_CALL] * 25)
    assert (timing.block > 1) == trivial
    assert timer.syncs_in_regions == [1] * 25  # each region encloses its block's sync
    assert not timer.open


def test_numpy_backend_has_no_device_samples(numpy_cpu: Backend) -> None:
    assert numpy_cpu.device_timer() is None
    timing = Engine(numpy_cpu, TimingPolicy(target_ci=0.5, min_samples=5,
                                            warmup_budget=0.05)).measure(lambda: None)
    assert timing.device_samples is None


# --------------------------------------------------------------------------------------------
# First call (JIT, compilation, cold caches)


def test_compile_s_captures_a_slow_first_call(numpy_cpu: Backend) -> None:
    state = {"first": True}

    def op() -> None:
        if state["first"]:
            state["first"] = False
            time.sleep(0.05)
        _spin(100_000)

    timing = Engine(numpy_cpu, TimingPolicy(target_ci=0.05, budget=2.0,
                                            warmup_budget=0.1)).measure(op)
    assert timing.first_call_s >= 0.05
    assert 0.045 <= timing.compile_s < 1.0
    assert float(np.median(timing.samples)) < 0.01  # the slow call stayed out of the samples


def test_compile_s_is_small_without_a_slow_first_call(numpy_cpu: Backend) -> None:
    timing = Engine(numpy_cpu, TimingPolicy(target_ci=0.05, budget=0.3,
                                            warmup_budget=0.1)).measure(spin_op(numpy_cpu, 200))
    # a first call like the others: no compile time beyond what a preempted call may add
    assert 0 <= timing.compile_s < 0.5
    assert timing.first_call_s > 0


# --------------------------------------------------------------------------------------------
# The spin workload: a known true time


@pytest.mark.parametrize("us", [10.0, 100.0, 1000.0])
def test_spin_median_is_the_requested_order_of_magnitude(numpy_cpu: Backend, us: float) -> None:
    # Within 2% of the request is an accuracy figure: benchmarks/engine_accuracy.py.
    prepared = Spin().prepare(numpy_cpu, {"us": us})
    assert prepared.info["self_cost_s"] >= 0
    policy = TimingPolicy(target_ci=0.01, budget=0.3, warmup_budget=0.1)
    timing = Engine(numpy_cpu, policy).measure(prepared.op)
    median = float(np.median(timing.samples))
    assert 0.5 * us * 1e-6 < median < 20 * us * 1e-6, (
        f"spin us={us}: median {median * 1e6:.3f} us, block {timing.block}, "
        f"{len(timing.samples)} samples, stop {timing.stop_reason}"
    )


def test_spin_workload_declares_its_work_and_params() -> None:
    spin = Spin()
    assert spin.work({"us": 10.0}).items == 1
    assert spin.params["us"].parse("2.5", "test") == 2.5
