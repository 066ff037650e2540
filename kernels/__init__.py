"""Low-level kernels per programming model; workloads pick the module for their backend's model."""

from __future__ import annotations

import importlib
from types import ModuleType


def array_kernels(model: str) -> ModuleType:
    """The `kernels.array.<model>` module: gemm and STREAM kernels with one signature per model."""
    return importlib.import_module(f"kernels.array.{model}")
