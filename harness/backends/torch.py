"""PyTorch on cpu or cuda[:i]; CUDA events give device time."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, DeviceTimer
from harness.errors import BackendUnavailable


class _CudaEventTimer(DeviceTimer):
    def __init__(self, torch: Any) -> None:
        self._torch = torch
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1e3


def cuda_uuid(device: Any) -> str | None:
    """The UUID of a CUDA device torch has already initialised (never initialises CUDA)."""
    torch = sys.modules.get("torch")
    with contextlib.suppress(Exception):
        if torch is not None and torch.cuda.is_initialized():
            return str(torch.cuda.get_device_properties(device).uuid)
    return None


class TorchBackend(Backend):
    model = "torch"
    package = "torch"
    extra = "torch"
    devices = ("cpu", "cuda")
    description = "PyTorch eager (CUDA events give device time on cuda)"

    def _setup(self) -> None:
        import torch

        self.torch = torch
        self.is_cuda = self.device.startswith("cuda")
        if self.is_cuda:
            if not torch.cuda.is_available():
                build = torch.version.cuda or "a CPU-only build"
                raise BackendUnavailable(
                    f"torch:{self.device}: no CUDA device is visible (torch {torch.__version__}, "
                    f"{build}); use torch:cpu, or on a GPU node install a CUDA build of torch"
                )
            index = int(self.device.split(":")[1]) if ":" in self.device else 0
            if index >= torch.cuda.device_count():
                raise BackendUnavailable(
                    f"torch:{self.device}: only {torch.cuda.device_count()} CUDA device(s) here"
                )
            torch.cuda.set_device(index)
        self.torch_device = torch.device(self.device)

    def synchronize(self, result: Any = None) -> None:
        if self.is_cuda:
            self.torch.cuda.synchronize(self.torch_device)

    def device_timer(self) -> DeviceTimer | None:
        return _CudaEventTimer(self.torch) if self.is_cuda else None

    def profiler_missing(self) -> str | None:
        if not self.torch.autograd.kineto_available():
            return (f"torch {self.torch.__version__} was built without Kineto, which "
                    "torch.profiler needs: install a torch wheel from pytorch.org")
        return None

    @contextlib.contextmanager
    def profile(self, trace_dir: Path) -> Iterator[Any]:
        """torch.profiler: CPU (and CUDA) activities, shapes, memory; a Chrome trace."""
        from harness.profiling import ITERATION, Trace

        prof = self.torch.profiler
        activities = [prof.ProfilerActivity.CPU]
        if self.is_cuda:
            activities.append(prof.ProfilerActivity.CUDA)
        trace = Trace(kind="torch", note="torch.profiler " + "+".join(
            a.name for a in activities), iteration=lambda: prof.record_function(ITERATION))
        with prof.profile(activities=activities, record_shapes=True,
                          profile_memory=True) as p:
            yield trace
        trace.path = trace_dir / "torch.trace.json"
        p.export_chrome_trace(str(trace.path))

    def from_numpy(self, array: Any) -> Any:
        return self.torch.from_numpy(array).to(self.torch_device)

    def to_numpy(self, value: Any) -> Any:
        return value.detach().cpu().numpy()

    def gpu_uuid(self) -> str | None:
        return cuda_uuid(self.torch_device) if getattr(self, "is_cuda", False) else None

    def describe(self) -> dict[str, Any]:
        torch = self.torch
        d: dict[str, Any] = {
            "backend": self.name,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
        if self.is_cuda:
            props = torch.cuda.get_device_properties(self.torch_device)
            d.update(device_name=props.name, cuda=torch.version.cuda,
                     memory_bytes=props.total_memory, capability=f"{props.major}.{props.minor}")
        return d
