"""Composes a run: cases in, run file and store out. The only core module that uses `results`.

Signals: SIGINT and SIGTERM (what Slurm sends at a time limit) end the case in flight; every
finished measurement is kept, the run is marked `partial`, and the exit code is 128 + signal.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import signal
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from cluster.launch import placement
from harness import __version__
from harness.backends.base import Backend, parse_backend
from harness.config import PlannedCase
from harness.env import env_hash, fingerprint, git_revision
from harness.errors import CheckFailed, UserError
from harness.stats import summarize
from harness.timing import Engine
from harness.workload import registry as workloads
from harness.workmodel import derive_metrics
from results.runfile import RunFileWriter, read_run_file
from results.store import Store

EXIT_OK, EXIT_CASE_FAILED = 0, 1


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


class Reporter(Protocol):
    def run_started(self, run_id: str, total: int) -> None: ...
    def case_started(self, index: int, planned: PlannedCase) -> None: ...
    def case_progress(self, samples: int, ci_rel: float) -> None: ...
    def case_finished(self, index: int, measurement: dict[str, Any]) -> None: ...
    def run_finished(self, status: str) -> None: ...


class Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class RunResult:
    run_id: str
    status: str
    exit_code: int
    path: Path
    measurements: list[dict[str, Any]] = field(default_factory=list)
    ingested: str = ""


def setup_backends(plan: Sequence[PlannedCase]) -> dict[str, Backend]:
    """Import and select every backend the plan needs, before anything is written."""
    backends: dict[str, Backend] = {}
    for p in plan:
        if p.case.backend not in backends:
            backend = parse_backend(p.case.backend)
            backend.setup()
            backends[p.case.backend] = backend
    return backends


def measure_case(planned: PlannedCase, backend: Backend,
                 progress: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Measure one case; a failing workload yields a `failed` measurement, never a number."""
    case = planned.case
    workload = workloads.get(case.workload)()
    params = case.param_dict
    record: dict[str, Any] = {
        "case_key": case.key, "workload": case.workload, "backend": case.backend,
        "params": params, "started_at": now(), "status": "ok", "error": None,
        "work": asdict(workload.work(params)),
    }
    prepared = None
    try:
        t0 = time.perf_counter()
        prepared = workload.prepare(backend, params)
        setup_s = time.perf_counter() - t0
        if prepared.check is not None:
            prepared.check()
        timing = Engine(backend, planned.policy, progress).measure(prepared.op)
    except CheckFailed as exc:
        record.update(status="failed", error=f"check failed: {exc}", finished_at=now())
        return record
    except (UserError, Interrupted, KeyboardInterrupt):
        raise
    except Exception as exc:  # a workload's own bug or a device error: this case fails
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        record.update(status="failed", finished_at=now(),
                      error=f"{type(exc).__name__}: {exc} ({Path(tb.filename).name}:{tb.lineno})")
        return record
    finally:
        if prepared is not None and prepared.close is not None:
            prepared.close()
    summary = summarize(timing.samples)
    metrics = derive_metrics(summary, workload.work(params))
    if timing.device_samples:
        metrics["device_latency_s"] = summarize(timing.device_samples).median
    record.update(
        summary=summary.to_dict(),
        metrics=metrics,
        timing={
            "stop_reason": timing.stop_reason, "block": timing.block,
            "setup_s": setup_s, "first_call_s": timing.first_call_s,
            "compile_s": timing.compile_s, "warmup_s": timing.warmup_s,
            "warmup_calls": timing.warmup_calls, "overhead_s": timing.overhead_s,
            "policy": planned.policy.to_dict(),
        },
        info=prepared.info,
        samples=timing.samples,
        device_samples=timing.device_samples,
        finished_at=now(),
    )
    return record


def execute(plan: Sequence[PlannedCase], store: Store, run_dir: Path, reporter: Reporter,
            tags: dict[str, str] | None = None, suite: str | None = None,
            argv: Sequence[str] | None = None,
            backends: dict[str, Backend] | None = None) -> RunResult:
    backends = backends or setup_backends(plan)
    env = fingerprint([b.describe() for b in backends.values()])
    where = placement()
    header = {
        "run_id": str(uuid.uuid4()),
        "started_at": now(),
        "command": shlex.join(argv if argv is not None else sys.argv),
        "suite": suite,
        "tags": tags or {},
        "git": git_revision(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "harness_version": __version__,
        "launcher": where.launcher,
        "world_size": where.world_size,
        "env_hash": env_hash(env),
        "env": env,
    }
    writer = RunFileWriter(run_dir, header)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    for sig in previous:
        signal.signal(sig, on_signal)
    done: list[dict[str, Any]] = []
    status, code = "complete", EXIT_OK
    try:
        reporter.run_started(header["run_id"], len(plan))
        for i, planned in enumerate(plan):
            reporter.case_started(i, planned)
            m = measure_case(planned, backends[planned.case.backend], reporter.case_progress)
            done.append(m)  # first: a signal held during the write lands right after it
            writer.append(m)
            reporter.case_finished(i, m)
            if m["status"] == "failed":
                status, code = "failed", EXIT_CASE_FAILED
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        status, code = "partial", 128 + int(signum)
    except BaseException:
        status = "failed"
        raise
    finally:
        for sig in previous:  # a second signal must not interrupt saving what we have
            signal.signal(sig, signal.SIG_IGN)
        try:
            path = writer.finish(status, now())
            ingested = store.ingest(read_run_file(path))
            reporter.run_finished(status)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return RunResult(header["run_id"], status, code, path, done, ingested)
