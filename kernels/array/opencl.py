"""OpenCL kernels through pyopencl: the `.cl` sources in kernels/opencl, one variant per device
type (see kernels/opencl/build.py). Every launch's profiling event goes to the backend, which
sums them into device time while a timed region is open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import UserError
from kernels.opencl.build import (
    CONV2D_VARIANTS,
    GEMM_VARIANTS,
    STREAM_VARIANTS,
    build,
    gemm_variant_for,
    tunables,
)

# The element types each kernel of this module computes in (workloads validate against it).
KERNEL_DTYPES = {"gemm": ("float64", "float32"),
                 "stream": ("float64", "float32"),
                 "conv2d": ("float64", "float32")}
DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass
class CLArray:
    """A buffer on the backend's OpenCL device with its host-side shape and element type."""

    backend: Any
    buffer: Any  # pyopencl.Buffer
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def dtype_name(self) -> str:
        return "float64" if self.dtype == np.float64 else "float32"


class Op:
    """A zero-argument op that enqueues kernels and returns its output; `info` holds the build
    facts (variant, options, build time, source or binary) stored with the measurement."""

    def __init__(self, fn: Callable[[], CLArray], info: dict[str, Any],
                 keep: tuple[Any, ...] = ()) -> None:
        self.fn = fn
        self.info = info
        self.keep = keep  # buffers the kernels use: kernel arguments do not keep them alive

    def __call__(self) -> CLArray:
        return self.fn()


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def empty(backend: Any, shape: tuple[int, ...], dtype: np.dtype) -> CLArray:
    import pyopencl as cl

    nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return CLArray(backend, cl.Buffer(backend.context, cl.mem_flags.READ_WRITE, nbytes),
                   tuple(shape), np.dtype(dtype))


def launch(backend: Any, kernel: Any, global_size: tuple[int, ...],
           local_size: tuple[int, ...] | None) -> Any:
    import pyopencl as cl

    event = cl.enqueue_nd_range_kernel(backend.queue, kernel, global_size, local_size)
    backend.track(event, kernel)
    return event


def gemm(a: CLArray, b: CLArray, variant: str = "auto", binary: str = "",
         build_options: str = "") -> Op:
    backend = a.backend
    name = gemm_variant_for(backend.cl_device) if variant == "auto" else variant
    if name not in GEMM_VARIANTS:
        raise UserError(f"opencl gemm: no variant {name!r}; variants: "
                        f"{', '.join(GEMM_VARIANTS)} or auto")
    v = GEMM_VARIANTS[name]
    built = build(backend, v, a.dtype_name, build_options, binary)
    tune = tunables(v, build_options)  # the launch geometry follows the built kernel
    m, k = a.shape
    n = b.shape[1]
    c = empty(backend, (m, n), a.dtype)
    keep = [a, b, c]
    dims = (np.int32(m), np.int32(n), np.int32(k))
    if name == "cpu":
        vw, rb = int(tune["VW"]), int(tune["RB"])
        panels = -(-n // vw)
        packed = empty(backend, (panels, k, vw), a.dtype)
        keep.append(packed)
        pack = built.kernel("pack_b")
        pack.set_args(np.int32(n), np.int32(k), b.buffer, packed.buffer)
        mul = built.kernel("gemm_cpu")
        mul.set_args(*dims, a.buffer, packed.buffer, c.buffer)
        lx, ly = v.local or (1, 1)
        grid = (_round_up(panels, lx), _round_up(-(-m // rb), ly))

        def run() -> CLArray:
            launch(backend, pack, (k, panels), None)
            launch(backend, mul, grid, v.local)
            return c
    else:
        kern = built.kernel(v.kernels[0])
        kern.set_args(*dims, a.buffer, b.buffer, c.buffer)
        if name == "tiled":
            ts, wpt = int(tune["TS"]), int(tune["WPT"])
            grid = (_round_up(n, ts), _round_up(m, ts) // wpt)
            local: tuple[int, ...] | None = (ts, ts // wpt)
        else:
            grid, local = (n, m), None

        def run() -> CLArray:
            launch(backend, kern, grid, local)
            return c

    return Op(run, {"variant": name, **built.info()}, keep=tuple(keep))


def stream(kind: str, a: CLArray, b: CLArray, c: CLArray, scalar: float) -> Op:
    backend = a.backend
    v = STREAM_VARIANTS["simple"]
    built = build(backend, v, a.dtype_name)
    n = a.shape[0]
    kern = built.kernel(f"stream_{kind}")
    kern.set_args(np.int64(n), a.dtype.type(scalar), a.buffer, b.buffer, c.buffer)
    out = {"copy": c, "scale": b, "add": c, "triad": a}[kind]
    grid = (_round_up(n, 64),)

    def run() -> CLArray:
        launch(backend, kern, grid, None)
        return out

    return Op(run, {"variant": v.name, **built.info()}, keep=(a, b, c))


def conv2d(x: CLArray, w: CLArray, stride: int, padding: int) -> Op:
    backend = x.backend
    v = CONV2D_VARIANTS["direct"]
    built = build(backend, v, x.dtype_name)
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    oh, ow = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
    y = empty(backend, (n, f, oh, ow), x.dtype)
    kern = built.kernel("conv2d_direct")
    ints = (c, h, wd, f, k, oh, ow, stride, padding)
    kern.set_args(*(np.int32(i) for i in ints), x.buffer, w.buffer, y.buffer)
    grid = (_round_up(ow, 16), oh, n * f)
    local = (16, 1, 1)

    def run() -> CLArray:
        launch(backend, kern, grid, local)
        return y

    return Op(run, {"variant": v.name, **built.info()}, keep=(x, w, y))


def to_device(backend: Any, array: np.ndarray, dtype: str) -> CLArray:
    import pyopencl as cl

    if dtype not in DTYPES:
        raise UserError(f"opencl: no {dtype} kernels; use dtype=float32 or float64")
    host = np.ascontiguousarray(array, dtype=DTYPES[dtype])
    flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
    buf = cl.Buffer(backend.context, flags, hostbuf=host)
    return CLArray(backend, buf, host.shape, host.dtype)


def to_host(value: CLArray) -> np.ndarray:
    import pyopencl as cl

    out = np.empty(value.shape, dtype=value.dtype)
    cl.enqueue_copy(value.backend.queue, out, value.buffer)  # blocking
    return out.astype(np.float64)
