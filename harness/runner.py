"""Composes a run: cases in, run file and store out. The only core module that uses `results`.

Signals: SIGINT and SIGTERM (what Slurm sends at a time limit) end the case in flight; every
finished measurement is kept, the run is marked `partial`, and the exit code is 128 + signal.

Many ranks: every rank runs the same plan in lockstep; only rank 0 reports progress and writes the
run file, the others send their samples and check results to it (harness.distributed). A rank that
dies or hangs ends the run `partial` with a message naming it and exit code 3, never a hang.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import hashlib
import json
import os
import shlex
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from cluster import fabric
from cluster.launch import cluster_record, placement
from harness import __version__, exiting
from harness.backends.base import Backend, parse_backend
from harness.config import PlannedCase
from harness.distributed import Communicator, RankFailure, Solo
from harness.env import env_hash, fingerprint, git_revision, mask_secrets
from harness.errors import CheckFailed, UserError
from harness.exiting import Interrupted, exit_now
from harness.measurement import Measurement, TimingRecord, figures
from harness.profiling import ProfileRequest, gpu_counters
from harness.run import Run
from harness.stats import summarize
from harness.text import printable
from harness.timing import DistributedEngine, Engine, TimingPolicy
from harness.workload import FIRST_CALL, WARNINGS, Prepared
from harness.workload import registry as workloads
from results.reference import Reference
from results.runfile import PART, RunFileWriter, read_run_file
from results.store import Store

EXIT_OK, EXIT_CASE_FAILED, EXIT_RANK_FAILED = 0, 1, 3
EXIT_UNWRITABLE = 2  # the run file or the store could not be written (e.g. a full disk)
FAULT_ENV = "BENCH_FAULT"  # test hook: kill:RANK:CASE or hang:RANK:CASE (a real signal)
PAUSE_S = 20.0  # how long BENCH_FAULT=pause:RANK:CASE holds that rank (a death ends it sooner)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


class Reporter(Protocol):
    def run_started(self, run_id: str, total: int) -> None: ...
    def case_started(self, index: int, planned: PlannedCase) -> None: ...
    def case_progress(self, samples: int, ci_rel: float) -> None: ...
    def case_finished(self, index: int, measurement: Measurement) -> None: ...
    def run_finished(self, status: str) -> None: ...


@dataclass
class RunResult:
    run_id: str
    status: str
    exit_code: int
    path: Path
    measurements: list[Measurement] = field(default_factory=list)
    ingested: str = ""
    error: str | None = None  # why the run ended early, or what could not be written


class _Silent:
    """The reporter of ranks other than 0: they print nothing."""

    def run_started(self, run_id: str, total: int) -> None: ...
    def case_started(self, index: int, planned: PlannedCase) -> None: ...
    def case_progress(self, samples: int, ci_rel: float) -> None: ...
    def case_finished(self, index: int, measurement: Measurement) -> None: ...
    def run_finished(self, status: str) -> None: ...


def _agree(comm: Communicator, error: str | None) -> str | None:
    """Every rank learns whether any rank failed (rank 0 names them), so none waits alone."""
    if comm.size == 1:
        return error
    errors = comm.gather(error)
    verdict = None
    if errors is not None:
        bad = [(r, e) for r, e in enumerate(errors) if e]
        if bad:
            verdict = "; ".join(f"rank {r}: {e}" for r, e in bad)
    return comm.bcast(verdict)


def inject_fault(rank: int, index: int) -> None:
    """BENCH_FAULT=kill:R:C (or hang:R:C): rank R sends itself SIGKILL (SIGSTOP) at case C,
    before it starts it. Several faults are separated by commas; pause:R:C makes rank R wait
    PAUSE_S there (so that another rank's death at case C is noticed between the cases)."""
    for fault in os.environ.get(FAULT_ENV, "").split(","):
        spec = fault.split(":")
        if len(spec) != 3 or spec[1:] != [str(rank), str(index)]:
            continue
        if spec[0] in ("kill", "hang"):
            os.kill(os.getpid(), signal.SIGKILL if spec[0] == "kill" else signal.SIGSTOP)
        elif spec[0] == "pause":
            time.sleep(PAUSE_S)


def inject_slow_store(rank: int) -> None:
    """BENCH_FAULT=slowstore:R:S: rank R takes S more seconds to keep the run (as a store on a
    loaded machine or a network file system may)."""
    for fault in os.environ.get(FAULT_ENV, "").split(","):
        spec = fault.split(":")
        if len(spec) == 3 and spec[:2] == ["slowstore", str(rank)]:
            time.sleep(float(spec[2]))


def inject_slow_start(rank: int) -> None:
    """BENCH_FAULT=slowstart:R:S: rank R takes S more seconds to start (as imports do on a
    loaded machine), before it loads its backends."""
    for fault in os.environ.get(FAULT_ENV, "").split(","):
        spec = fault.split(":")
        if len(spec) == 3 and spec[:2] == ["slowstart", str(rank)]:
            time.sleep(float(spec[2]))


def run_header(run_id: str, env: dict[str, Any], argv: Sequence[str] | None,
               suite: str | None, tags: dict[str, str] | None, *, launcher: str = "local",
               world_size: int = 1, git: dict[str, Any] | bool | None = True,
               pid: int | None = None, harness_version: str = __version__,
               store: str | None = None) -> Run:
    """A run about to start, its header filled in: what runs, where, from which code (`git`
    True: this folder's), and the store it is made for (`Store.name`; None: none, any store
    may pick it up)."""
    return Run(
        run_id=run_id,
        started_at=now(),
        command=mask_secrets(shlex.join(argv if argv is not None else sys.argv)),
        suite=suite,
        tags=tags or {},
        git=git_revision() if git is True else git or None,
        slurm_job_id=os.environ.get("SLURM_JOB_ID"),
        host=socket.gethostname(),
        pid=pid if pid is not None else os.getpid(),
        harness_version=harness_version,
        launcher=launcher,
        world_size=world_size,
        env_hash=env_hash(env),
        env=env,
        store=store,
    )


def setup_backends(plan: Sequence[PlannedCase]) -> dict[str, Backend]:
    """Import and select every backend the plan needs, before anything is written."""
    backends: dict[str, Backend] = {}
    for p in plan:
        if p.case.backend not in backends:
            backend = parse_backend(p.case.backend)
            backend.setup()
            backends[p.case.backend] = backend
    for p in plan:  # what the device itself cannot do: one line now, not a failed case later
        workloads.get(p.case.workload)().validate_device(p.case.param_dict,
                                                         backends[p.case.backend])
    return backends


def measure_case(planned: PlannedCase, backend: Backend,
                 progress: Callable[[int, float], None] | None = None,
                 comm: Communicator | None = None, check: bool = True,
                 profile: ProfileRequest | None = None, seq: int = 0) -> Measurement:
    """Measure one case; a failing workload yields a `failed` measurement, never a number
    (or, when the timed calls are not a valid result, one with its figures kept to show why).

    With `profile`, a few profiled iterations follow the timed ones (harness.profiling).

    With many ranks (`comm`), every rank calls this for the same case; the ranks agree on
    failures before timing, and rank 0's record holds the max-across-ranks figures."""
    comm = comm or Solo()
    case = planned.case
    workload = workloads.get(case.workload)()
    workload.policy = planned.policy
    params = case.param_dict
    record = Measurement(case.key, case.workload, case.backend, params, started_at=now(),
                         work=asdict(workload.work(params)))
    load_before = _loadavg()
    prepared = None
    invalid = None  # why what was timed is not a valid result (Prepared.after_timing)
    comm.phase = f"case {case.key}"
    try:
        error = None
        try:
            t0 = time.perf_counter()
            prepared = workload.prepare(backend, params)
            setup_s = time.perf_counter() - t0
            if check and prepared.check is not None:
                prepared.check()
        except CheckFailed as exc:
            error = f"check failed: {exc}"
        except (UserError, Interrupted, KeyboardInterrupt, RankFailure):
            raise
        except Exception as exc:  # a workload's own bug or a device error: this case fails
            exiting.reraise_interruption(exc)
            error = _describe(exc)
        error = _agree(comm, error)
        if error is not None:
            return record.fail(error, now())
        assert prepared is not None
        engine = engine_for(backend, planned.policy, comm, prepared, progress)
        counters = gpu_counters(backend) if profile is not None else None
        try:
            if counters is not None:
                with counters:
                    timing = engine.measure(prepared.op)
            else:
                timing = engine.measure(prepared.op)
            if prepared.after_timing is not None:
                try:
                    prepared.after_timing(len(timing.samples) * timing.block)
                except CheckFailed as exc:
                    invalid = f"invalid result: {exc}"
        except (UserError, Interrupted, KeyboardInterrupt, RankFailure):
            raise
        except Exception as exc:
            exiting.reraise_interruption(exc)
            if comm.size > 1:  # the other ranks are inside a collective: end the job
                raise RankFailure(f"rank {comm.rank}: {_describe(exc)}", [comm.rank]) from exc
            return record.fail(_describe(exc), now())
        profiled = None
        if profile is not None:
            profiled = _profile(planned, backend, prepared, workload, comm, profile, seq)
    finally:
        if prepared is not None and prepared.close is not None:
            prepared.close()
    work = workload.work(params)
    units = work.units_per_call  # e.g. a ping-pong call is two one-way trips
    samples, device_samples = per_unit(timing.samples, units), \
        per_unit(timing.device_samples, units)
    assert samples is not None
    summary, metrics = figures(samples, device_samples, work, workload, params, prepared.info)
    if counters is not None:
        metrics.update(counters.metrics(summary.median))
    across = {}
    if "rank_min_samples" in timing.extra:  # many ranks: the figure is the max across ranks
        across = {"ranks": timing.extra["ranks"],
                  "rank_min_median_s": summarize(timing.extra["rank_min_samples"]).median / units,
                  "rank_mean_median_s":
                      summarize(timing.extra["rank_mean_samples"]).median / units,
                  "rank_medians_s": per_unit(timing.extra["rank_medians"], units)}
        metrics["world_size"] = float(comm.size)
    record.summary, record.metrics = summary, metrics
    record.timing = TimingRecord(
        stop_reason=timing.stop_reason, block=timing.block, block_rule=timing.block_rule,
        single_call_s=timing.single_call_s, back_to_back_call_s=timing.back_to_back_call_s,
        setup_s=setup_s, first_call_s=timing.first_call_s,
        compile_s=_compile_s(timing, prepared.info, summary.median * units),
        warmup_s=timing.warmup_s, warmup_calls=timing.warmup_calls,
        overhead_s=timing.overhead_s, policy=planned.policy.to_dict(),
        # 1-minute load average around the case: a busy machine explains odd figures
        load_before=load_before, load_after=_loadavg(),
        extra={**across,
               **({"units_per_call": units} if units != 1 else {}),
               **({"profile": profiled, "gpu_counters": counters.record()}
                  if profile is not None and counters is not None else {})})
    record.info, record.samples, record.device_samples = (prepared.info, samples,
                                                          device_samples)
    record.finished_at = now()
    if invalid is not None:
        record.fail(invalid)
    if comm.rank == 0:
        for line in prepared.info.get(WARNINGS) or ():
            sys.stderr.write(printable(f"bench: warning: {case.key}: {line}") + "\n")
    return record


def per_unit(samples: list[float] | None, units: float) -> list[float] | None:
    """Seconds per call as seconds per unit of the work (Work.units_per_call)."""
    if samples is None or units == 1:
        return samples
    return [x / units for x in samples]


def engine_for(backend: Backend, policy: TimingPolicy, comm: Communicator, prepared: Prepared,
               progress: Callable[[int, float], None] | None = None) -> Engine:
    """The engine that times `prepared.op`: alone, or with the ranks (decisions on rank 0).

    The steady-state check (harness.timing) is made for an op every rank runs on its own, as
    it is alone: gemm on 2 ranks is timed as on one. An op that brings its own barrier (the
    collectives, and a data-parallel step around its allreduce) keeps OSU's rule: a barrier,
    then as few back-to-back calls as the overhead allows; blocks of min_block_time would
    pipeline collective calls that the barrier keeps apart."""
    if comm.size > 1 or prepared.barrier is not None:
        return DistributedEngine(backend, policy, comm, prepared.barrier, progress,
                                 steady_state=prepared.barrier is None)
    return Engine(backend, policy, progress)


def _compile_s(timing: Any, info: dict[str, Any], steady: float) -> float:
    """First-call time beyond a steady call. A check that made the first call (info
    FIRST_CALL) took the compilation there, and the engine's first call was already warm."""
    early = info.get(FIRST_CALL)
    if early is None:
        return float(timing.compile_s)
    return max(float(timing.compile_s), float(early) - steady)


def _profile(planned: PlannedCase, backend: Backend, prepared: Any, workload: Any,
             comm: Communicator, request: ProfileRequest, seq: int) -> dict[str, Any] | None:
    """Profiled iterations after the timed ones; the measurement's `profile` entry (rank 0)."""
    from harness import profiling
    from harness.timing import device_sync

    sync = device_sync(backend)
    case = planned.case
    meta: dict[str, Any] = {"case_key": case.key, "workload": case.workload,
                            "backend": case.backend, "ranks": comm.size}
    comm.phase = f"case {case.key}, profiled iterations"
    if comm.size > 1 or prepared.barrier is not None:
        timeline = profiling.rank_timeline(prepared.op, prepared.barrier or comm.barrier, sync,
                                           request.iters)
        timelines = comm.gather(timeline)
        if comm.rank != 0 or timelines is None:
            return None
        meta.update(kind="ranks", iterations=request.iters,
                    note="per-rank timeline: barrier wait, then the operation (wall clock, "
                         "aligned on the first barrier exit)")
        dest = request.trace_dir / profiling.trace_name(seq, case.workload, "ranks")
        entry = profiling.write_trace(profiling.rank_events(timelines, case.workload), dest,
                                      meta, request.max_bytes)
        if entry.get("error"):
            sys.stderr.write(printable(f"bench: warning: {case.key}: {entry['error']}") + "\n")
        return entry

    def run_iteration(op: Any) -> None:
        r = op()
        if sync is not None:
            sync(r)

    meta["_op"] = prepared.op
    try:
        entry = profiling.profile_case(
            backend, run_iteration, lambda: workload.prepare(backend, case.param_dict),
            request, seq, meta)
    except (Interrupted, KeyboardInterrupt):
        raise
    except UserError as exc:
        entry = {"error": f"profiling failed: {exc}"}
    except Exception as exc:  # the measurement stands; the profile says what went wrong
        exiting.reraise_interruption(exc)
        entry = {"error": f"profiling failed: {_describe(exc)}"}
    if entry.get("error"):
        sys.stderr.write(printable(f"bench: warning: {case.key}: {entry['error']}") + "\n")
    return entry


def cpu_binding() -> str:
    """The CPUs this process may run on, as a list like "0-3,8" ("" where it cannot tell)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return ""
    spans: list[list[int]] = []
    for c in cpus:
        if spans and c == spans[-1][1] + 1:
            spans[-1][1] = c
        else:
            spans.append([c, c])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} ({Path(tb.filename).name}:{tb.lineno})"


def execute(plan: Sequence[PlannedCase], store: Store | None, run_dir: Path, reporter: Reporter,
            tags: dict[str, str] | None = None, suite: str | None = None,
            argv: Sequence[str] | None = None,
            backends: dict[str, Backend] | None = None,
            comm: Communicator | None = None, check: bool = True,
            run_id: str | None = None, profile: ProfileRequest | None = None,
            reference: Reference | None = None) -> RunResult:
    """Run the plan. With `comm` of many ranks, every rank calls this with the same plan; rank 0
    alone writes the run file and the store (`store` may be None on the others). With a
    `reference`, each measurement it has an expectation for also gets `pct_expected` (and its
    info the expectation)."""
    comm = comm or Solo()
    root = comm.rank == 0
    backends = backends or setup_backends(plan)
    where = placement()
    run_id = run_id or str(uuid.uuid4())
    binding = [cpu_binding()]  # each rank's CPUs: the launcher's binding changes figures
    if comm.size > 1:
        comm.loading("the start of the run")
        digest = _plan_digest(plan)
        gathered = comm.gather([digest, binding[0]])
        digests = [g[0] for g in gathered] if gathered is not None else None
        binding = [g[1] for g in gathered] if gathered is not None else binding
        problem = None
        if root and digests is not None and len(set(digests)) > 1:
            odd = [r for r, d in enumerate(digests) if d != digest]
            problem = (f"rank(s) {', '.join(map(str, odd))} planned other cases than rank 0; "
                       "every rank must be given the same command")
        agreed = comm.bcast({"run_id": run_id, "problem": problem})
        if agreed["problem"]:
            raise UserError(agreed["problem"])
        run_id = agreed["run_id"]
    for backend in backends.values():
        connect = getattr(backend, "collectives", None)  # collective backends' communicators:
        if callable(connect):  # made on every rank in the same order, before the environment
            comm.loading(f"setting up {backend.name}")  # record describes them
            connect()
    if not root:
        reporter = _Silent()
    if profile is not None:  # traces beside the run file: <run-dir>/<run_id>/traces/
        from dataclasses import replace

        profile = replace(profile, trace_dir=run_dir / run_id / "traces")
    writer = None
    if root:
        env = fingerprint([b.describe() for b in backends.values()])
        env["cluster"] = {**cluster_record(where, comm.size), "cpu_binding": binding}
        env["fabric"] = fabric.detect()
        run = run_header(run_id, env, argv, suite, tags, launcher=where.launcher,
                         world_size=comm.size, store=store.name if store else None)
        writer = _open_run_file(run_dir, run)
    previous = {sig: signal.getsignal(sig) for sig in exiting.SIGNALS}
    lock = threading.Lock()
    ended: list[Path] = []
    write_error: list[str] = []  # why the run file or the store could not be written (once)

    def finish(status: str) -> tuple[Path, str]:
        """Close the run file and ingest it, once (the watchdog thread may get here first).
        A run file that could not be written to the end stays a `.part` file holding the
        finished cases; that is what the store gets."""
        with lock:
            if writer is None:
                return Path(), ""
            if ended:
                return ended[0], ""
            if not write_error:
                try:
                    ended.append(writer.finish(status, now()))
                except OSError as exc:
                    write_error.append(_run_file_error(writer.part, exc))
            if write_error:
                ended.append(writer.abandon())
            if store is None:
                return ended[0], ""
            try:
                return ended[0], store.ingest(read_run_file(ended[0]))
            except SQLAlchemyError as exc:
                write_error.append(_store_error(store, ended[0], exc))
                return ended[0], ""

    def on_fatal(message: str) -> None:
        # Called from a background thread while the main thread is stuck in a collective.
        if root and len(done) == len(plan) and not pending:
            # every case is kept: a rank that left now (a signal as the run ended) lost nothing
            finish(status)
            exiting.run_stored(code)
            exit_now(code)
        try:
            finish("partial")
            exiting.run_stored(EXIT_RANK_FAILED)
        finally:
            sys.stderr.write(f"bench: error: {message}; finished cases kept (run {run_id}, "
                             "partial)\n" if root else f"bench: error: {message}\n")
            exit_now(EXIT_RANK_FAILED)

    if comm.size > 1:
        comm.on_fatal = on_fatal  # type: ignore[attr-defined]
        # Every rank starts the cases once rank 0's run file is open: a rank lost from here on
        # leaves a partial run (killed or hung alike), before it none.
        comm.loading("the start of the run")
        comm.barrier()

    defer = getattr(comm, "defer", None)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if defer is not None and defer(signum):
            return  # the ranks stop together (harness.distributed): none left in a collective
        for sig in previous:  # a second signal, however soon, must not interrupt the saving
            signal.signal(sig, exiting.hold)
        raise Interrupted(signum)

    for sig in previous:
        signal.signal(sig, on_signal)
    done: list[Measurement] = []
    status, code, error = "complete", EXIT_OK, None
    pending: dict[int, list[Measurement]] = {}  # rounds measured so far, per case

    def record(i: int, m: Measurement) -> None:
        nonlocal status, code
        if writer is not None and write_error:
            return  # the run file could not be written: this case cannot be kept
        if reference is not None and m.ok:
            extra, noted = reference.annotate(m.case_key, m.metrics)
            m.metrics, m.info = {**m.metrics, **extra}, {**(m.info or {}), **noted}
        done.append(m)  # first: a signal held during the write lands right after it
        if writer is not None:
            with lock:
                try:
                    writer.append(m)
                except OSError as exc:  # a full disk: the cases before this one are kept
                    done.pop()
                    write_error.append(_run_file_error(writer.part, exc))
                    if comm.size == 1:  # (many ranks go on in step; rank 0 writes no more)
                        raise _RunFileFailed from None
                    return
        reporter.case_finished(i, m)
        if not m.ok:
            status, code = "failed", EXIT_CASE_FAILED

    try:
        reporter.run_started(run_id, len(plan))
        for r in range(max(p.policy.rounds for p in plan)):
            for i, planned in enumerate(plan):
                rounds = planned.policy.rounds
                if r >= rounds or (r > 0 and i not in pending):
                    continue  # done, or failed in an earlier round
                if r == 0:
                    inject_fault(comm.rank, i)
                reporter.case_started(i, planned)
                part = planned if rounds == 1 else PlannedCase(
                    planned.case, planned.policy.replace(budget=planned.policy.budget / rounds))
                m = measure_case(part, backends[planned.case.backend], reporter.case_progress,
                                 comm, check, profile if r == rounds - 1 else None, i)
                # a rank lost from here until the next case starts is named as lost after
                # this case, not during it (the case is over, and kept)
                comm.phase = f"the interval between cases, after case {planned.case.key}"
                pending.setdefault(i, []).append(m)
                if r == rounds - 1 or not m.ok:
                    record(i, merge_rounds(pending.pop(i), planned))
        if comm.size > 1:
            comm.phase = "the end of the run"
            status, code = comm.bcast([status, code] if root else None)
    except RankFailure as exc:
        status, code, error = "partial", EXIT_RANK_FAILED, str(exc)
    except _RunFileFailed:
        status = "partial"
    except BaseException as exc:  # a signal, also one that made library code fail (chained)
        signum = exiting.interrupted_by(exc)
        if signum is None:
            status = "failed"
            raise
        status, code = "partial", 128 + signum
        reporting = getattr(comm, "reporting", None)
        if callable(reporting) and reporting():  # a rank died and that is being said: the
            time.sleep(30)  # signal is its echo (torchrun ends the others); that thread exits
    finally:
        for sig in previous:  # a signal must not interrupt saving what we have
            signal.signal(sig, exiting.hold)
        late = comm.take_deferred() if defer is not None else None  # type: ignore[attr-defined]
        if late is not None:  # it came after the ranks' last broadcast: the run ends as it is
            exiting.hold(late, None)
        try:
            for i in sorted(pending):  # interrupted between rounds: keep the rounds measured
                with contextlib.suppress(_RunFileFailed):
                    record(i, merge_rounds(pending.pop(i), plan[i]))
            inject_slow_store(comm.rank)
            path, ingested = finish(status)
            if write_error and error is None:
                if path.name.endswith(PART):  # the run file has no end: a partial run
                    status = "partial"
                code, error = EXIT_UNWRITABLE, "; ".join(write_error)
            exiting.run_stored(code)  # before "run complete": from here a signal is only noted
            reporter.run_finished(status)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if comm.size > 1 and error is None:
                if root and code >= 128:  # interrupted: a rank may still be inside a collective
                    comm.dismiss(code)  # type: ignore[attr-defined]  # (it ends quietly)
                else:  # interrupted, a rank waits for rank 0 to keep the run (harness.distributed)
                    comm.close(await_root=code >= 128)  # type: ignore[attr-defined]
    return RunResult(run_id, status, code, path, done, ingested, error)


class _RunFileFailed(Exception):
    """The run file could not be written (a single-process run stops at once)."""


def _open_run_file(run_dir: Path, run: Run) -> RunFileWriter:
    """The run's file, its header written; a folder where even that cannot be written is one
    UserError and leaves no file behind."""
    try:
        return RunFileWriter(run_dir, run)
    except OSError as exc:
        (run_dir / f"{run.run_id}{PART}").unlink(missing_ok=True)
        raise UserError(f"cannot write run files in {run_dir}: {exc.strerror}; "
                        f"{_free_space(exc)}choose another --run-dir") from None


def _free_space(exc: OSError) -> str:
    return "free space there or " if exc.errno == errno.ENOSPC else ""


def _run_file_error(path: Path, exc: OSError) -> str:
    return (f"cannot write run file {path}: {exc.strerror}; {_free_space(exc)}give another "
            "--run-dir next time")


def _store_error(store: Store, path: Path, exc: SQLAlchemyError) -> str:
    reason = str(getattr(exc, "orig", exc)).splitlines()[0]
    return (f"store {store.name} cannot be written ({reason}); the run file {path} keeps the "
            f"run: free space and `bench ingest {path}`")


def merge_rounds(records: list[Measurement], planned: PlannedCase) -> Measurement:
    """One measurement from a case's rounds: samples pooled, summary and metrics recomputed,
    each round's median kept (`timing.round_medians_s`) for `bench compare`."""
    if len(records) == 1 and planned.policy.rounds == 1:
        return records[0]
    failed = next((m for m in records if not m.ok), None)
    if failed is not None:
        return failed
    first, last = records[0], records[-1]
    assert all(m.samples is not None and m.timing is not None and m.summary is not None
               for m in records)
    samples = [x for m in records for x in m.samples or ()]
    device = ([x for m in records for x in m.device_samples or ()]
              if all(m.device_samples for m in records) else None)
    workload = workloads.get(first.workload)()
    summary, derived = figures(samples, device, workload.work(first.params), workload,
                               first.params, first.info)
    metrics = {**first.metrics, **derived}
    gpu = {k: v for k, v in last.metrics.items() if k.startswith("gpu_")}  # --profile: NVML
    if gpu:  # sampled in the last round only, which is the profiled one
        metrics.update(gpu)
        metrics["energy_per_iter_j"] = gpu["gpu_power_w"] * summary.median
    timings = [m.timing for m in records if m.timing is not None]
    t0, t1 = timings[0], timings[-1]
    timing = dataclasses.replace(
        t1, policy=planned.policy.to_dict(),
        stop_reason=",".join(dict.fromkeys(str(t.stop_reason) for t in timings)),
        # each round checks whether calls are alike; a borderline case may decide apart
        block_rule=",".join(dict.fromkeys(str(t.block_rule) for t in timings)),
        load_before=t0.load_before, first_call_s=t0.first_call_s, compile_s=t0.compile_s,
        extra={**t1.extra, "rounds": len(records),
               "round_medians_s": [m.summary.median for m in records if m.summary],
               "round_blocks": [t.block for t in timings]})
    return dataclasses.replace(last, started_at=first.started_at, summary=summary,
                               metrics=metrics, timing=timing, samples=samples,
                               device_samples=device)


def _plan_digest(plan: Sequence[PlannedCase]) -> str:
    blob = json.dumps([[p.case.key, p.policy.to_dict()] for p in plan], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
