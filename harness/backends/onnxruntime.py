"""ONNX Runtime with an execution provider: cpu (CPUExecutionProvider) or cuda."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.backends.base import Backend
from harness.errors import BackendUnavailable

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRuntimeBackend(Backend):
    model = "onnxruntime"
    package = "onnxruntime"
    extra = "onnx"
    devices = ("cpu", "cuda")
    description = "ONNX Runtime sessions (execution provider per device)"

    def _setup(self) -> None:
        import onnxruntime as ort

        self.ort = ort
        self.provider = PROVIDERS[self.device.split(":")[0]]
        if self.provider not in ort.get_available_providers():
            raise BackendUnavailable(
                f"onnxruntime:{self.device}: {self.provider} is not available "
                f"(have {', '.join(ort.get_available_providers())}); "
                "on a GPU node install onnxruntime-gpu"
            )

    # ONNX Runtime profiles only sessions created with profiling on: under `profile`, the
    # runner prepares the case again, and the sessions made meanwhile are profiled.
    profile_needs_prepare = True
    _profiled: list[Any] | None = None
    _profile_dir: Path | None = None

    def session(self, model: bytes | str) -> Any:
        """An InferenceSession of a serialized model on this backend's execution provider."""
        options = self.ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if self._profiled is not None and self._profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(self._profile_dir / f"ort{len(self._profiled)}")
        session = self.ort.InferenceSession(model, sess_options=options,
                                            providers=[self.provider])
        if self._profiled is not None:
            self._profiled.append(session)
        return session

    @contextlib.contextmanager
    def profile(self, trace_dir: Path) -> Iterator[Any]:
        """Session profiling (enable_profiling) of the sessions made inside; their JSON merged
        onto one timeline (each session's ts counts from its own start), with the iterations
        marked on it."""
        from harness.profiling import Trace, WallClockMarks, load_events

        marks = WallClockMarks()
        trace = Trace(kind="onnxruntime", note=f"onnxruntime session profiling ({self.provider})",
                      iteration=marks.iteration)
        self._profiled, self._profile_dir = [], trace_dir
        try:
            yield trace
        finally:
            sessions, self._profiled, self._profile_dir = self._profiled or [], None, None
        trace.events = []
        # the wall-clock ns (system_clock) at which each session's profiling started: its ts 0
        starts = [int(s.get_profiling_start_time_ns()) for s in sessions]
        for s, start in zip(sessions, starts, strict=True):
            shift = (start - min(starts)) / 1e3
            for e in load_events(Path(s.end_profiling())):
                if shift and "ts" in e:
                    e["ts"] = float(e["ts"]) + shift
                trace.events.append(e)
        if starts:
            trace.events.extend(marks.events(min(starts)))

    def ortvalue(self, array: Any) -> Any:
        """A numpy array as an OrtValue on this backend's device."""
        kind, _, index = self.device.partition(":")
        return self.ort.OrtValue.ortvalue_from_numpy(array, kind, int(index or 0))

    def from_numpy(self, array: Any) -> Any:
        return self.ortvalue(array)

    def to_numpy(self, value: Any) -> Any:
        return value.numpy()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "onnxruntime": self.ort.__version__,
                "provider": self.provider}
