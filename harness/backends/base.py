"""The backend contract that every `harness/backends/<model>.py` implements."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import BackendUnavailable, UserError
from harness.registry import Registry


class DeviceTimer(ABC):
    """Device-side time of a region (CUDA events, OpenCL profiling events)."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> float:
        """End the region, wait for the device, return the region's device seconds."""


class Backend(ABC):
    """A programming model on one device."""

    model: ClassVar[str]
    package: ClassVar[str]  # import name probed without importing
    extra: ClassVar[str]  # pip extra that installs it
    devices: ClassVar[tuple[str, ...]]  # device kinds; the first is the default
    description: ClassVar[str] = ""
    # Whether `unusable_reason` is cheap enough for `bench list` (no framework to import).
    cheap_probe: ClassVar[bool] = False
    # Whether its ranks must be one MPI world (started by a launcher whose `mpi_world` is set).
    needs_mpi_world: ClassVar[bool] = False
    # Workloads it runs besides those that name its model in `Workload.models`: a backend added
    # later (a plugin) declares here the workloads its kernels serve, and no workload changes.
    workloads: ClassVar[tuple[str, ...]] = ()

    def __init__(self, device: str) -> None:
        self.device = device
        self._ready = False

    @property
    def name(self) -> str:
        return f"{self.model}:{self.device}"

    @classmethod
    def installed(cls) -> bool:
        return importlib.util.find_spec(cls.package) is not None

    @classmethod
    def not_installed_message(cls) -> str:
        return (
            f"backend {cls.model!r} needs the Python package {cls.package!r}, which is not "
            f"installed: pip install 'accelbench[{cls.extra}]'"
        )

    def setup(self) -> None:
        """Import the framework and select the device; BackendUnavailable if either fails."""
        if self._ready:
            return
        if not self.installed():
            raise BackendUnavailable(self.not_installed_message())
        self._setup()
        self._ready = True

    @abstractmethod
    def _setup(self) -> None: ...

    def synchronize(self, result: Any = None) -> None:
        """Wait until the device has finished the work that produced `result`."""
        return None  # host backends compute synchronously

    def device_timer(self) -> DeviceTimer | None:
        """A timer of device-side time, where the device has one."""
        return None

    # Profiling (`bench run --profile`): the backend's profiler around a few iterations.
    profile_needs_prepare: ClassVar[bool] = False  # the op must be built with the profiler on

    def profile(self, trace_dir: Path) -> AbstractContextManager[Any]:
        """A context manager around profiled iterations that yields a `harness.profiling.Trace`,
        whose `path` (a Chrome trace file, in `trace_dir`) or `events` is set when it exits.

        This default is a Python-level timeline (no device time), labelled as such."""
        from harness.profiling import python_profile

        return python_profile(f"{self.model} has no profiler hook: Python-level call timeline "
                              "(sys.setprofile), host time only")

    def profiler_missing(self) -> str | None:
        """None when `profile` works here, else what is missing and how to install it."""
        return None

    def from_numpy(self, array: Any) -> Any:
        return array

    def to_numpy(self, value: Any) -> Any:
        return value

    def describe(self) -> dict[str, Any]:
        """Device and library facts for the run's environment record."""
        return {"backend": self.name}

    def require_dtype(self, dtype: str) -> None:  # noqa: B027 (most devices have them all)
        """UserError when this (set-up) device cannot compute in `dtype` at all."""

    def gpu_index(self) -> int | None:
        """The index of the NVIDIA GPU this backend computes on (for NVML's counters), or
        None for a host device."""
        kind, _, index = self.device.partition(":")
        if kind not in ("cuda", "gpu"):
            return None
        return int(index) if index.isdigit() else 0

    def gpu_uuid(self) -> str | None:
        """That GPU's UUID where the framework has already opened it (it is the sure way to
        name the same GPU in NVML when device orders differ), else None."""
        return None

    def catalogue_device(self) -> tuple[str, bool]:
        """(the device's name as the peaks catalogue knows it, whether it is the host CPU)."""
        d = self.describe()
        return (d.get("device_name") or d.get("device_kind") or "",
                self.device.split(":")[0] == "cpu")

    def unusable_reason(self) -> str | None:
        """None when this backend works here, else why not."""
        try:
            self.setup()
        except BackendUnavailable as exc:
            return str(exc)
        return None


registry: Registry[type[Backend]] = Registry("backend", "accelbench.backends")


def parse_backend(spec: str) -> Backend:
    """'torch:cuda:1' -> a TorchBackend for device 'cuda:1'; 'numpy' -> numpy:cpu."""
    spec = spec.strip()
    if not spec:
        raise UserError("empty backend name; write model:device, e.g. torch:cpu")
    model, _, device = spec.partition(":")
    cls = registry.get(model)
    device = device or cls.devices[0]
    kind, _, index = device.partition(":")
    if kind not in cls.devices and "*" not in cls.devices:
        raise UserError(
            f"backend {model!r} has no device {device!r}; "
            f"devices: {', '.join(cls.devices)} (e.g. {model}:{cls.devices[0]})"
        )
    if "*" in cls.devices:  # model:<platform>[:<device>]
        if not kind or ":" in index:
            raise UserError(f"backend {spec!r}: write {model}:PLATFORM[:DEVICE], e.g. {model}:0")
    elif index and not (index.isascii() and index.isdigit()):
        raise UserError(f"backend {spec!r}: write {model}:{kind} or {model}:{kind}:N with N a "
                        f"device number, e.g. {model}:{kind}:0")
    return cls(device)
