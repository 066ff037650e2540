"""NumPy on the host CPU: the reference backend. Every call is synchronous."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from harness.backends.base import Backend


class NumpyBackend(Backend):
    model = "numpy"
    package = "numpy"
    extra = "all"
    devices = ("cpu",)
    cheap_probe = True  # the harness imports numpy anyway
    description = "NumPy on the host (the reference)"

    def _setup(self) -> None:
        import numpy  # noqa: F401

    def profile(self, trace_dir: Path) -> AbstractContextManager[Any]:
        from harness.profiling import python_profile

        return python_profile("numpy has no profiler: Python-level call timeline "
                              "(sys.setprofile), host time only; the tracer inflates short calls")

    def describe(self) -> dict[str, Any]:
        import numpy as np

        blas = {}
        try:
            from threadpoolctl import threadpool_info  # optional

            blas = {i["internal_api"]: i.get("version") for i in threadpool_info()}
        except ImportError:
            pass
        return {"backend": self.name, "numpy": np.__version__, "blas": blas}
