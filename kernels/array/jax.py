"""JAX kernels (any JAX device): each op is one jit-compiled XLA computation.

XLA arrays are immutable, so every call writes a new output buffer (XLA reuses freed buffers);
triad is fused by XLA into one pass. float64 needs JAX's x64 mode, switched on when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# The element types each kernel of this module computes in (workloads validate against it).
KERNEL_DTYPES = {"gemm": ("float64", "float32", "float16", "bfloat16"),
                 "stream": ("float64", "float32"),
                 "conv2d": ("float64", "float32", "float16")}
DTYPES = {
    "float64": jnp.float64,
    "float32": jnp.float32,
    "float16": jnp.float16,
    "bfloat16": jnp.bfloat16,
}


@jax.jit
def _matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.matmul(a, b, preferred_element_type=a.dtype)


_STREAM = {
    "copy": jax.jit(lambda a, b, c, s: a + 0),  # a real copy: XLA may not alias the input
    "scale": jax.jit(lambda a, b, c, s: s * c),
    "add": jax.jit(lambda a, b, c, s: a + b),
    "triad": jax.jit(lambda a, b, c, s: b + s * c),
}


def gemm(a: jax.Array, b: jax.Array) -> Callable[[], Any]:
    return lambda: _matmul(a, b)


def stream(kind: str, a: jax.Array, b: jax.Array, c: jax.Array, scalar: float):
    fn = _STREAM[kind]
    s = jnp.asarray(scalar, dtype=a.dtype)
    return lambda: fn(a, b, c, s)


def conv2d(x: jax.Array, w: jax.Array, stride: int, padding: int) -> Callable[[], Any]:
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
        x, w, window_strides=(stride, stride), padding=[(padding, padding)] * 2,
        dimension_numbers=("NCHW", "OIHW", "NCHW")))
    return lambda: conv(x, w)


def to_device(backend: Any, array: np.ndarray, dtype: str) -> jax.Array:
    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    return jax.device_put(jnp.asarray(array, dtype=DTYPES[dtype]), backend.jax_device)


def to_host(value: jax.Array) -> np.ndarray:
    return np.asarray(value.astype(jnp.float32) if value.dtype == jnp.bfloat16 else value,
                      dtype=np.float64)
