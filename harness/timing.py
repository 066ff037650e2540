"""The measurement engine: warm-up, blocked timing, and the adaptive stopping rule.

Every timed region ends with the backend's synchronisation, so no unsynchronised region is timed.
Operations shorter than ~100x the per-sample overhead (clock reads plus synchronisation call) are
timed in blocks of `block` calls, so that overhead stays under 1% of each sample.

Calls of one operation are not always alike: a 64x64 torch matmul on a CPU takes ~4.6 us most of
the time and ~14 us every 6-8 calls (with one thread or two), so the median of single calls
reports the fast calls only, 25% under the cost per call in steady state. After warm-up the engine
compares the two for operations shorter than `min_block_time`: the median of calls timed (nearly)
singly, and the cost per call of five blocks `min_block_time` long. When even the fastest block is
more than 5% slower per call (slow calls that every block has are the operation's; those only some
have are the busy machine's), or the median block more than 5% faster (an async device pipelining
calls), every sample becomes such a block (block rule "steady_state", as blocked_autorange's are);
otherwise calls stay timed singly, which keeps the machine's interruptions out of the median.
Both figures are recorded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.backends.base import Backend
from harness.stats import ci_rel, median_ci

clock = time.perf_counter_ns

STOP_CI = "ci_target"  # the median's CI reached the target
STOP_BUDGET = "budget"  # the time budget ran out first
STOP_MAX = "max_samples"  # the sample cap was reached first

BLOCK_OVERHEAD = "overhead"  # as few calls per sample as keep the overhead under overhead_frac
BLOCK_STEADY = "steady_state"  # samples span min_block_time: single calls misrepresent the cost
STEADY_STATE_TOL = 0.05  # singles vs back-to-back cost per call: beyond this, time in long blocks


@dataclass(frozen=True)
class TimingPolicy:
    """How long and how hard to measure one case."""

    target_ci: float = 0.01  # stop when the median's 95% CI half-width is within this fraction
    budget: float = 5.0  # seconds of timed sampling per case (warm-up has its own cap)
    min_samples: int = 10
    max_samples: int = 100_000
    warmup_budget: float = 1.0  # seconds at most spent warming up
    # A case is never judged on a moment: warm up for at least warmup_min_time (CPU clocks and
    # caches ramp over milliseconds; eleven 10 us calls took 0.1 ms) and sample for at least
    # min_time before the CI rule may stop (both capped by their budgets).
    warmup_min_time: float = 0.05
    min_time: float = 0.1
    overhead_frac: float = 0.01  # per-sample overhead allowed, as a fraction of a sample
    # Operations shorter than this are checked for calls that are not alike (see above); when
    # they are not, each sample spans at least this long. 0 turns the check off.
    min_block_time: float = 1e-3
    # Rounds: the run measures every case this many times, interleaved (all cases, then all
    # again), each round with budget/rounds; the spread of the round medians is how much a
    # case moves over time on this machine, which `bench compare` then allows for.
    rounds: int = 1

    def replace(self, **changes: Any) -> TimingPolicy:
        return TimingPolicy(**{**asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timing:
    """Raw result of timing one operation."""

    samples: list[float]  # seconds per call, one per sample (a sample is a block of calls)
    block: int  # calls per sample
    stop_reason: str
    first_call_s: float  # includes JIT/compile/caches
    warmup_s: float
    warmup_calls: int
    overhead_s: float  # per-sample cost of the clock reads and the synchronisation call
    device_samples: list[float] | None = None
    block_rule: str = BLOCK_OVERHEAD
    # From the check after warm-up (None when not made): median seconds per call timed singly
    # (in blocks of the overhead rule), and per call of back-to-back blocks of min_block_time.
    single_call_s: float | None = None
    back_to_back_call_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def compile_s(self) -> float:
        """First-call time beyond a steady call: JIT, compilation, cold caches."""
        steady = float(np.median(self.samples)) if self.samples else 0.0
        return max(0.0, self.first_call_s - steady)


def device_sync(backend: Backend) -> Callable[[Any], None] | None:
    """The backend's synchronisation, or None for a host backend that never needs one."""
    if type(backend).synchronize is Backend.synchronize:
        return None
    return backend.synchronize


def sample_overhead(backend: Backend, reps: int = 200) -> float:
    """Median cost of one empty timed region: two clock reads and a synchronisation."""
    sync = device_sync(backend)
    costs = []
    for _ in range(reps):
        t0 = clock()
        if sync is not None:
            sync(None)
        costs.append(clock() - t0)
    resolution = time.get_clock_info("perf_counter").resolution
    return max(float(np.median(costs)) * 1e-9, resolution)


def _time_block(op: Callable[[], Any], sync: Callable[[Any], None] | None, block: int) -> float:
    """Seconds per call of `block` calls, ending with the device synchronisation.

    `sync` is None only for host backends, whose calls complete before they return."""
    if sync is None:
        if block == 1:
            t0 = clock()
            op()
            return (clock() - t0) * 1e-9
        t0 = clock()
        for _ in range(block):
            op()
        return (clock() - t0) * 1e-9 / block
    t0 = clock()
    r = None
    for _ in range(block):
        r = op()
    sync(r)
    return (clock() - t0) * 1e-9 / block


def _calls_to_fill(seconds: float, per_call: float) -> int:
    if per_call <= 0:
        return 1 << 20
    return max(1, math.ceil(seconds / per_call))


def _settled(times: list[float], window: int = 5, tol: float = 0.05) -> bool:
    if len(times) < 2 * window:
        return False
    last = float(np.median(times[-window:]))
    prev = float(np.median(times[-2 * window : -window]))
    return abs(last - prev) <= tol * prev


class Engine:
    """Times an operation on a backend according to a TimingPolicy."""

    def __init__(self, backend: Backend, policy: TimingPolicy,
                 progress: Callable[[int, float], None] | None = None) -> None:
        self.backend = backend
        self.policy = policy
        self.progress = progress  # called with (samples so far, current CI half-width fraction)
        self.overhead = sample_overhead(backend)
        # The stopping rule's first check imports scipy (~0.15 s): do it now, not mid-sampling.
        self._ci_width([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])

    def block_for(self, per_call: float) -> int:
        """Calls per sample so the per-sample overhead is at most overhead_frac of the sample."""
        return _calls_to_fill(self.overhead / self.policy.overhead_frac, per_call)

    def steady_state_block(self, op: Callable[[], Any], sync: Callable[[Any], None] | None,
                           block: int) -> tuple[int, str, float, float | None, int]:
        """Compare calls timed singly with back-to-back blocks of min_block_time.

        Returns (block, rule, single-call median, back-to-back cost per call, calls made); the
        block is the long one when the two differ by more than STEADY_STATE_TOL."""
        span = self.policy.min_block_time
        singles: list[float] = []
        start = clock()
        while len(singles) < 5 or (clock() - start < 5e9 * span and len(singles) < 10_000):
            singles.append(_time_block(op, sync, block))
        single = float(np.median(singles))
        calls = len(singles) * block
        long_block = _calls_to_fill(span, float(np.mean(singles)))
        if long_block <= block:  # a sample already spans min_block_time: nothing to compare
            return block, BLOCK_OVERHEAD, single, None, calls
        blocks = [_time_block(op, sync, long_block) for _ in range(5)]
        back_to_back = float(np.median(blocks))
        calls += len(blocks) * long_block
        # Slower back to back only if even the fastest block is: what slows every block is the
        # operation's own; what slows some (another process, an interrupt) is the machine's.
        # Faster back to back (an async device pipelining calls) if the typical block is:
        # interruptions only ever slow a block down.
        slower = min(blocks) > single * (1 + STEADY_STATE_TOL)
        faster = back_to_back < single * (1 - STEADY_STATE_TOL)
        if single > 0 and (slower or faster):
            return long_block, BLOCK_STEADY, single, back_to_back, calls
        return block, BLOCK_OVERHEAD, single, back_to_back, calls

    def measure(self, op: Callable[[], Any]) -> Timing:
        policy, sync = self.policy, device_sync(self.backend)

        first = _time_block(op, sync, 1)
        # Warm-up: calibrate the block size, then run until per-call times settle.
        block = self.block_for(first)
        warm_start = time.perf_counter()
        warm_times: list[float] = []
        recent: list[float] = []  # seconds per call of every warm-up sample, restarts or not
        warm_calls = 1
        while True:
            t = _time_block(op, sync, block)
            recent.append(t)
            warm_calls += block
            new_block = self.block_for(t)
            if new_block > block or new_block < block // 2:
                block, warm_times = new_block, []  # mis-calibrated: restart the settle window
            else:
                warm_times.append(t)
            elapsed = time.perf_counter() - warm_start
            long_enough = elapsed >= min(policy.warmup_min_time, policy.warmup_budget)
            if (_settled(warm_times) and long_enough) or elapsed >= policy.warmup_budget:
                break
            if len(warm_times) >= 2 and elapsed + t * block * 10 > policy.warmup_budget:
                break  # long operations: a couple of settled calls is all the budget allows
        rule, single, back_to_back = BLOCK_OVERHEAD, None, None
        typical = float(np.median(recent[-9:]))  # one preempted sample must not decide
        if typical * block < policy.min_block_time:
            block, rule, single, back_to_back, calls = self.steady_state_block(op, sync, block)
            warm_calls += calls
        warmup_s = time.perf_counter() - warm_start

        timer = self.backend.device_timer()
        samples: list[float] = []
        device: list[float] | None = [] if timer else None
        start = time.perf_counter()
        next_check = policy.min_samples
        reason = STOP_MAX
        while len(samples) < policy.max_samples:
            if timer is not None:
                timer.start()
            samples.append(_time_block(op, sync, block))
            if timer is not None and device is not None:
                device.append(timer.stop() / block)
            n = len(samples)
            if n >= next_check:
                width = self._ci_width(samples)
                if self.progress:
                    self.progress(n, width)
                if width <= policy.target_ci and (
                        time.perf_counter() - start >= min(policy.min_time, policy.budget)):
                    reason = STOP_CI
                    break
                next_check = n + max(1, n // 10)
            if n >= policy.min_samples and time.perf_counter() - start >= policy.budget:
                reason = STOP_BUDGET
                break
        return Timing(
            samples=samples,
            block=block,
            stop_reason=reason,
            first_call_s=first,
            warmup_s=warmup_s,
            warmup_calls=warm_calls,
            overhead_s=self.overhead,
            device_samples=device,
            block_rule=rule,
            single_call_s=single,
            back_to_back_call_s=back_to_back,
        )

    @staticmethod
    def _ci_width(samples: list[float]) -> float:
        x = np.sort(np.asarray(samples))
        lo, hi = median_ci(x)
        return ci_rel(float(np.median(x)), lo, hi)


class DistributedEngine(Engine):
    """Times an operation that every rank runs together (a collective), as nccl-tests and OSU do.

    Each sample: the ranks meet at `barrier` (the collective backend's own, outside the timed
    region), then each rank times `block` calls of its op. The sample's figure is the max across
    ranks (min and mean across ranks are kept too). Rank 0 makes every decision — block size,
    end of warm-up, the stopping rule on the max-across-ranks series, the budget — and
    broadcasts it on `comm`, so all ranks run the same number of iterations. Samples travel to
    rank 0 at the stopping rule's check points (and at least ~10 times per budget).
    """

    def __init__(self, backend: Backend, policy: TimingPolicy, comm: Any,
                 barrier: Callable[[], None] | None = None,
                 progress: Callable[[int, float], None] | None = None) -> None:
        super().__init__(backend, policy, progress)
        self.comm = comm
        self.barrier = barrier or comm.barrier

    def _sample(self, op: Callable[[], Any], sync: Callable[[Any], None] | None,
                block: int) -> float:
        self.barrier()
        t = _time_block(op, sync, block)
        self.comm.tick()
        return t

    def measure(self, op: Callable[[], Any]) -> Timing:
        policy, sync, comm = self.policy, device_sync(self.backend), self.comm
        root = comm.rank == 0
        where = getattr(comm, "phase", "") or "the case"
        comm.phase = f"{where}, warm-up"
        first = self._sample(op, sync, 1)
        firsts = comm.gather(first)
        first_max = max(firsts) if root else first
        block = comm.bcast(self.block_for(first_max) if root else None)

        warm_start = time.perf_counter()
        warm_times: list[float] = []
        warm_calls = 1
        while True:  # rounds of 5 samples; rank 0 judges the max across ranks
            local = [self._sample(op, sync, block) for _ in range(5)]
            warm_calls += 5 * block
            gathered = comm.gather(local)
            decision = None
            if root:
                worst = np.max(np.asarray(gathered), axis=0).tolist()
                new_block = self.block_for(float(np.median(worst)))
                if new_block > block or new_block < block // 2:
                    warm_times, next_block = [], new_block
                else:
                    warm_times += worst
                    next_block = block
                elapsed = time.perf_counter() - warm_start
                long_enough = elapsed >= min(policy.warmup_min_time, policy.warmup_budget)
                done = ((_settled(warm_times) and long_enough) or elapsed >= policy.warmup_budget
                        or (len(warm_times) >= 2
                            and elapsed + max(worst) * block * 10 > policy.warmup_budget))
                decision = {"block": next_block, "done": done}
            decision = comm.bcast(decision)
            block = decision["block"]
            if decision["done"]:
                break
        warmup_s = time.perf_counter() - warm_start

        comm.phase = f"{where}, timed iterations"
        local_samples: list[float] = []
        per_rank: list[list[float]] = [[] for _ in range(comm.size)]
        start = time.perf_counter()
        next_check = policy.min_samples
        reason = STOP_MAX
        sent = 0
        while True:
            local_samples.append(self._sample(op, sync, block))
            if len(local_samples) < next_check:
                continue
            gathered = comm.gather(local_samples[sent:])
            sent = len(local_samples)
            decision = None
            if root:
                for r, new in enumerate(gathered):
                    per_rank[r].extend(new)
                worst = np.max(np.asarray(per_rank), axis=0)
                n = len(worst)
                width = self._ci_width(worst.tolist())
                if self.progress:
                    self.progress(n, width)
                elapsed = time.perf_counter() - start
                stop = None
                if width <= policy.target_ci and elapsed >= min(policy.min_time, policy.budget):
                    stop = STOP_CI
                elif elapsed >= policy.budget:
                    stop = STOP_BUDGET
                elif n >= policy.max_samples:
                    stop = STOP_MAX
                per_sample = max(elapsed / n, 1e-9)
                step = max(1, min(n // 10, int(policy.budget / 10 / per_sample)),
                           policy.min_samples - n)
                decision = {"stop": stop, "next": min(n + step, policy.max_samples)}
            decision = comm.bcast(decision)
            if decision["stop"]:
                reason = decision["stop"]
                break
            next_check = decision["next"]

        extra: dict[str, Any] = {"ranks": comm.size, "rank_samples": local_samples}
        samples = local_samples
        if root:
            matrix = np.asarray(per_rank)
            samples = matrix.max(axis=0).tolist()
            extra.update(
                rank_min_samples=matrix.min(axis=0).tolist(),
                rank_mean_samples=matrix.mean(axis=0).tolist(),
                rank_medians=np.median(matrix, axis=1).tolist(),
                first_call_ranks=firsts,
            )
        return Timing(
            samples=samples,
            block=block,
            stop_reason=reason,
            first_call_s=first_max,
            warmup_s=warmup_s,
            warmup_calls=warm_calls,
            overhead_s=self.overhead,
            extra=extra,
        )


# --------------------------------------------------------------------------------------------
# The warm-up and calibration rules over a sampler, for operations that run elsewhere (the
# workers of `bench ab`): the same rules as Engine.measure's, driven by any clock.

Sampler = Callable[[int], float]  # runs `block` calls ending with the sync; seconds per call


@dataclass
class Calibration:
    """What warm-up decided for one operation."""

    block: int
    block_rule: str
    first_call_s: float
    warmup_s: float
    warmup_calls: int
    single_call_s: float | None = None
    back_to_back_call_s: float | None = None


def block_for(overhead_s: float, per_call_s: float, overhead_frac: float) -> int:
    """Calls per sample so the per-sample overhead is at most overhead_frac of the sample."""
    return _calls_to_fill(overhead_s / overhead_frac, per_call_s)


def settled(times: list[float]) -> bool:
    return _settled(times)


def calibrate(sampler: Sampler, policy: TimingPolicy, overhead_s: float,
              clock: Callable[[], float] = time.perf_counter) -> Calibration:
    """First call, warm-up until per-call times settle, and the steady-state block check."""
    first = sampler(1)
    block = block_for(overhead_s, first, policy.overhead_frac)
    warm_start = clock()
    warm_times: list[float] = []
    recent: list[float] = []
    calls = 1
    while True:
        t = sampler(block)
        recent.append(t)
        calls += block
        new_block = block_for(overhead_s, t, policy.overhead_frac)
        if new_block > block or new_block < block // 2:
            block, warm_times = new_block, []
        else:
            warm_times.append(t)
        elapsed = clock() - warm_start
        long_enough = elapsed >= min(policy.warmup_min_time, policy.warmup_budget)
        if (settled(warm_times) and long_enough) or elapsed >= policy.warmup_budget:
            break
        if len(warm_times) >= 2 and elapsed + t * block * 10 > policy.warmup_budget:
            break
    rule, single, back_to_back = BLOCK_OVERHEAD, None, None
    typical = float(np.median(recent[-9:]))
    span = policy.min_block_time
    if typical * block < span:
        singles: list[float] = []
        start = clock()
        while len(singles) < 5 or (clock() - start < 5 * span and len(singles) < 10_000):
            singles.append(sampler(block))
        single = float(np.median(singles))
        calls += len(singles) * block
        long_block = _calls_to_fill(span, float(np.mean(singles)))
        if long_block > block:
            blocks = [sampler(long_block) for _ in range(5)]
            back_to_back = float(np.median(blocks))
            calls += 5 * long_block
            slower = min(blocks) > single * (1 + STEADY_STATE_TOL)
            faster = back_to_back < single * (1 - STEADY_STATE_TOL)
            if single > 0 and (slower or faster):
                block, rule = long_block, BLOCK_STEADY
    return Calibration(block, rule, first, clock() - warm_start, calls, single, back_to_back)
