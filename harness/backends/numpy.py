"""NumPy on the host CPU: the reference backend. Every call is synchronous."""

from __future__ import annotations

from typing import Any

from harness.backends.base import Backend


class NumpyBackend(Backend):
    model = "numpy"
    package = "numpy"
    extra = "all"
    devices = ("cpu",)
    description = "NumPy on the host (the reference)"

    def _setup(self) -> None:
        import numpy  # noqa: F401

    def describe(self) -> dict[str, Any]:
        import numpy as np

        blas = {}
        try:
            from threadpoolctl import threadpool_info  # optional

            blas = {i["internal_api"]: i.get("version") for i in threadpool_info()}
        except ImportError:
            pass
        return {"backend": self.name, "numpy": np.__version__, "blas": blas}
