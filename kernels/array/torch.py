"""PyTorch kernels (any torch device); triad is one fused pass via add(alpha=)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# The element types each kernel of this module computes in (workloads validate against it).
KERNEL_DTYPES = {"gemm": ("float64", "float32", "float16", "bfloat16"),
                 "stream": ("float64", "float32"),
                 "conv2d": ("float64", "float32", "float16")}
DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def gemm(a: torch.Tensor, b: torch.Tensor) -> Callable[[], Any]:
    out = torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device=a.device)
    return lambda: torch.matmul(a, b, out=out)


def stream(kind: str, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, scalar: float):
    if kind == "copy":
        return lambda: c.copy_(a)
    if kind == "scale":
        return lambda: torch.mul(c, scalar, out=b)
    if kind == "add":
        return lambda: torch.add(a, b, out=c)
    if kind == "triad":
        return lambda: torch.add(b, c, alpha=scalar, out=a)
    raise ValueError(kind)


def to_device(backend: Any, array: Any, dtype: str) -> torch.Tensor:
    return backend.from_numpy(array).to(DTYPES[dtype]).contiguous()


def to_host(value: torch.Tensor) -> Any:
    return value.detach().to(torch.float64).cpu().numpy()


def conv2d(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int) -> Callable[[], Any]:
    conv = torch.nn.functional.conv2d

    def run() -> torch.Tensor:
        with torch.no_grad():
            return conv(x, w, stride=stride, padding=padding)

    return run
