"""Low-level kernels per programming model; workloads pick the module for their backend's model."""

from __future__ import annotations

import importlib
from types import ModuleType

from harness.errors import UserError


def array_kernels(model: str) -> ModuleType:
    """The `kernels.array.<model>` module: gemm and STREAM kernels with one signature per model."""
    return importlib.import_module(f"kernels.array.{model}")


def kernel_dtypes(model: str, kernel: str) -> tuple[str, ...] | None:
    """The element types `kernels.array.<model>` declares for `kernel`, or None where that
    module's framework is not installed here (the run then says what to install)."""
    try:
        module = array_kernels(model)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "kernels":
            raise
        return None
    return tuple(module.KERNEL_DTYPES[kernel])


def check_dtype(workload: str, kernel: str, what: str, backend: str, dtype: str) -> None:
    """UserError when `backend`'s kernel module has no `kernel` in `dtype` (`what` names the
    operation in the message: "matrix multiply", "convolution")."""
    model = backend.split(":", 1)[0]
    declared = kernel_dtypes(model, kernel)
    if declared is not None and dtype not in declared:
        raise UserError(f"{workload}: {model} has no {dtype} {what} (on {backend}); "
                        f"use dtype={' or '.join(declared)}")
