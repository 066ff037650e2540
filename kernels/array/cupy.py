"""CuPy kernels on the current CUDA device; triad is one fused pass (an elementwise kernel)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cupy
import numpy as np

# The element types each kernel of this module computes in (workloads validate against it).
KERNEL_DTYPES = {"gemm": ("float64", "float32", "float16"),
                 "stream": ("float64", "float32")}
DTYPES = {"float64": cupy.float64, "float32": cupy.float32, "float16": cupy.float16}
_TRIAD = cupy.ElementwiseKernel("T b, T c, T s", "T a", "a = b + s * c", "stream_triad")


def gemm(a: Any, b: Any) -> Callable[[], Any]:
    out = cupy.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    return lambda: cupy.matmul(a, b, out=out)


def stream(kind: str, a: Any, b: Any, c: Any, scalar: float) -> Callable[[], Any]:
    if kind == "copy":
        return lambda: (cupy.copyto(c, a), c)[1]
    if kind == "scale":
        return lambda: cupy.multiply(c, scalar, out=b)
    if kind == "add":
        return lambda: cupy.add(a, b, out=c)
    if kind == "triad":
        s = a.dtype.type(scalar)  # the arrays' type, so that T is one type
        return lambda: _TRIAD(b, c, s, a)
    raise ValueError(kind)


def to_device(backend: Any, array: np.ndarray, dtype: str) -> Any:
    return cupy.ascontiguousarray(cupy.asarray(array, dtype=DTYPES[dtype]))


def to_host(value: Any) -> np.ndarray:
    return np.asarray(cupy.asnumpy(value), dtype=np.float64)
