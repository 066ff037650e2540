"""OpenCL through pyopencl: `opencl:<platform>[:<device>]`, each a name substring or an index.

Queues are created with profiling enabled so kernels report device time.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, DeviceTimer
from harness.errors import BackendUnavailable, UserError


class _EventTimer(DeviceTimer):
    """Device time of a region: the sum of the profiled run times of the kernels enqueued in it
    (queued-to-running gaps and host time between launches are not device time)."""

    def __init__(self, backend: OpenCLBackend) -> None:
        self.backend = backend

    def start(self) -> None:
        self.backend._events = []

    def stop(self) -> float:
        events, self.backend._events = self.backend._events or [], None
        self.backend.queue.finish()
        return sum(e.profile.end - e.profile.start for e in events) * 1e-9


def _label(x: Any) -> str:
    """What a platform or device is matched against: its name, vendor and version
    (PoCL's platform is named "Portable Computing Language"; `pocl` is in its version)."""
    return " ".join(str(getattr(x, a, "")) for a in ("name", "vendor", "version")).lower()


def _pick(items: list[Any], key: str, what: str) -> Any:
    names = "; ".join(f"{i}: {x.name.strip()}" for i, x in enumerate(items)) or "none"
    if key == "*":  # the default device string `opencl`: any platform, its first device
        key = "0"
    if key.isdigit():
        i = int(key)
        if i < len(items):
            return items[i]
        raise BackendUnavailable(f"opencl: no {what} with index {i} (found: {names})")
    matches = [x for x in items if key.lower() in _label(x)]
    if not matches:
        raise BackendUnavailable(f"opencl: no {what} matches {key!r} (found: {names})")
    return matches[0]


class OpenCLBackend(Backend):
    model = "opencl"
    package = "pyopencl"
    extra = "opencl"
    devices = ("*",)
    description = "OpenCL (PoCL, GPU vendors, FPGA boards); profiling events give device time"

    def _setup(self) -> None:
        import pyopencl as cl

        self.cl = cl
        try:
            platforms = cl.get_platforms()
        except cl.Error:
            platforms = []
        if not platforms:
            raise BackendUnavailable(
                "opencl: no OpenCL platform found; install an ICD such as pocl-opencl-icd"
            )
        platform_key, _, device_key = self.device.partition(":")
        platform = _pick(platforms, platform_key or "0", "platform")
        try:
            devices = platform.get_devices()
        except cl.Error:
            devices = []
        self.cl_device = _pick(devices, device_key or "0", f"device on {platform.name!r}")
        self._events: list[Any] | None = None
        self._profiled: list[Any] | None = None  # (event, kernel) while `profile` runs
        self.context = cl.Context([self.cl_device])
        self.queue = cl.CommandQueue(
            self.context, properties=cl.command_queue_properties.PROFILING_ENABLE
        )

    def synchronize(self, result: Any = None) -> None:
        self.queue.finish()

    def track(self, event: Any, kernel: Any = None) -> None:
        """Kernels report their launch events here; kept only while a device timer or the
        profiler runs."""
        if self._events is not None:
            self._events.append(event)
        if self._profiled is not None:
            self._profiled.append((event, kernel))

    @contextlib.contextmanager
    def profile(self, trace_dir: Path) -> Iterator[Any]:
        """Each launch's profiling event (queued, submit, start, end) as Chrome trace events:
        the kernel's run on a `device` track, its time in the queue on a `queue` track, and the
        host's iterations on a `host` track, all on the device clock."""
        from harness.profiling import ITERATION, Trace

        marks: list[tuple[Any, Any]] = []

        @contextlib.contextmanager
        def iteration() -> Iterator[None]:
            a = self.cl.enqueue_marker(self.queue)
            yield
            marks.append((a, self.cl.enqueue_marker(self.queue)))

        trace = Trace(kind="opencl", note=f"OpenCL profiling events on {self.cl_device.name}",
                      iteration=iteration)
        self._profiled = []
        try:
            yield trace
            self.queue.finish()
        finally:
            launched, self._profiled = self._profiled or [], None
        pid = os.getpid()
        ns = [e.profile.queued for e, _ in launched] or [time.perf_counter_ns()]
        t0 = min(ns)
        events: list[dict[str, Any]] = [
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": t,
             "args": {"name": n}} for t, n in ((0, "host"), (1, "queue"), (2, "device"))]
        for a, b in marks:
            events.append({"name": ITERATION, "cat": "accelbench", "ph": "X", "pid": pid,
                           "tid": 0, "ts": (a.profile.queued - t0) / 1e3,
                           "dur": (b.profile.end - a.profile.queued) / 1e3})
        for event, kernel in launched:
            p = event.profile
            name = getattr(kernel, "function_name", None) or "kernel"
            events.append({"name": f"{name} (queued)", "cat": "queue", "ph": "X", "pid": pid,
                           "tid": 1, "ts": (p.queued - t0) / 1e3,
                           "dur": (p.start - p.queued) / 1e3,
                           "args": {"queued_to_submit_us": (p.submit - p.queued) / 1e3,
                                    "submit_to_start_us": (p.start - p.submit) / 1e3}})
            events.append({"name": name, "cat": "kernel", "ph": "X", "pid": pid, "tid": 2,
                           "ts": (p.start - t0) / 1e3, "dur": (p.end - p.start) / 1e3,
                           "args": {"queued_ns": p.queued, "submit_ns": p.submit,
                                    "start_ns": p.start, "end_ns": p.end}})
        trace.events = events

    def device_timer(self) -> DeviceTimer | None:
        return _EventTimer(self)

    def describe(self) -> dict[str, Any]:
        d = self.cl_device
        t = self.cl.device_type
        kind = next((name for flag, name in ((t.CPU, "cpu"), (t.GPU, "gpu"),
                                             (t.ACCELERATOR, "accelerator")) if d.type & flag),
                    "other")
        return {"backend": self.name, "platform": d.platform.name, "device_name": d.name,
                "device_type": kind, "driver": d.driver_version,
                "opencl": d.version, "compute_units": d.max_compute_units,
                "memory_bytes": d.global_mem_size}

    def require_dtype(self, dtype: str) -> None:
        d = self.cl_device
        if dtype == "float16" and "cl_khr_fp16" not in str(d.extensions).split():
            raise UserError(f"opencl: device {d.name.strip()!r} has no float16 (cl_khr_fp16); "
                            "use dtype=float32")
        if dtype == "float64" and not d.double_fp_config:
            raise UserError(f"opencl: device {d.name.strip()!r} has no float64 (cl_khr_fp64); "
                            "use dtype=float32")

    def catalogue_device(self) -> tuple[str, bool]:
        d = self.describe()  # the device string names a platform; the device's type says host
        return d["device_name"], d["device_type"] == "cpu"
