"""CuPy on cuda[:i]: NumPy's array API on an NVIDIA GPU; CUDA events give device time."""

from __future__ import annotations

from typing import Any

from harness.backends.base import Backend, DeviceTimer
from harness.errors import BackendUnavailable


class _CudaEventTimer(DeviceTimer):
    """Events recorded on the current stream around the region; `stop` waits for the last."""

    def __init__(self, cupy: Any) -> None:
        self._cupy = cupy
        self._start = cupy.cuda.Event()
        self._end = cupy.cuda.Event()

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return float(self._cupy.cuda.get_elapsed_time(self._start, self._end)) / 1e3


class CupyBackend(Backend):
    model = "cupy"
    package = "cupy"
    extra = "cupy"
    devices = ("cuda",)
    description = "CuPy on an NVIDIA GPU (CUDA events give device time)"
    workloads = ("gemm", "stream")  # its kernels: kernels/array/cupy.py

    @classmethod
    def not_installed_message(cls) -> str:
        # CuPy's wheels are built per CUDA release, so no extra can pick the right one
        return ("backend 'cupy' needs the cupy package: pip install cupy-cuda12x "
                "(a CUDA GPU node)")

    def _setup(self) -> None:
        try:
            import cupy
        except ImportError as exc:  # installed, but its CUDA libraries are not found
            raise BackendUnavailable(f"cupy:{self.device}: cupy is installed but cannot be "
                                     f"imported ({exc}); install the cupy wheel of this "
                                     "node's CUDA release") from None
        self.cupy = cupy
        self.index = int(self.device.split(":")[1]) if ":" in self.device else 0
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError: no driver, or no device
            raise BackendUnavailable(f"cupy:{self.device}: no CUDA device is usable "
                                     f"({exc}); run it on a CUDA GPU node") from None
        if self.index >= count:
            raise BackendUnavailable(f"cupy:{self.device}: only {count} CUDA device(s) here")
        self.cuda_device = cupy.cuda.Device(self.index)
        self.cuda_device.use()

    def synchronize(self, result: Any = None) -> None:
        self.cuda_device.synchronize()

    def device_timer(self) -> DeviceTimer | None:
        return _CudaEventTimer(self.cupy)

    def from_numpy(self, array: Any) -> Any:
        return self.cupy.asarray(array)

    def to_numpy(self, value: Any) -> Any:
        return self.cupy.asnumpy(value)

    def describe(self) -> dict[str, Any]:
        runtime = self.cupy.cuda.runtime
        props = runtime.getDeviceProperties(self.index)
        name = props["name"]
        return {"backend": self.name, "cupy": self.cupy.__version__,
                "device_name": name.decode() if isinstance(name, bytes) else str(name),
                "cuda_runtime": runtime.runtimeGetVersion(),
                "cuda_driver": runtime.driverGetVersion(),
                "memory_bytes": props["totalGlobalMem"],
                "capability": f"{props['major']}.{props['minor']}"}
