"""Profiled iterations after a case's timed ones: the backend's profiler, one Chrome trace per case.

`bench run --profile` runs a case's timed iterations exactly as without it; only then does the
runner run `iters` more iterations under the backend's profiler (`Backend.profile`) and keep the
trace, gzip-compressed Chrome trace JSON (Perfetto / chrome://tracing open it), beside the run
file. Each profiled iteration is marked by an `accelbench.iteration` event, so a summary can give
each operator's share of the step (in ONNX Runtime's trace, timed from the wall-clock moment its
profiling started, the marks are taken on the same clock: `WallClockMarks`).

Many ranks: each rank records its own timeline of the profiled iterations (barrier wait, then the
operation), rank 0 gathers them and writes one trace with a process (track) per rank.

NVML (nvidia-ml-py, optional): while a profiled case on an NVIDIA GPU is timed, utilisation,
memory, power and clocks are sampled; energy per iteration = mean power x median iteration time.
Where there is no NVIDIA GPU the record says so (`gpu_counters`), and no metric is invented.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError

ITERATION = "accelbench.iteration"  # the marker of one profiled iteration
MIN_ITERS, MAX_ITERS, DEFAULT_ITERS = 1, 100, 5
DEFAULT_MAX_BYTES = 256 << 20  # uncompressed trace size above which the trace is not kept


@dataclass(frozen=True)
class ProfileRequest:
    """What `bench run --profile` asks of each case."""

    iters: int = DEFAULT_ITERS
    trace_dir: Path = Path("traces")
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if not MIN_ITERS <= self.iters <= MAX_ITERS:
            raise UserError(f"--profile-iters must be between {MIN_ITERS} and {MAX_ITERS} "
                            f"(a profiled iteration can write megabytes), got {self.iters}")


@dataclass
class Trace:
    """What a backend's profiler produced: a Chrome trace file (`path`, JSON or JSON.gz) or the
    events themselves (`events`), set when the profiler stops."""

    kind: str
    note: str = ""
    path: Path | None = None
    events: list[dict[str, Any]] | None = None
    iteration: Callable[[], Any] = field(default=contextlib.nullcontext)


class WallClockMarks:
    """The profiled iterations' spans on the wall clock (time.time_ns), made into
    `accelbench.iteration` events once the profiler says when its trace's time 0 was."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int, int]] = []  # start ns, end ns, native thread id

    @contextlib.contextmanager
    def iteration(self) -> Iterator[None]:
        t = time.time_ns()
        try:
            yield
        finally:
            self.spans.append((t, time.time_ns(), threading.get_native_id()))

    def events(self, origin_ns: int) -> list[dict[str, Any]]:
        """The marks as Chrome trace events of a trace whose ts 0 is `origin_ns`."""
        return [{"name": ITERATION, "cat": "accelbench", "ph": "X", "pid": os.getpid(),
                 "tid": tid, "ts": (a - origin_ns) / 1e3, "dur": (b - a) / 1e3,
                 "args": {"iteration": i}} for i, (a, b, tid) in enumerate(self.spans)]


# --- a Python-level timeline, for backends without a profiler of their own ------------------


class PythonTracer:
    """Calls and returns of Python and C functions (sys.setprofile) as Chrome trace events.

    Host time only, and the tracer's own cost inflates short calls: a stand-in where the
    framework has no profiler (numpy), labelled as such in the trace's kind and note."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._stack: list[tuple[str | None, int]] = []
        self._t0 = time.perf_counter_ns()
        self._tid = threading.get_ident() & 0xFFFFFFF

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        now = time.perf_counter_ns()
        ours = frame.f_code.co_filename in _OWN_FILES  # the harness's frames are not the op's
        if event == "call":
            code = frame.f_code
            self._stack.append((None if ours else f"{code.co_name} ("
                                f"{Path(code.co_filename).name}:{code.co_firstlineno})", now))
        elif event == "c_call":
            self._stack.append((None if ours else _c_name(arg), now))
        elif event in ("return", "c_return", "c_exception") and self._stack:
            name, t = self._stack.pop()
            if name is None:
                return
            self.events.append({"name": name, "cat": "python", "ph": "X", "pid": os.getpid(),
                                "tid": self._tid, "ts": (t - self._t0) / 1e3,
                                "dur": (now - t) / 1e3})

    @contextlib.contextmanager
    def iteration(self) -> Iterator[None]:
        t = time.perf_counter_ns()
        try:
            yield
        finally:
            now = time.perf_counter_ns()
            self.events.append({"name": ITERATION, "cat": "accelbench", "ph": "X",
                                "pid": os.getpid(), "tid": self._tid,
                                "ts": (t - self._t0) / 1e3, "dur": (now - t) / 1e3})

    @contextlib.contextmanager
    def run(self) -> Iterator[None]:
        sys.setprofile(self._hook)
        try:
            yield
        finally:
            sys.setprofile(None)
            self._stack.clear()


_OWN_FILES = {__file__, contextlib.__file__, str(Path(__file__).with_name("runner.py"))}


def _c_name(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or getattr(type(getattr(fn, "__self__", None)),
                                                        "__module__", "")
    qual = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    return f"{module}.{qual}" if module else qual


@contextlib.contextmanager
def python_profile(note: str) -> Iterator[Trace]:
    tracer = PythonTracer()
    trace = Trace(kind="python", note=note, iteration=tracer.iteration)
    with tracer.run():
        yield trace
    trace.events = tracer.events


# --- writing and reading traces ---------------------------------------------------------------


def load_events(path: Path) -> list[dict[str, Any]]:
    """The event list of a Chrome trace file (JSON object or array form, optionally gzipped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:  # type: ignore[operator]
        data = json.load(fh)
    return data.get("traceEvents", []) if isinstance(data, dict) else list(data)


def write_trace(events: list[dict[str, Any]], dest: Path, meta: dict[str, Any],
                max_bytes: int) -> dict[str, Any]:
    """Write `events` as gzipped Chrome trace JSON; the profile entry of the measurement."""
    body = json.dumps({"traceEvents": events, "displayTimeUnit": "ns",
                       "otherData": {"accelbench": meta}},
                      separators=(",", ":"), default=str).encode()
    entry: dict[str, Any] = {"kind": meta["kind"], "iterations": meta["iterations"],
                             "note": meta.get("note", ""), "raw_bytes": len(body)}
    if len(body) > max_bytes:
        entry["error"] = (f"trace of {len(body) / 2**20:.1f} MiB exceeds the limit of "
                          f"{max_bytes / 2**20:.1f} MiB and was not kept; lower --profile-iters")
        return entry
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with gzip.open(tmp, "wb", compresslevel=6) as fh:
        fh.write(body)
    os.replace(tmp, dest)
    entry.update(path=str(dest.resolve()), bytes=dest.stat().st_size, events=len(events))
    return entry


def trace_name(seq: int, workload: str, kind: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in workload)
    return f"{seq:04d}-{safe}.{kind}.json.gz"


def profile_case(backend: Any, run_iteration: Callable[[Callable[[], Any]], None],
                 reprepare: Callable[[], Any] | None, request: ProfileRequest, seq: int,
                 meta: dict[str, Any]) -> dict[str, Any]:
    """Run `request.iters` iterations under the backend's profiler; the profile entry.

    `run_iteration(op)` runs one synchronised call; `reprepare` builds a fresh op inside the
    profiler for backends whose profiler must be on when the op is built (ONNX Runtime)."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        closer = None
        with backend.profile(scratch) as trace:
            op = meta.pop("_op")
            if getattr(backend, "profile_needs_prepare", False) and reprepare is not None:
                fresh = reprepare()
                op, closer = fresh.op, fresh.close
            run_iteration(op)  # the profiler's own start-up (and a fresh session's first call)
            # land in this unmarked call, outside the profiled steps
            for _ in range(request.iters):
                with trace.iteration():
                    run_iteration(op)
        if closer is not None:
            closer()
        events = trace.events if trace.events is not None else (
            load_events(trace.path) if trace.path is not None else [])
        events = [e for e in events if isinstance(e, dict) and "ph" in e]  # jax ends with {}
        meta.update(kind=trace.kind, note=trace.note, iterations=request.iters)
        dest = request.trace_dir / trace_name(seq, meta["workload"], trace.kind)
        return write_trace(events, dest, meta, request.max_bytes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- many ranks ---------------------------------------------------------------------------------


def rank_timeline(op: Callable[[], Any], barrier: Callable[[], None],
                  sync: Callable[[Any], None] | None, iters: int) -> list[list[float]]:
    """[barrier enter, barrier exit, op exit] wall-clock ns of each profiled iteration."""
    out = []
    for _ in range(iters):
        t0 = time.time_ns()
        barrier()
        t1 = time.time_ns()
        r = op()
        if sync is not None:
            sync(r)
        out.append([t0, t1, time.time_ns()])
    return out


def rank_events(timelines: list[list[list[float]]], op_name: str) -> list[dict[str, Any]]:
    """One process per rank: `wait` (in the barrier before the op) and the op, per iteration.

    Clocks are aligned on the first barrier exit, which every rank leaves at (nearly) the same
    moment; on one host that is a no-op, across hosts it removes their clock offset."""
    events: list[dict[str, Any]] = []
    base = [tl[0][1] for tl in timelines]
    t0 = min(tl[0][0] - b for tl, b in zip(timelines, base, strict=True))
    for rank, (tl, b) in enumerate(zip(timelines, base, strict=True)):
        events.append({"ph": "M", "name": "process_name", "pid": rank, "tid": 0,
                       "args": {"name": f"rank {rank}"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": 0,
                       "args": {"sort_index": rank}})
        for i, (enter, left, done) in enumerate(tl):
            ts = (enter - b - t0) / 1e3
            mid = (left - b - t0) / 1e3
            events.append({"name": ITERATION, "cat": "accelbench", "ph": "X", "pid": rank,
                           "tid": 0, "ts": ts, "dur": (done - enter) / 1e3,
                           "args": {"iteration": i}})
            events.append({"name": "wait", "cat": "wait", "ph": "X", "pid": rank, "tid": 0,
                           "ts": ts, "dur": (left - enter) / 1e3})
            events.append({"name": op_name, "cat": "collective", "ph": "X", "pid": rank,
                           "tid": 0, "ts": mid, "dur": (done - left) / 1e3})
    return events


# --- NVML -----------------------------------------------------------------------------------


class NvmlSampler:
    """GPU utilisation, memory, power and clocks every `period` s while a case is timed.

    `available` is False (with `reason`) where nvidia-ml-py is missing or finds no GPU."""

    def __init__(self, index: int = 0, period: float = 0.05, uuid: str | None = None) -> None:
        self.index, self.period = index, period  # index: the CUDA ordinal the backend uses
        self.samples: list[tuple[float, ...]] = []
        self.reason = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            self.available = False
            self.reason = "nvidia-ml-py is not installed (pip install 'accelbench[nvml]')"
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.available = False
            self.reason = f"no NVIDIA GPU found by NVML ({exc})"
            return
        try:
            self.handle = nvml_handle(pynvml, index, uuid)
            self.name = pynvml.nvmlDeviceGetName(self.handle)
        except (pynvml.NVMLError, LookupError) as exc:
            with contextlib.suppress(Exception):
                pynvml.nvmlShutdown()
            self.available = False
            self.reason = f"cannot read the counters of CUDA device {index}: {exc}"
            return
        self.nvml = pynvml
        self.available = True

    def _read(self) -> tuple[float, ...]:
        n, h = self.nvml, self.handle
        util = n.nvmlDeviceGetUtilizationRates(h)
        mem = n.nvmlDeviceGetMemoryInfo(h)
        return (float(util.gpu), float(util.memory), float(mem.used),
                n.nvmlDeviceGetPowerUsage(h) / 1e3,
                float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
                float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM)))

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append(self._read())
            self._stop.wait(self.period)

    def __enter__(self) -> NvmlSampler:
        if self.available:
            self._thread = threading.Thread(target=self._loop, name="bench-nvml", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()

    def metrics(self, median_s: float) -> dict[str, float]:
        if not self.samples:
            return {}
        cols = list(zip(*self.samples, strict=True))
        mean = [sum(c) / len(c) for c in cols]
        return {"gpu_util_pct": mean[0], "gpu_mem_util_pct": mean[1],
                "gpu_mem_used_bytes": max(cols[2]), "gpu_power_w": mean[3],
                "gpu_sm_clock_mhz": mean[4], "gpu_mem_clock_mhz": mean[5],
                "energy_per_iter_j": mean[3] * median_s}

    def record(self) -> str:
        if not self.available:
            return f"none: {self.reason}"
        return f"nvml: {self.name}, {len(self.samples)} samples every {self.period:g} s"


def nvml_handle(nvml: Any, cuda_index: int, uuid: str | None = None) -> Any:
    """NVML's handle of the GPU that CUDA calls `cuda_index`.

    The two number GPUs differently: NVML counts every GPU in PCI bus order; CUDA counts only
    those in CUDA_VISIBLE_DEVICES (by position in that list), fastest first unless
    CUDA_DEVICE_ORDER=PCI_BUS_ID. A UUID (from the framework, or in CUDA_VISIBLE_DEVICES) is
    unambiguous; an index is used only where the two orders are sure to agree. Raises
    LookupError rather than read another GPU's counters."""
    if uuid:
        return nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-"))
                                              else f"GPU-{uuid}")
    index = cuda_index
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if cuda_index >= len(entries):
            raise LookupError(f"CUDA_VISIBLE_DEVICES={visible!r} lists no device {cuda_index}")
        entry = entries[cuda_index]
        if entry.startswith(("GPU-", "MIG-")):
            return nvml.nvmlDeviceGetHandleByUUID(entry)
        if not entry.isdigit():
            raise LookupError(f"CUDA_VISIBLE_DEVICES entry {entry!r} is neither an index nor "
                              f"a GPU-/MIG- UUID")
        index = int(entry)
    if os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        # CUDA's default order is fastest first; it is PCI order when all GPUs are alike.
        names = {nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i))
                 for i in range(nvml.nvmlDeviceGetCount())}
        if len(names) > 1:
            raise LookupError(f"GPUs of different models ({', '.join(sorted(names))}) and "
                              f"CUDA's fastest-first order: set CUDA_DEVICE_ORDER=PCI_BUS_ID")
    return nvml.nvmlDeviceGetHandleByIndex(index)


class NoGpuCounters:
    """What a case records where no GPU counters are read: why, and no metric."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __enter__(self) -> NoGpuCounters:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def metrics(self, median_s: float) -> dict[str, float]:
        return {}

    def record(self) -> str:
        return f"none: {self.reason}"


def gpu_counters(backend: Any) -> NvmlSampler | NoGpuCounters:
    """The NVML sampler of the backend's GPU, or why there is none."""
    index = backend.gpu_index()
    if index is None:
        return NoGpuCounters(f"{backend.name} runs on no NVIDIA GPU")
    sampler = NvmlSampler(index, uuid=backend.gpu_uuid())
    return sampler if sampler.available else NoGpuCounters(sampler.reason)
