"""`bench ab`: one paired experiment of two sides (installations or environments) of one plan.

Each side is a worker process (harness/ab_worker.py, started with that side's interpreter and
environment) that prepares every case once, checks it, and then times what this parent asks for.
Per case the parent calibrates both sides (warm-up and block size, harness.timing.calibrate),
then alternates them in short turns — a turn is about half a millisecond of samples of one side
(one sample, for operations longer than that) — in random order within each pair, watching the
machine between turns (harness.noise.MachineWatch). A pair during which the machine was
disturbed is measured again, a bounded number of times. A case stops once more pairs would not
change its verdict (results.paired.decided), or when its budget of timed turns (both sides
together, as a plain run's budget covers its one side) runs out; what decided cases leave of
the plan's budget goes, once every case has had its turn, to the cases still undecided.

Each side runs in WORKERS processes, and the pairs go through every pairing of base and head
processes in turn: two processes of the same code can differ by a few percent (memory layout,
placement). Each process draws its layout at random (harness/ab_worker.py), so that such a
difference is one between processes, not between the sides, and the interval allows for what
the pairings show of it. Where a case is cheap to prepare, every process also holds up to LAYOUTS
instances of it, each in a layout of its own, and rotates its turns through them, so that a
process's figure averages over layouts instead of resting on one.

Both sides are stored as ordinary runs (tags ``ab=<id>``, ``ab_side=base|head``), so `bench show`,
`report` and `history` work on them. Signals end the experiment with every finished case kept
(`partial`, 128 + signal); a worker that dies ends it with the dead side named (exit 3).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from harness.config import PlannedCase
from harness.errors import UserError
from harness.exiting import Interrupted
from harness.measurement import Measurement, TimingRecord, figures
from harness.noise import CANARY_LOOPS, MachineWatch, Verdict
from harness.runner import now
from harness.timing import STOP_BUDGET, STOP_MAX, TimingPolicy, calibrate
from harness.workmodel import Work

WORKER = Path(__file__).with_name("ab_worker.py")
SIDES = ("base", "head")
# A turn: samples of one side spanning about this long. Short, because the machines this runs
# on change speed within milliseconds (a 2-core VM here flipped between ~57 and ~110 us per call
# of one loop in states lasting 0.1-4 ms, a few hundred ms at most), and the two turns of a pair
# must see the same state: with 5% slowdowns at a 2% threshold, 4 runs each alternated on one
# machine caught 14/20 at 5 ms, 14/20 at 2 ms, 17/20 at 1 ms and 20/20 at 0.5 ms (below that,
# the ~0.3 ms a turn costs in requests and canaries dominates and it got worse again).
TURN_S = 0.0005
WORKERS = 3  # worker processes per side: processes of one code differ by a few percent (layout);
# 10% slowdowns at 5%, 4 runs of 20 cases each, alternated: 18/20 caught with 2, 20/20 with 3 and 4
MAX_REDO = 2  # a disturbed pair is measured again at most this many times
MAX_PAIRS = 20_000
LAYOUTS = 8  # instances of a case per process, at most (harness/ab_worker.py)
LAYOUT_SHARE = 0.02  # ... while preparing them takes at most this share of the case's budget
EXTEND = 2.0  # an undecided case gets at most this many more of its budgets from the others'
STOP_DECIDED = "decided"  # more pairs would not change the case's verdict (results.paired.decided)
EXIT_OK, EXIT_CASE_FAILED, EXIT_WORKER_DIED = 0, 1, 3
# The CPUs this process may use; where there is no affinity call, pairs are not pinned.
ALL_CPUS = (frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else frozenset())
PARALLEL = 1.5  # a case whose turn keeps this many CPUs busy (CPU time / wall) is not pinned


@dataclass(frozen=True)
class Side:
    """One side of the experiment: an interpreter and the environment it runs with."""

    name: str  # base | head
    python: str = sys.executable
    env: tuple[tuple[str, str], ...] = ()


class WorkerDied(Exception):
    def __init__(self, side: str, detail: str) -> None:
        super().__init__(f"the {side} worker died ({detail})")
        self.side = side


class WorkerError(Exception):
    """A request the worker could not serve (a workload's own failure)."""


class Worker:
    """A side's worker process and its request/reply channel."""

    def __init__(self, side: Side, timeout: float) -> None:
        self.side, self.timeout = side, timeout
        python = side.python
        # a random-length variable: the process's layout is drawn at random (ab_worker's doc)
        env = {**os.environ, **dict(side.env),
               "ACCELBENCH_AB_LAYOUT": "x" * (16 * random.SystemRandom().randrange(256))}
        try:
            self.proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        except OSError as exc:
            raise UserError(f"--{side.name}-python {python}: cannot start it "
                            f"({exc.strerror}); give the path of a Python interpreter") from None
        self._buffer = ""
        self.info: dict[str, Any] = {}
        self.cpus = ALL_CPUS

    def handshake(self) -> None:
        self.info = self.request("hello", timeout=max(self.timeout, 60.0))

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """One request; the worker runs only while it serves one (see resume/pause)."""
        self.begin(op, **fields)
        return self.end(timeout)

    def begin(self, op: str, **fields: Any) -> None:
        """Send a request and let the worker run: several workers can serve theirs at once."""
        self.resume()
        try:
            self.send(op, **fields)
        except WorkerDied:
            self.pause()
            raise

    def end(self, timeout: float | None = None) -> dict[str, Any]:
        """The reply to the request begun; the worker is frozen again."""
        try:
            return self.receive(timeout)
        finally:
            self.pause()

    def pause(self) -> None:
        """Freeze the process between its requests: a side's idle threads (an OpenMP pool
        spinning after its turn) would otherwise take CPU from the other side's turn."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGSTOP)
            except ProcessLookupError:
                return
            self._wait_stopped()

    def _wait_stopped(self) -> None:
        """Signals arrive asynchronously: wait until the kernel has stopped it (one blocking
        waitpid; polling /proc for the state cost ~0.5 ms a turn, a third of a short turn)."""
        try:
            _, status = os.waitpid(self.proc.pid, os.WUNTRACED)
        except ChildProcessError:
            return
        if not os.WIFSTOPPED(status):  # it ended meanwhile: keep Popen's view of it
            self.proc.returncode = os.waitstatus_to_exitcode(status)

    def pin(self, cpus: frozenset[int]) -> None:
        """Run on these CPUs only (from the next time it runs)."""
        if cpus != self.cpus and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.proc.pid, cpus)
                self.cpus = cpus

    def resume(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)

    def send(self, op: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied(self.side.name, self._exit_detail()) from None

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        line = self._readline(timeout if timeout is not None else self.timeout)
        reply = json.loads(line)
        if "error" in reply:
            if reply.get("kind") == "not_installed":
                raise UserError(
                    f"--{self.side.name}-python {self.side.python}: {reply['error']}; install "
                    f"it there: {self.side.python} -m pip install -e 'CHECKOUT[torch]'")
            raise WorkerError(reply["error"])
        return reply

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while "\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerDied(self.side.name, f"no reply in {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16).decode()
            if not chunk:
                raise WorkerDied(self.side.name, self._exit_detail())
            self._buffer += chunk
        line, self._buffer = self._buffer.split("\n", 1)
        return line

    def _exit_detail(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(WorkerDied, WorkerError, OSError, ValueError):
                self.resume()
                self.send("close")
                self.receive(timeout=10)
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


@dataclass
class SideCase:
    """One side's part of one case."""

    status: str = "ok"
    error: str | None = None
    work: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    setup_s: float | None = None
    samples: list[float] = field(default_factory=list)
    turn_medians: list[float] = field(default_factory=list)
    calibration: Any = None
    overhead_s: float = 0.0
    timed_s: float = 0.0  # wall time of this side's turns, discarded ones too


@dataclass
class CaseResult:
    """The paired measurement of one case."""

    index: int
    planned: PlannedCase
    sides: dict[str, SideCase]
    log_ratios: list[float] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # worker combination of each pair
    stop_reason: str = ""
    pairs_disturbed: int = 0  # pairs found disturbed and measured again
    disturbed_kept: int = 0  # pairs kept although disturbed (the re-measure bound was hit)
    turn_samples: int = 0
    block: int = 1
    block_rule: str = ""
    reasons: dict[str, int] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    estimate: Any = None  # results.paired.PairedEstimate of a compared case
    decided: bool = False  # stopped because more pairs would not change its verdict
    pinned: bool = False  # both turns of each pair ran on one CPU, drawn per pair
    layouts: dict[str, int] = field(default_factory=dict)  # instances per process, per side
    elapsed_s: float = 0.0  # wall time of its pairs so far
    watch_offsets: Any = None  # the machine watch's learned side offsets, for a second pass

    @property
    def spent_s(self) -> float:
        """Timed turns of both sides so far: what the budget counts."""
        return sum(sc.timed_s for sc in self.sides.values())

    @property
    def key(self) -> str:
        return self.planned.case.key

    @property
    def compared(self) -> bool:
        return all(s.status == "ok" for s in self.sides.values()) and len(self.log_ratios) > 0

    @property
    def failed_on(self) -> list[str]:
        return [n for n, s in self.sides.items() if s.status != "ok"]


class Reporter:
    """Progress of `bench ab` on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def line(self, text: str) -> None:
        if not self.quiet:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def case_finished(self, i: int, total: int, r: CaseResult, est: Any) -> None:
        if r.failed_on:
            errs = "; ".join(f"{n}: {r.sides[n].error}" for n in r.failed_on)
            self.line(f"[{i + 1}/{total}] {r.key}  FAILED on {errs}")
            return
        if est is None:
            self.line(f"[{i + 1}/{total}] {r.key}  no pairs measured")
            return
        self.line(f"[{i + 1}/{total}] {r.key}  head/base {est.ratio:.4f} "
                  f"[{est.ci_low:.4f}, {est.ci_high:.4f}]  pairs={est.pairs} "
                  f"disturbed={r.pairs_disturbed}  ({r.stop_reason})")


class Experiment:
    """Runs the plan on both sides, pair by pair."""

    def __init__(self, plan: Sequence[PlannedCase], sides: Sequence[Side], *,
                 plugins: Sequence[str] = (), check: bool = True, threshold: float = 0.05,
                 timeout: float = 60.0, seed: int | None = None,
                 reporter: Reporter | None = None, turn_s: float = TURN_S,
                 workers: int = WORKERS, watch: MachineWatch | None = None,
                 fdr: float = 0.05, decide: bool = True, pin: bool = True,
                 layouts: int = LAYOUTS) -> None:
        self.plan, self.sides = list(plan), list(sides)
        self.layouts = layouts
        self.plugins, self.check, self.threshold = list(plugins), check, threshold
        self.fdr = fdr
        self.decide = decide  # stop a case once decided; else at its budget (a noise floor)
        self.pin = pin  # single-threaded cases: both turns of a pair on one CPU
        self.timeout, self.turn_s, self.per_side = timeout, turn_s, workers
        self.ab_id = str(uuid.uuid4())
        self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 31)
        self.rng = random.Random(self.seed)
        self.reporter = reporter or Reporter(quiet=True)
        self.watch = watch or MachineWatch()
        self.workers: dict[str, list[Worker]] = {}
        self.loaded: dict[str, dict[str, Any]] = {}

    # -- set-up ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start both workers and prepare every case on each (before anything is written)."""
        specs = [{"key": p.case.key, "workload": p.case.workload, "backend": p.case.backend,
                  "params": p.case.param_dict} for p in self.plan]
        plugins = [str(Path(p).resolve()) for p in self.plugins]
        for side in self.sides:  # start every process first: they prepare side by side
            self.workers[side.name] = [Worker(side, self.timeout) for _ in range(self.per_side)]
        everyone = [w for ws in self.workers.values() for w in ws]
        for w in everyone:
            w.handshake()
        for w in everyone:  # all prepare at once, then each is frozen until asked
            w.begin("load", plugins=plugins, cases=specs, check=self.check)
        for side in self.sides:
            for k, w in enumerate(self.workers[side.name]):
                try:
                    loaded = w.end(timeout=max(self.timeout, 600.0))
                except WorkerError as exc:  # a plugin that does not load there
                    raise UserError(f"the {side.name} side cannot load the plan: "
                                    f"{exc}") from None
                if k == 0:
                    self.loaded[side.name] = loaded
                else:  # a case that fails on one process of a side fails on that side
                    for mine, theirs in zip(self.loaded[side.name]["cases"], loaded["cases"],
                                            strict=True):
                        if mine["status"] == "ok" and theirs["status"] != "ok":
                            mine.update(status=theirs["status"], error=theirs["error"])
        for side in self.sides:
            info = self.workers[side.name][0].info
            self.reporter.line(f"{side.name}: accelbench {info.get('version')} in "
                               f"{info.get('harness_path')} (Python {info.get('python')}"
                               + (f"; {' '.join(f'{k}={v}' for k, v in side.env)}"
                                  if side.env else "") + ")")

    def close(self) -> None:
        for workers in self.workers.values():
            for worker in workers:
                worker.close()

    # -- one case --------------------------------------------------------------------------------

    def _sampler(self, worker: Worker, index: int) -> Callable[[int], float]:
        def sample(block: int) -> float:
            return float(worker.request("time", case=index, block=block, samples=1)["t"][0])
        return sample

    def _turn(self, worker: Worker, index: int, block: int, samples: int,
              canary: int = 0) -> tuple[list[float], float, float]:
        """(seconds per call of each sample, wall time of the turn, its canary time)."""
        t0 = time.perf_counter()
        reply = worker.request("time", case=index, block=block, samples=samples,
                               max_s=max(4 * self.turn_s, 1.0), canary=canary, timed=True)
        return ([float(x) for x in reply["t"]], time.perf_counter() - t0,
                float(reply.get("canary_s", 0.0)))

    def measure(self, index: int) -> CaseResult:
        planned = self.plan[index]
        policy: TimingPolicy = planned.policy
        result = CaseResult(index, planned, {}, started_at=now())
        for side in self.sides:
            entry = self.loaded[side.name]["cases"][index]
            result.sides[side.name] = SideCase(status=entry["status"], error=entry["error"],
                                               work=entry["work"], info=entry["info"] or {},
                                               setup_s=entry.get("setup_s"))
        if result.failed_on:
            result.finished_at = now()
            return result
        order = list(self.sides)
        self.rng.shuffle(order)  # which side calibrates first
        for side in order:  # the first process of each side decides the block
            sc, worker = result.sides[side.name], self.workers[side.name][0]
            try:
                sc.overhead_s = float(worker.request("overhead", case=index)["overhead_s"])
                sc.calibration = calibrate(self._sampler(worker, index), policy, sc.overhead_s)
            except WorkerError as exc:
                sc.status, sc.error = "failed", str(exc)
        if result.failed_on:
            result.finished_at = now()
            return result
        cals = [result.sides[s.name].calibration for s in self.sides]
        result.block = max(c.block for c in cals)
        result.block_rule = ",".join(dict.fromkeys(c.block_rule for c in cals))
        try:
            self._spread(result, policy)
        except WorkerError as exc:
            for sc in result.sides.values():
                sc.status, sc.error = "failed", f"preparing it again: {exc}"
            result.finished_at = now()
            return result
        per_call, parallel = [], []
        for side in self.sides:
            reply = self.workers[side.name][0].request("time", case=index, block=result.block,
                                                       samples=3, max_s=1.0)
            per_call.append(float(np.median(reply["t"])))
            if reply.get("wall_s"):  # older workers do not say
                parallel.append(float(reply["cpu_s"]) / max(float(reply["wall_s"]), 1e-9))
        # Pairs of a single-threaded case run both turns on one CPU, drawn per pair: the CPUs of
        # a VM differ in speed for tens to hundreds of milliseconds at a time (another tenant on
        # the host's sibling thread), and a side whose processes happen to stay on the slower one
        # would read as slower. A parallel case needs its CPUs, and keeps them all.
        result.pinned = (self.pin and len(ALL_CPUS) > 1 and bool(parallel)
                         and max(parallel) < PARALLEL)
        per_sample = max(max(per_call) * result.block, 1e-9)
        result.turn_samples = int(min(100_000, max(1, round(self.turn_s / per_sample))))
        self.extend(result, policy.budget)
        return result

    def _spread(self, r: CaseResult, policy: TimingPolicy) -> None:
        """Every process but the calibrated ones warms the case up as calibration did, and,
        where preparing it again is cheap, holds more instances of it (ab_worker's doc)."""
        cost = max((sc.setup_s or 0.0) + sc.calibration.first_call_s
                   for sc in r.sides.values())
        count = max(1, min(self.layouts, 1 + int(LAYOUT_SHARE * policy.budget
                                                 / max(cost, 1e-9))))
        asked = []
        for side in self.sides:  # all at once; each is frozen again once it has answered
            for k, worker in enumerate(self.workers[side.name]):
                calls = 0 if k == 0 else r.sides[side.name].calibration.warmup_calls
                if count > 1 or calls:
                    worker.begin("layouts", case=r.index, count=count, calls=calls,
                                 check=self.check)
                    asked.append((side.name, worker))
        r.layouts = {side.name: 1 for side in self.sides}
        got: dict[str, list[int]] = {}
        failure = None
        for name, worker in asked:
            try:
                got.setdefault(name, []).append(int(worker.end()["layouts"]))
            except WorkerError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        r.layouts.update({name: min(counts) for name, counts in got.items()})

    def extend(self, r: CaseResult, allowance: float) -> None:
        """Measure pairs of a calibrated case until it is decided or its timed turns reach
        `allowance` seconds in all (a second call goes on where the first stopped)."""
        try:
            self._pairs(r, r.planned.policy, allowance)
        except WorkerError as exc:
            for sc in r.sides.values():
                sc.status, sc.error = "failed", f"during the turns: {exc}"
        r.finished_at = now()

    def _pairs(self, r: CaseResult, policy: TimingPolicy, allowance: float) -> None:
        from results.paired import MIN_GROUP, decided, min_pairs

        self.watch.new_case(r.watch_offsets)
        r.watch_offsets = self.watch.offsets
        base, head = self.sides[0].name, self.sides[1].name
        nb, nh = len(self.workers[base]), len(self.workers[head])
        combos: list[tuple[int, int]] = []
        # every pairing of processes weighed before a verdict (results.paired.MIN_GROUP)
        least = max(6, policy.min_samples, min_pairs(self.fdr, len(self.plan)),
                    MIN_GROUP * nb * nh)
        max_pairs = min(MAX_PAIRS, max(least, policy.max_samples))
        start = time.perf_counter() - r.elapsed_s
        redo = 0
        next_check = max(least, len(r.log_ratios))
        r.stop_reason, r.decided = STOP_MAX, False
        while len(r.log_ratios) < max_pairs:
            if not combos:  # every pairing of the sides' processes, in random order
                combos = [(i, j) for i in range(nb) for j in range(nh)]
                self.rng.shuffle(combos)
            combo = combos[-1]
            use = {base: combo[0], head: combo[1]}
            order = [base, head] if self.rng.random() < 0.5 else [head, base]
            cpus = frozenset({self.rng.choice(sorted(ALL_CPUS))}) if r.pinned else ALL_CPUS
            for name in order:
                self.workers[name][use[name]].pin(cpus)
            readings = [self.watch.read()]
            turns: dict[str, list[float]] = {}
            canaries = []
            for name in order:
                t, wall, canary = self._turn(self.workers[name][use[name]], r.index, r.block,
                                             r.turn_samples, CANARY_LOOPS)
                r.sides[name].timed_s += wall
                turns[name] = t
                canaries.append(canary)
                readings.append(self.watch.read())
            verdict: Verdict = self.watch.judge(readings, canaries, order[0] == head)
            if verdict.disturbed:
                r.pairs_disturbed += 1
                for reason in verdict.reasons:
                    word = {"CPU": "pressure"}.get(reason.split()[0], reason.split()[0])
                    r.reasons[word] = r.reasons.get(word, 0) + 1
            if verdict.disturbed and redo < MAX_REDO:
                redo += 1  # measure this pair again
            else:
                if verdict.disturbed:
                    r.disturbed_kept += 1
                redo = 0
                combos.pop()
                r.groups.append(combo[0] * nh + combo[1])
                for name in (base, head):
                    r.sides[name].samples.extend(turns[name])
                    r.sides[name].turn_medians.append(float(np.median(turns[name])))
                r.log_ratios.append(math.log(max(r.sides[head].turn_medians[-1], 1e-300))
                                    - math.log(max(r.sides[base].turn_medians[-1], 1e-300)))
            n = len(r.log_ratios)
            r.elapsed_s = time.perf_counter() - start
            if n >= next_check and self.decide:
                if (r.elapsed_s >= min(policy.min_time, policy.budget)
                        and decided(r.log_ratios, self.threshold, self.fdr, len(self.plan),
                                    policy.target_ci, r.groups)):
                    r.stop_reason, r.decided = STOP_DECIDED, True
                    return
                next_check = n + max(1, n // 10)
            if n >= least and r.spent_s >= allowance:
                r.stop_reason = STOP_BUDGET
                return

    def judge(self, r: CaseResult) -> None:
        """A side whose timed turns are not a valid result (`Prepared.after_timing`, e.g. a
        max-QPS rate whose p99 broke its bound in them) fails, as in `bench run`."""
        if r.failed_on:
            return
        for side in self.sides:
            for worker in self.workers[side.name]:
                try:
                    why = worker.request("judge", case=r.index).get("invalid")
                except WorkerError as exc:
                    why = f"judging its timed turns: {exc}"
                if why:
                    sc = r.sides[side.name]
                    sc.status, sc.error = "failed", why
                    break

    # -- records ---------------------------------------------------------------------------------

    def side_measurement(self, r: CaseResult, side: str, est: Any) -> dict[str, Any]:
        """The measurement this side's run stores: the shape `bench run` writes."""
        planned, sc = r.planned, r.sides[side]
        case = planned.case
        m = Measurement(case.key, case.workload, case.backend, case.param_dict,
                        started_at=r.started_at, work=sc.work or {}, info=sc.info)
        if sc.status != "ok" or not sc.samples:
            other = [n for n in r.failed_on if n != side]
            error = sc.error or (f"not compared: failed on the {other[0]} side"
                                 if other else "no pairs measured")
            return m.fail(error, r.finished_at).to_dict()
        summary, metrics = figures(sc.samples, None, Work(**(sc.work or {})),
                                   _WorkerMetrics(self.workers[side][0], r.index),
                                   case.param_dict, sc.info)
        if est is not None:
            metrics.update(ab_ratio=est.ratio, ab_ci_low=est.ci_low, ab_ci_high=est.ci_high,
                           ab_floor=est.floor)
        cal = sc.calibration
        m.summary, m.metrics = summary, metrics
        m.timing = TimingRecord(
            stop_reason=r.stop_reason, block=r.block, block_rule=r.block_rule,
            single_call_s=cal.single_call_s if cal else None,
            back_to_back_call_s=cal.back_to_back_call_s if cal else None,
            setup_s=sc.setup_s, first_call_s=cal.first_call_s if cal else None,
            compile_s=max(0.0, cal.first_call_s - summary.median) if cal else None,
            warmup_s=cal.warmup_s if cal else None,
            warmup_calls=cal.warmup_calls if cal else None,
            overhead_s=sc.overhead_s, policy=planned.policy.to_dict(),
            extra={"ab": {"id": self.ab_id, "side": side, "pairs": len(r.log_ratios),
                          "disturbed": r.pairs_disturbed, "disturbed_kept": r.disturbed_kept,
                          "disturbed_by": r.reasons, "turn_samples": r.turn_samples,
                          "turn_medians_s": sc.turn_medians, "timed_s": sc.timed_s,
                          "pinned": r.pinned, "layouts": r.layouts.get(side, 1),
                          "seed": self.seed, "workers": len(self.workers[side]),
                          "pair_workers": r.groups,
                          "invocation_sd": est.invocation_sd if est is not None else None}})
        m.samples, m.finished_at = sc.samples, r.finished_at
        return m.to_dict()


class _WorkerMetrics:
    """The workload's own metrics for `figures`, asked of the side's worker that holds the
    workload; the figures stand without them where it cannot answer."""

    def __init__(self, worker: Any, index: int) -> None:
        self.worker, self.index = worker, index

    def extra_metrics(self, params: Mapping[str, Any], median_s: float,
                      info: Mapping[str, Any]) -> dict[str, float]:
        try:
            return dict(self.worker.request("metrics", case=self.index,
                                            median_s=median_s)["metrics"])
        except (WorkerError, WorkerDied):
            return {}


@dataclass
class ABOutcome:
    ab_id: str
    status: str
    exit_code: int
    results: list[CaseResult]
    run_ids: dict[str, str]
    run_files: dict[str, Path]
    error: str | None = None
    seed: int = 0
    store: Any = None


def run_ab(plan: Sequence[PlannedCase], sides: Sequence[Side], *, run_dir: Path,
           open_store: Callable[[], Any] | None, tags: dict[str, str], argv: Sequence[str],
           suite: str | None = None, plugins: Sequence[str] = (), check: bool = True,
           threshold: float = 0.05, fdr: float = 0.05, timeout: float = 60.0,
           reporter: Reporter | None = None,
           seed: int | None = None, workers: int = WORKERS,
           turn_s: float = TURN_S, decide: bool = True, pin: bool = True,
           layouts: int = LAYOUTS) -> ABOutcome:
    """Run the experiment and store both sides as runs; every finished case is kept.

    `decide`: stop each case once more pairs would not change its verdict; without it, each
    case runs to its budget (an A/A run that measures the noise floor at that budget).

    `open_store` is called once both workers have prepared every case, so that a side that
    cannot start leaves nothing behind."""
    from harness.runner import run_header
    from results.paired import estimate
    from results.runfile import RunFileWriter, read_run_file

    reporter = reporter or Reporter()
    exp = Experiment(plan, sides, plugins=plugins, check=check, threshold=threshold,
                     timeout=timeout, seed=seed, reporter=reporter, workers=workers,
                     turn_s=turn_s, fdr=fdr, decide=decide, pin=pin, layouts=layouts)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    for sig in previous:
        signal.signal(sig, on_signal)
    writers: dict[str, Any] = {}
    results: list[CaseResult] = []
    pending: list[CaseResult] = []  # undecided cases, for a second pass
    store = None
    status, code, error = "complete", EXIT_OK, None
    try:
        try:
            exp.start()
        except WorkerDied as exc:
            raise UserError(f"{exc}; run it by hand to see why: {exc.side} side") from None
        store = open_store() if open_store is not None else None
        for side in sides:
            loaded = exp.loaded[side.name]
            hello = exp.workers[side.name][0].info
            run_id = str(uuid.uuid4())
            side_tags = {**tags, "ab": exp.ab_id, "ab_side": side.name}
            env = loaded.get("env") or {}
            run = run_header(run_id, env, argv, suite, side_tags, git=loaded.get("git"),
                             pid=hello.get("pid"),
                             harness_version=str(hello.get("version", "unknown")),
                             store=store.name if store is not None else None)
            run.extra["ab"] = {"id": exp.ab_id, "side": side.name,
                               "python": hello.get("executable"), "env": dict(side.env),
                               "seed": exp.seed}
            writers[side.name] = RunFileWriter(run_dir, run)
        reporter.line(f"bench ab {exp.ab_id}: {len(plan)} case(s), base "
                      f"{writers['base'].run_id[:8]} vs head {writers['head'].run_id[:8]}")
        def finish(r: CaseResult) -> None:
            nonlocal status, code
            exp.judge(r)
            est = r.estimate = (estimate(r.log_ratios, threshold, groups=r.groups)
                                if r.compared else None)
            for side in sides:
                writers[side.name].append(exp.side_measurement(r, side.name, est))
            reporter.case_finished(r.index, len(plan), r, est)
            if r.failed_on:
                status, code = "failed", EXIT_CASE_FAILED

        for i in range(len(plan)):
            r = exp.measure(i)
            results.append(r)
            if exp.decide and r.compared and not r.decided and not r.failed_on:
                pending.append(r)
                reporter.line(f"[{i + 1}/{len(plan)}] {r.key}  undecided after "
                              f"{len(r.log_ratios)} pairs: more pairs once every case has had "
                              "its turn")
            else:
                finish(r)
        # The budget is the plan's: what decided cases left goes to those still undecided, up to
        # EXTEND times a case's own budget each.
        left = sum(r.planned.policy.budget - r.spent_s for r in results)
        while pending:
            r = pending[0]
            share = min(left / len(pending), EXTEND * r.planned.policy.budget)
            if share > 0:
                before = r.spent_s
                exp.extend(r, before + share)
                left -= r.spent_s - before
            pending.pop(0)
            finish(r)
    except WorkerDied as exc:
        status, code, error = "partial", EXIT_WORKER_DIED, str(exc)
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        status, code = "partial", 128 + int(signum)
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            for r in pending:  # what an interrupted second pass had measured is kept
                with contextlib.suppress(Exception):
                    finish(r)
            exp.close()
            paths: dict[str, Path] = {}
            for name, writer in writers.items():
                paths[name] = writer.finish(status, now())
                if store is not None:
                    store.ingest(read_run_file(paths[name]))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return ABOutcome(exp.ab_id, status, code, results,
                     {n: w.run_id for n, w in writers.items()}, paths, error, exp.seed, store)
