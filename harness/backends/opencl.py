"""OpenCL through pyopencl: `opencl:<platform>[:<device>]`, each a name substring or an index.

Queues are created with profiling enabled so kernels report device time.
"""

from __future__ import annotations

from typing import Any

from harness.backends.base import Backend
from harness.errors import BackendUnavailable


def _pick(items: list[Any], key: str, what: str) -> Any:
    if key.isdigit():
        i = int(key)
        if i < len(items):
            return items[i]
        raise BackendUnavailable(f"opencl: no {what} with index {i} (there are {len(items)})")
    matches = [x for x in items if key.lower() in x.name.lower()]
    if not matches:
        names = "; ".join(x.name for x in items) or "none"
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
        self.cl_device = _pick(platform.get_devices(), device_key or "0", "device")
        self.context = cl.Context([self.cl_device])
        self.queue = cl.CommandQueue(
            self.context, properties=cl.command_queue_properties.PROFILING_ENABLE
        )

    def synchronize(self, result: Any = None) -> None:
        self.queue.finish()

    def describe(self) -> dict[str, Any]:
        d = self.cl_device
        return {"backend": self.name, "platform": d.platform.name, "device_name": d.name,
                "driver": d.driver_version, "compute_units": d.max_compute_units}
