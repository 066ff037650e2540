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
from typing import Any, TypeVar

import numpy as np

from harness.backends.base import Backend
from harness.stats import ci_rel, median_ci

clock = time.perf_counter_ns

Sampler = Callable[[int], float]  # runs `block` calls ending with the device sync; s per call
Clock = Callable[[], float]  # seconds, for the engine's decisions (budgets, warm-up time)
T = TypeVar("T")

STOP_CI = "ci_target"  # the median's CI reached the target
STOP_BUDGET = "budget"  # the time budget ran out first
STOP_MAX = "max_samples"  # the sample cap was reached first

BLOCK_OVERHEAD = "overhead"  # as few calls per sample as keep the overhead under overhead_frac
BLOCK_STEADY = "steady_state"  # samples span min_block_time: single calls misrepresent the cost
STEADY_STATE_TOL = 0.05  # singles vs back-to-back cost per call: beyond this, time in long blocks
SETTLE_WINDOW = 5  # warm-up has settled when the median of the last 5 is within
SETTLE_TOL = 0.05  # 5% of the median of the 5 before


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



@dataclass
class Calibration:
    """What warm-up decided: the block, its rule, and the figures the decision rests on."""

    block: int  # calls per sample
    block_rule: str
    first_call_s: float  # the first call alone (with many ranks: the max across them)
    warmup_s: float
    warmup_calls: int  # calls made before timed sampling, the first call included
    single_call_s: float | None = None  # from the steady-state check (None when not made)
    back_to_back_call_s: float | None = None
    # Median seconds per call of the last (up to 9) warm-up samples: the figure the overhead
    # rule held the block against, and the steady-state check's "typical" sample.
    typical_call_s: float | None = None


@dataclass
class Sampled:
    """What the timed-sampling phase took."""

    samples: list[float]  # the figure per sample: this process's, or the max across ranks
    stop_reason: str
    local: list[float]  # this process's own samples
    ranks: list[list[float]] | None = None  # every process's samples, where the decisions are made


# --------------------------------------------------------------------------------------------
# Pure rules


def _calls_to_fill(seconds: float, per_call: float) -> int:
    if per_call <= 0:
        return 1 << 20
    return max(1, math.ceil(seconds / per_call))


def block_for(overhead_s: float, per_call_s: float, overhead_frac: float) -> int:
    """Calls per sample so the per-sample overhead is at most overhead_frac of the sample:
    the smallest block with overhead_s <= overhead_frac * block * per_call_s."""
    return _calls_to_fill(overhead_s / overhead_frac, per_call_s)


def settled(times: list[float], window: int = SETTLE_WINDOW, tol: float = SETTLE_TOL) -> bool:
    """The median of the last `window` times is within `tol` of the median of the window before."""
    if len(times) < 2 * window:
        return False
    last = float(np.median(times[-window:]))
    prev = float(np.median(times[-2 * window : -window]))
    return abs(last - prev) <= tol * prev


_settled = settled  # the old private name


def _ci_width(samples: list[float]) -> float:
    x = np.sort(np.asarray(samples))
    lo, hi = median_ci(x)
    return ci_rel(float(np.median(x)), lo, hi)


def _worst(gathered: list[list[float]]) -> list[float]:
    """Per sample, the max across processes (the figure of a sample that all of them ran)."""
    if len(gathered) == 1:
        return list(gathered[0])
    return [max(col) for col in zip(*gathered, strict=True)]


# --------------------------------------------------------------------------------------------
# Who decides


class Decider:
    """How a measurement's decisions are made and shared: here, by this process alone.

    The engine's loops call `gather` with the samples taken since the last decision and then
    `decide(make, *args)`, which returns make(*args) run where decisions are made: only a
    process whose `decides` is true ever runs it (and reads the clock for it). Deciding alone
    is free, so it happens after every sample."""

    decides = True
    every_sample = True

    def gather(self, values: list[float]) -> list[list[float]] | None:
        return [values]

    def decide(self, make: Callable[..., T], *args: Any) -> T:
        return make(*args)


class RankZeroDecides(Decider):
    """Ranks that sample together: rank 0 decides on every rank's samples and broadcasts.

    Every rank runs the same loops and takes the same number of samples; only rank 0 reads its
    clock for a decision, so the ranks cannot disagree. A decision costs a gather and a bcast,
    so warm-up decides after rounds of 5 samples and sampling at the stopping rule's checks."""

    every_sample = False

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.decides = comm.rank == 0

    def gather(self, values: list[float]) -> list[list[float]] | None:
        return self.comm.gather(values)

    def decide(self, make: Callable[..., T], *args: Any) -> T:
        return self.comm.bcast(make(*args) if self.decides else None)


ALONE = Decider()


# --------------------------------------------------------------------------------------------
# The core: calibration (first call, warm-up, steady-state check), then timed sampling


class _Warmup:
    """The decisions of warm-up and of the steady-state check, made on one series of
    per-call times (the max across ranks where there are many)."""

    def __init__(self, policy: TimingPolicy, overhead_s: float, clock: Clock) -> None:
        self.policy, self.overhead, self.clock = policy, overhead_s, clock
        self.start = self.singles_start = 0.0
        self.block = 1
        self.window: list[float] = []  # the settle window: samples since the last restart
        self.recent: list[float] = []  # every warm-up sample, restarts or not
        self.typical: float | None = None
        self.singles: list[float] = []

    def begin(self, firsts: list[list[float]]) -> int:
        """The first block, from the first call (the slowest rank's)."""
        self.start = self.clock()
        self.block = self.block_for(max(f[0] for f in firsts))
        return self.block

    def block_for(self, per_call: float) -> int:
        return block_for(self.overhead, per_call, self.policy.overhead_frac)

    def observe(self, times: list[float]) -> tuple[int, bool, bool]:
        """One round of warm-up samples: (block, warm-up done, steady-state check to make)."""
        policy, now = self.policy, self.clock()
        self.recent += times
        up = self.block_for(float(np.median(times)))
        if up > self.block:  # too few calls per sample for the overhead: restart the window
            self.block, self.window = up, []
        else:
            self.window += times
            # Fewer calls would do, by more than half: judged on the median of the window's
            # last 5 samples, never on one slow (preempted) sample.
            down = self.block_for(float(np.median(self.window[-SETTLE_WINDOW:])))
            if len(self.window) >= SETTLE_WINDOW and down < self.block // 2:
                self.block, self.window = down, []
        elapsed = now - self.start
        long_enough = elapsed >= min(policy.warmup_min_time, policy.warmup_budget)
        done = ((settled(self.window) and long_enough) or elapsed >= policy.warmup_budget
                # long operations: a couple of settled calls is all the budget allows
                or (len(self.window) >= 2
                    and elapsed + max(times) * self.block * 10 > policy.warmup_budget))
        if not done:
            return self.block, False, False
        # One preempted sample must not decide: the typical sample of the last nine.
        self.typical = float(np.median(self.recent[-9:]))
        # The overhead rule holds at the end of warm-up whatever the restarts did.
        self.block = max(self.block, self.block_for(self.typical))
        check = self.typical * self.block < policy.min_block_time
        self.singles_start = now
        return self.block, True, check

    # The steady-state check: calls timed (nearly) singly, then five back-to-back blocks.

    def more_singles(self, times: list[float]) -> bool:
        self.singles += times
        return len(self.singles) < 5 or (
            self.clock() - self.singles_start < 5 * self.policy.min_block_time
            and len(self.singles) < 10_000)

    def long_block(self) -> int:
        return _calls_to_fill(self.policy.min_block_time, float(np.mean(self.singles)))

    def judge(self, blocks: list[float] | None) -> tuple[int, str, float, float | None]:
        """(block, rule, single-call median, back-to-back cost per call)."""
        single = float(np.median(self.singles))
        if blocks is None:  # a sample already spans min_block_time: nothing to compare
            return self.block, BLOCK_OVERHEAD, single, None
        back_to_back = float(np.median(blocks))
        # Slower back to back only if even the fastest block is: what slows every block is the
        # operation's own; what slows some (another process, an interrupt) is the machine's.
        # Faster back to back (an async device pipelining calls) if the typical block is:
        # interruptions only ever slow a block down.
        slower = min(blocks) > single * (1 + STEADY_STATE_TOL)
        faster = back_to_back < single * (1 - STEADY_STATE_TOL)
        if single > 0 and (slower or faster):
            return self.long_block(), BLOCK_STEADY, single, back_to_back
        return self.block, BLOCK_OVERHEAD, single, back_to_back


def _calibrate(sampler: Sampler, policy: TimingPolicy, overhead_s: float, clock: Clock,
               decide: Decider) -> tuple[Calibration, list[list[float]] | None]:
    """calibrate() with the decisions made by `decide`; also returns every process's first
    call where the decisions are made."""
    per_round = 1 if decide.every_sample else 5
    calls = 0
    state = _Warmup(policy, overhead_s, clock)  # fed and consulted only where decisions are made

    def take(n: int, block: int) -> list[float] | None:
        """n samples of `block` calls; the series to decide on (None where nobody decides)."""
        nonlocal calls
        local = [sampler(block) for _ in range(n)]
        calls += n * block
        gathered = decide.gather(local)
        return _worst(gathered) if gathered is not None else None

    local_first = sampler(1)
    calls = 1
    firsts = decide.gather([local_first])
    local_start = clock()
    block = decide.decide(state.begin, firsts)
    while True:
        block, done, check = decide.decide(state.observe, take(per_round, block))
        if done:
            break
    rule, single, back_to_back = BLOCK_OVERHEAD, None, None
    if check:
        while decide.decide(state.more_singles, take(per_round, block)):
            pass
        long_block = decide.decide(state.long_block)
        blocks = take(5, long_block) if long_block > block else None
        block, rule, single, back_to_back = decide.decide(state.judge, blocks)
    # warm-up time counts from the end of the first call (on the deciding rank, its clock's)
    warmup_s = clock() - (state.start if decide.decides else local_start)
    cal = Calibration(block=block, block_rule=rule,
                      # the first call's figure: the slowest rank's where this process decides
                      first_call_s=(max(f[0] for f in firsts) if firsts is not None
                                    else local_first),
                      warmup_s=warmup_s, warmup_calls=calls, single_call_s=single,
                      back_to_back_call_s=back_to_back,
                      typical_call_s=state.typical if decide.decides else None)
    return cal, firsts


def calibrate(sampler: Sampler, policy: TimingPolicy, overhead_s: float,
              clock: Callable[[], float] = time.perf_counter) -> Calibration:
    """The first call, warm-up and the steady-state check, in this process.

    Warm-up runs samples of `block` calls until the median of the last 5 per-call times is
    within 5% of the 5 before and it has lasted warmup_min_time, or warmup_budget is spent;
    the block starts from the first call and restarts the settle window whenever the overhead
    rule asks for more calls per sample (or, on the window's median, for less than half). At
    the end the block meets the overhead rule against the typical warm-up sample:
    overhead_s <= overhead_frac * block * typical_call_s. Operations whose sample is shorter
    than min_block_time then get the steady-state check (see the module docstring)."""
    return _calibrate(sampler, policy, overhead_s, clock, ALONE)[0]


class _Stopper:
    """The stopping rule, on one series per process (the figure: the max across them)."""

    def __init__(self, policy: TimingPolicy, progress: Callable[[int, float], None] | None,
                 clock: Clock, every_sample: bool) -> None:
        self.policy, self.progress, self.clock = policy, progress, clock
        self.start = clock()
        self.every_sample = every_sample
        self.ranks: list[list[float]] = []
        self.next_check = max(1, min(policy.min_samples, policy.max_samples))

    def figure(self) -> list[float]:
        return _worst(self.ranks) if self.ranks else []

    def decide(self, gathered: list[list[float]]) -> tuple[str | None, int]:
        """(stop reason or None, the sample count at which to decide next)."""
        policy, now = self.policy, self.clock()
        if not self.ranks:
            self.ranks = [[] for _ in gathered]
        for mine, new in zip(self.ranks, gathered, strict=True):
            mine.extend(new)
        n = len(self.ranks[0])
        elapsed = now - self.start
        stop = None
        if n >= self.next_check:
            width = _ci_width(self.figure())
            if self.progress:
                self.progress(n, width)
            if width <= policy.target_ci and elapsed >= min(policy.min_time, policy.budget):
                stop = STOP_CI
            per_sample = max(elapsed / n, 1e-9)
            step = max(1, min(n // 10, int(policy.budget / 10 / per_sample)),
                       policy.min_samples - n)
            self.next_check = min(n + step, policy.max_samples)
        if stop is None and n >= policy.min_samples and elapsed >= policy.budget:
            stop = STOP_BUDGET
        if stop is None and n >= policy.max_samples:
            stop = STOP_MAX
        return stop, (n + 1 if self.every_sample else self.next_check)


def sample(sampler: Sampler, block: int, policy: TimingPolicy,
           clock: Callable[[], float] = time.perf_counter,
           progress: Callable[[int, float], None] | None = None, *,
           decide: Decider = ALONE) -> Sampled:
    """Timed samples of `block` calls until the stopping rule says stop.

    The rule, checked at min_samples and then every ~10% more samples (and at least ~10 times
    per budget): stop when the median's 95% CI half-width is within target_ci and sampling has
    lasted min_time (STOP_CI); else when the budget is spent, never before min_samples
    (STOP_BUDGET); else at max_samples (STOP_MAX). Deciding alone, the budget and the cap are
    checked after every sample; with `decide` a RankZeroDecides, only at the checks, on the
    max-across-ranks series, and every rank stops at the same sample."""
    stopper = _Stopper(policy, progress, clock, decide.every_sample)
    local: list[float] = []
    sent = 0
    next_decision = stopper.next_check if not decide.every_sample else 1
    while True:
        local.append(sampler(block))
        if len(local) < next_decision:
            continue
        gathered = decide.gather(local[sent:])
        sent = len(local)
        stop, next_decision = decide.decide(stopper.decide, gathered)
        if stop:
            break
    if not decide.decides:
        return Sampled(samples=local, stop_reason=stop, local=local)
    return Sampled(samples=stopper.figure(), stop_reason=stop, local=local, ranks=stopper.ranks)


# --------------------------------------------------------------------------------------------
# The engines: a backend's operation made into a sampler, then calibrate + sample


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


def _with_device_timer(sampler: Sampler, timer: Any, device: list[float]) -> Sampler:
    """The sampler, with each sample's device time (per call) appended to `device`."""
    def timed(block: int) -> float:
        timer.start()
        t = sampler(block)
        device.append(timer.stop() / block)
        return t
    return timed


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
        return block_for(self.overhead, per_call, self.policy.overhead_frac)

    def _recheck_overhead(self, cal: Calibration, decide: Decider) -> Calibration:
        """The overhead again, at the end of warm-up: on a machine whose speed moves by tens of
        percent within seconds, the figure taken before warm-up may be the low one. The larger
        is kept, and the block grows if the overhead rule asks for it."""
        fresh = sample_overhead(self.backend)
        typical = cal.typical_call_s

        def bigger() -> int:
            if fresh <= self.overhead or cal.block_rule != BLOCK_OVERHEAD or typical is None:
                return cal.block
            return max(cal.block, block_for(fresh, typical, self.policy.overhead_frac))

        self.overhead = max(self.overhead, fresh)
        cal.block = decide.decide(bigger)
        return cal

    def measure(self, op: Callable[[], Any]) -> Timing:
        policy, sync = self.policy, device_sync(self.backend)

        def run(block: int) -> float:
            return _time_block(op, sync, block)

        cal = self._recheck_overhead(calibrate(run, policy, self.overhead, time.perf_counter),
                                     ALONE)
        timer = self.backend.device_timer()
        device: list[float] | None = [] if timer else None
        sampler = run if timer is None or device is None else (
            _with_device_timer(run, timer, device))
        taken = sample(sampler, cal.block, policy, time.perf_counter, self.progress)
        return self._timing(cal, taken, device)

    @staticmethod
    def _ci_width(samples: list[float]) -> float:
        return _ci_width(samples)


    def _timing(self, cal: Calibration, taken: Sampled, device: list[float] | None,
                extra: dict[str, Any] | None = None) -> Timing:
        return Timing(samples=taken.samples, block=cal.block, stop_reason=taken.stop_reason,
                      first_call_s=cal.first_call_s, warmup_s=cal.warmup_s,
                      warmup_calls=cal.warmup_calls, overhead_s=self.overhead,
                      device_samples=device, block_rule=cal.block_rule,
                      single_call_s=cal.single_call_s,
                      back_to_back_call_s=cal.back_to_back_call_s, extra=extra or {})


class DistributedEngine(Engine):
    """Times an operation that every rank runs together (a collective), as nccl-tests and OSU do.

    Each sample: the ranks meet at `barrier` (the collective backend's own, outside the timed
    region), then each rank times `block` calls of its op. The sample's figure is the max across
    ranks (min and mean across ranks are kept too). Rank 0 makes every decision — block size,
    end of warm-up, the stopping rule on the max-across-ranks series, the budget — and
    broadcasts it on `comm` (RankZeroDecides), so all ranks run the same number of iterations:
    the same calibrate/sample core as Engine, deciding on rank 0. Samples travel to rank 0 at
    the stopping rule's check points (and at least ~10 times per budget). Device time, where
    the backend reads it, is kept per sample and per call; its figure is the max across ranks.
    """

    def __init__(self, backend: Backend, policy: TimingPolicy, comm: Any,
                 barrier: Callable[[], None] | None = None,
                 progress: Callable[[int, float], None] | None = None,
                 steady_state: bool = False) -> None:
        super().__init__(backend, policy, progress)
        self.comm = comm
        self.barrier = barrier or comm.barrier
        # Collectives keep OSU's rule: barrier, as few calls as the overhead allows. Blocks of
        # min_block_time back to back would pipeline calls that a barrier separates in use, so
        # the steady-state check is made (on rank 0) only when asked for: min_block_time=0 else.
        # harness.runner.engine_for asks for it for ops that every rank runs on its own.
        self.steady_state = steady_state

    def measure(self, op: Callable[[], Any]) -> Timing:
        policy, sync, comm = self.policy, device_sync(self.backend), self.comm
        decide = RankZeroDecides(comm)
        where = getattr(comm, "phase", "") or "the case"

        def run(block: int) -> float:
            self.barrier()
            t = _time_block(op, sync, block)
            comm.tick()
            return t

        comm.phase = f"{where}, warm-up"
        warm_policy = policy if self.steady_state else policy.replace(min_block_time=0.0)
        cal, firsts = _calibrate(run, warm_policy, self.overhead, time.perf_counter, decide)
        cal = self._recheck_overhead(cal, decide)

        comm.phase = f"{where}, timed iterations"
        timer = self.backend.device_timer()
        device: list[float] | None = [] if timer else None
        sampler = run if timer is None or device is None else (
            _with_device_timer(run, timer, device))
        taken = sample(sampler, cal.block, policy, time.perf_counter, self.progress,
                       decide=decide)

        extra: dict[str, Any] = {"ranks": comm.size, "rank_samples": taken.local}
        if device is not None:  # every rank has the same backend: all gather, or none
            devices = comm.gather(device)
            if devices is not None:
                extra["rank_device_samples"] = devices
                device = _worst(devices)
        if taken.ranks is not None and firsts is not None:
            matrix = np.asarray(taken.ranks)
            extra.update(
                rank_min_samples=matrix.min(axis=0).tolist(),
                rank_mean_samples=matrix.mean(axis=0).tolist(),
                rank_medians=np.median(matrix, axis=1).tolist(),
                first_call_ranks=[f[0] for f in firsts],
            )
        return self._timing(cal, taken, device, extra)
