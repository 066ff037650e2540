"""NumPy kernels. NumPy has no fused triad: it makes two passes (STREAM still counts 3 arrays)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# The element types each kernel of this module computes in (workloads validate against it).
KERNEL_DTYPES = {"gemm": ("float64", "float32", "float16"),
                 "stream": ("float64", "float32"),
                 "conv2d": ("float64", "float32")}
DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}


def gemm(a: np.ndarray, b: np.ndarray) -> Callable[[], Any]:
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    return lambda: np.matmul(a, b, out=out)


def stream(kind: str, a: np.ndarray, b: np.ndarray, c: np.ndarray, scalar: float):
    if kind == "copy":
        return lambda: (np.copyto(c, a), c)[1]
    if kind == "scale":
        return lambda: np.multiply(c, scalar, out=b)
    if kind == "add":
        return lambda: np.add(a, b, out=c)
    if kind == "triad":

        def triad() -> np.ndarray:
            np.multiply(c, scalar, out=a)
            return np.add(a, b, out=a)

        return triad
    raise ValueError(kind)


def to_device(backend: Any, array: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=DTYPES[dtype])


def to_host(value: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def conv2d(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> Callable[[], Any]:
    """im2col by strided views and one tensordot (BLAS); NCHW in, NCHW out."""
    k = w.shape[-1]

    def run() -> np.ndarray:
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
        win = win[:, :, ::stride, ::stride]  # n, c, oh, ow, kh, kw
        out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # n, oh, ow, o
        return out.transpose(0, 3, 1, 2)

    return run
