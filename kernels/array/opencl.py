"""OpenCL kernels through pyopencl: the `.cl` sources in kernels/opencl, one variant per device
type (see kernels/opencl/build.py). Every launch's profiling event goes to the backend, which
sums them into device time while a timed region is open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import CheckFailed, UserError
from kernels.opencl.build import (
    CONV2D_VARIANTS,
    GEMM_VARIANTS,
    STREAM_VARIANTS,
    DeviceFacts,
    Variant,
    build,
    gemm_variant_for,
    tunables,
)
from kernels.opencl.tune import Trial, cached_params, pow2_class

# The element types each kernel of this module computes in (workloads validate against it);
# float16 and float64 only where the device has cl_khr_fp16 / cl_khr_fp64 (require_dtype).
KERNEL_DTYPES = {"gemm": ("float64", "float32", "float16"),
                 "stream": ("float64", "float32"),
                 "conv2d": ("float64", "float32")}
DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}


@dataclass
class CLArray:
    """A buffer on the backend's OpenCL device with its host-side shape and element type."""

    backend: Any
    buffer: Any  # pyopencl.Buffer
    shape: tuple[int, ...]
    dtype: np.dtype
    host: np.ndarray | None = None  # the host memory a CPU device's buffer lives in

    @property
    def dtype_name(self) -> str:
        return np.dtype(self.dtype).name  # float64, float32 or float16


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


PAGE = 4096


def _shares_host_memory(backend: Any) -> bool:
    """Whether buffers live in host memory that the device uses in place: on a CPU device the
    "device" memory is host memory anyway. Allocated by NumPy, large buffers get the
    transparent huge pages that NumPy asks the kernel for (PoCL's own allocations get 4 KiB
    pages, which cost STREAM ~10% here), as the host backends' arrays do."""
    import pyopencl as cl

    return bool(backend.cl_device.type & cl.device_type.CPU)


def _host_array(n: int, dtype: np.dtype) -> np.ndarray:
    """n elements of NumPy memory aligned to a page (what CPU runtimes ask of USE_HOST_PTR
    memory to use it in place)."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(max(1, n) * itemsize + PAGE, dtype=np.uint8)
    offset = (-raw.ctypes.data) % PAGE
    return raw[offset:offset + max(1, n) * itemsize].view(dtype)


def _buffer(backend: Any, host: np.ndarray | None, shape: tuple[int, ...],
            dtype: np.dtype) -> CLArray:
    import pyopencl as cl

    n = int(np.prod(shape))
    if _shares_host_memory(backend):
        mem = _host_array(n, dtype)
        if host is not None:
            mem[:n] = host.reshape(-1)
        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR
        buf = cl.Buffer(backend.context, flags, hostbuf=mem)
        return CLArray(backend, buf, tuple(shape), np.dtype(dtype), host=mem)
    if host is not None:
        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR
        buf = cl.Buffer(backend.context, flags, hostbuf=host)
    else:
        nbytes = max(1, n * np.dtype(dtype).itemsize)
        buf = cl.Buffer(backend.context, cl.mem_flags.READ_WRITE, nbytes)
    return CLArray(backend, buf, tuple(shape), np.dtype(dtype))


def empty(backend: Any, shape: tuple[int, ...], dtype: np.dtype) -> CLArray:
    return _buffer(backend, None, tuple(shape), np.dtype(dtype))


def launch(backend: Any, kernel: Any, global_size: tuple[int, ...],
           local_size: tuple[int, ...] | None) -> Any:
    import pyopencl as cl

    event = cl.enqueue_nd_range_kernel(backend.queue, kernel, global_size, local_size)
    backend.track(event, kernel)
    return event


def gemm_size_class(m: int, n: int, k: int) -> str:
    """GEMMs of about the same size share tuned parameters: the geometric mean of m, n, k to
    the nearest power of two."""
    return f"mnk~{pow2_class((m * n * k) ** (1 / 3))}"


def stream_size_class(n: int) -> str:
    return f"n~{pow2_class(n)}"


def _overridden(variant: Variant, build_options: str) -> bool:
    """Whether the build options set any of the variant's tunables by hand."""
    return tunables(variant, build_options) != variant.defines


def _params_for(backend: Any, variant: Variant, kernel: str, dtype: str, size_class: str,
                build_options: str, binary: str,
                params: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    """The build options with the tunables chosen, and the tune info for the measurement.

    Explicit `params` (the tuner's candidate) win; then tunables set in build_options or a
    binary built offline (the user's choice: the cache is not consulted); then the tuning
    cache's best for this device; else the variant's defaults."""
    if variant.space is None:
        return build_options, None
    if params is not None:
        chosen, info = {**variant.defines, **params}, {"source": "tuner", "from_cache": False}
    elif binary or _overridden(variant, build_options):
        chosen = tunables(variant, build_options)
        info = {"source": "binary" if binary else "build_options", "from_cache": False}
    else:
        facts = DeviceFacts.of(backend.cl_device)
        chosen, info = cached_params(facts, variant, kernel, dtype, size_class)
        info.pop("params", None)
    defines = " ".join(f"-D{k}={v}" for k, v in chosen.items())
    return f"{defines} {build_options}".strip(), {"params": chosen, **info,
                                                   "size_class": size_class}


def gemm(a: CLArray, b: CLArray, variant: str = "auto", binary: str = "",
         build_options: str = "", params: dict[str, Any] | None = None) -> Op:
    backend = a.backend
    name = gemm_variant_for(backend.cl_device) if variant == "auto" else variant
    if name not in GEMM_VARIANTS:
        raise UserError(f"opencl gemm: no variant {name!r}; variants: "
                        f"{', '.join(GEMM_VARIANTS)} or auto")
    v = GEMM_VARIANTS[name]
    m, k = a.shape
    n = b.shape[1]
    options, tune = _params_for(backend, v, v.kernels[-1], a.dtype_name,
                                gemm_size_class(m, n, k), build_options, binary, params)
    built = build(backend, v, a.dtype_name, options, binary)
    tune_values = tunables(v, options)  # the launch geometry follows the built kernel
    c = empty(backend, (m, n), a.dtype)
    keep = [a, b, c]
    dims = (np.int32(m), np.int32(n), np.int32(k))
    if name == "cpu":
        pw = int(tune_values["VW"]) * int(tune_values["NB"])
        rb, wg = int(tune_values["RB"]), int(tune_values["WG"])
        panels = -(-n // pw)
        packed = empty(backend, (panels, k, pw), a.dtype)
        keep.append(packed)
        pack = built.kernel("pack_b")
        pack.set_args(np.int32(n), np.int32(k), b.buffer, packed.buffer)
        mul = built.kernel("gemm_cpu")
        mul.set_args(*dims, a.buffer, packed.buffer, c.buffer)
        local = (1, wg)
        grid = (panels, _round_up(-(-m // rb), wg))

        def run() -> CLArray:
            launch(backend, pack, (k, panels), None)
            launch(backend, mul, grid, local)
            return c
    else:
        kern = built.kernel(v.kernels[0])
        kern.set_args(*dims, a.buffer, b.buffer, c.buffer)
        if name == "tiled":
            ts, wpt = int(tune_values["TS"]), int(tune_values["WPT"])
            grid = (_round_up(n, ts), _round_up(m, ts) // wpt)
            local: tuple[int, ...] | None = (ts, ts // wpt)
        else:
            grid, local = (n, m), None

        def run() -> CLArray:
            launch(backend, kern, grid, local)
            return c

    info: dict[str, Any] = {"variant": name, **built.info()}
    if tune is not None:
        info["tune"] = tune
    return Op(run, info, keep=tuple(keep))


def stream(kind: str, a: CLArray, b: CLArray, c: CLArray, scalar: float,
           params: dict[str, Any] | None = None) -> Op:
    backend = a.backend
    v = STREAM_VARIANTS["simple"]
    n = a.shape[0]
    options, tune = _params_for(backend, v, f"stream_{kind}", a.dtype_name,
                                stream_size_class(n), "", "", params)
    built = build(backend, v, a.dtype_name, options)
    values = tunables(v, options)
    kern = built.kernel(f"stream_{kind}")
    kern.set_args(np.int64(n), a.dtype.type(scalar), a.buffer, b.buffer, c.buffer)
    out = {"copy": c, "scale": b, "add": c, "triad": a}[kind]
    per_item = int(values["VW"]) * int(values["EPW"])
    items = -(-n // per_item)
    wg = int(values["WG"])
    # WG=0: the runtime picks the work-group size (the grid rounded to 64 so it can)
    grid = (_round_up(items, wg or 64),)
    local = (wg,) if wg else None

    def run() -> CLArray:
        launch(backend, kern, grid, local)
        return out

    info: dict[str, Any] = {"variant": v.name, **built.info()}
    if tune is not None:
        info["tune"] = tune
    return Op(run, info, keep=(a, b, c))


def conv2d_size_class(c: int, f: int, k: int, stride: int, pixels: int) -> str:
    return f"k{k}s{stride}:c~{pow2_class(c)}:f~{pow2_class(f)}:px~{pow2_class(pixels)}"


def conv2d(x: CLArray, w: CLArray, stride: int, padding: int, variant: str = "igemm",
           params: dict[str, Any] | None = None) -> Op:
    backend = x.backend
    if variant not in CONV2D_VARIANTS:
        raise UserError(f"opencl conv2d: no variant {variant!r}; variants: "
                        f"{', '.join(CONV2D_VARIANTS)}")
    v = CONV2D_VARIANTS[variant]
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    oh, ow = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
    options, tune = _params_for(backend, v, v.kernels[0], x.dtype_name,
                                conv2d_size_class(c, f, k, stride, oh * ow), "", "", params)
    built = build(backend, v, x.dtype_name, options)
    y = empty(backend, (n, f, oh, ow), x.dtype)
    kern = built.kernel(v.kernels[0])
    ints = (c, h, wd, f, k, oh, ow, stride, padding)
    kern.set_args(*(np.int32(i) for i in ints), x.buffer, w.buffer, y.buffer)
    if variant == "igemm":
        values = tunables(v, options)
        vw, rf, wg = int(values["VW"]), int(values["RF"]), int(values["WG"])
        grid: tuple[int, ...] = (_round_up(-(-(oh * ow) // vw), wg), -(-f // rf), n)
        local: tuple[int, ...] = (wg, 1, 1)
    else:
        grid, local = (_round_up(ow, 16), oh, n * f), (16, 1, 1)

    def run() -> CLArray:
        launch(backend, kern, grid, local)
        return y

    info: dict[str, Any] = {"variant": v.name, **built.info()}
    if tune is not None:
        info["tune"] = tune
    return Op(run, info, keep=(x, w, y))


def to_device(backend: Any, array: np.ndarray, dtype: str) -> CLArray:

    if dtype not in DTYPES:
        raise UserError(f"opencl: no {dtype} kernels; use dtype=float32 or float64")
    host = np.ascontiguousarray(array, dtype=DTYPES[dtype])
    return _buffer(backend, host, host.shape, host.dtype)


def to_host(value: CLArray) -> np.ndarray:
    import pyopencl as cl

    out = np.empty(value.shape, dtype=value.dtype)
    cl.enqueue_copy(value.backend.queue, out, value.buffer)  # blocking
    return out.astype(np.float64)


# -- what the tuner runs: one problem per kernel, each candidate checked against a reference --


@dataclass
class Tunable:
    """A kernel to tune on one backend: its variant, kernel name, dtype and size class, and
    `make(params) -> Trial` for the tuner (kernels/opencl/tune.py)."""

    variant: Variant
    kernel: str
    dtype: str
    size_class: str
    make: Callable[[dict[str, Any]], Any]


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(got - ref) / max(float(np.linalg.norm(ref)), 1e-300))


def gemm_tunable(backend: Any, m: int, n: int, k: int, dtype: str = "float32",
                 variant: str = "auto", tolerance: float = 1e-4) -> Tunable:
    """GEMM candidates on m x k times k x n inputs, each checked against a float64 product of
    the same (rounded) inputs: relative Frobenius error at most `tolerance`."""
    name = gemm_variant_for(backend.cl_device) if variant == "auto" else variant
    if name not in GEMM_VARIANTS:
        raise UserError(f"opencl gemm: no variant {name!r}; variants: "
                        f"{', '.join(GEMM_VARIANTS)} or auto")
    v = GEMM_VARIANTS[name]
    rng = np.random.default_rng(0)
    a = to_device(backend, rng.uniform(-1, 1, (m, k)), dtype)
    b = to_device(backend, rng.uniform(-1, 1, (k, n)), dtype)
    ref = to_host(a) @ to_host(b)

    def make(params: dict[str, Any]) -> Trial:
        return _near(gemm(a, b, variant=name, params=params), backend, ref, tolerance)

    return Tunable(v, v.kernels[-1], dtype, gemm_size_class(m, n, k), make)


def _near(op: Any, backend: Any, ref: np.ndarray, tolerance: float) -> Trial:
    """A candidate whose check is a relative Frobenius error of at most `tolerance`."""
    def check() -> None:
        got = op()
        backend.synchronize(got)
        err = _relative_error(to_host(got), ref)
        if not np.isfinite(err) or err > tolerance:
            raise CheckFailed(f"relative error {err:.3g} > {tolerance:.0e}")

    return Trial(op, backend, check)


def conv2d_tunable(backend: Any, batch: int, channels: int, filters: int, size: int,
                   kernel: int, stride: int, padding: int, dtype: str = "float32",
                   tolerance: float = 1e-4) -> Tunable:
    """Implicit-GEMM conv2d candidates, each checked against a float64 reference convolution
    of the same (rounded) inputs: relative Frobenius error at most `tolerance`."""
    from kernels.nn.reference import conv2d_reference
    v = CONV2D_VARIANTS["igemm"]
    rng = np.random.default_rng(0)
    x = to_device(backend, rng.uniform(-1, 1, (batch, channels, size, size)), dtype)
    w = to_device(backend, rng.uniform(-1, 1, (filters, channels, kernel, kernel)), dtype)
    ref = conv2d_reference(to_host(x), to_host(w), stride, padding)
    out = (size + 2 * padding - kernel) // stride + 1

    def make(params: dict[str, Any]) -> Trial:
        return _near(conv2d(x, w, stride, padding, "igemm", params=params), backend, ref,
                     tolerance)

    return Tunable(v, v.kernels[0], dtype,
                   conv2d_size_class(channels, filters, kernel, stride, out * out), make)


def stream_tunable(backend: Any, kind: str, n: int, dtype: str = "float64",
                   scalar: float = 3.0) -> Tunable:
    """STREAM candidates on n elements; each checked element by element (fresh inputs per
    check, so a candidate that skips elements cannot pass on a previous candidate's output)."""
    v = STREAM_VARIANTS["simple"]
    rng = np.random.default_rng(0)
    host = [rng.uniform(-1, 1, n) for _ in range(3)]
    arrays = [to_device(backend, x, dtype) for x in host]
    inputs = [to_host(x) for x in arrays]
    want = {"copy": inputs[0], "scale": scalar * inputs[2], "add": inputs[0] + inputs[1],
            "triad": inputs[1] + scalar * inputs[2]}[kind]
    tol = 1e-12 if dtype == "float64" else 1e-6
    out_index = {"copy": 2, "scale": 1, "add": 2, "triad": 0}[kind]

    def make(params: dict[str, Any]) -> Trial:
        op = stream(kind, *arrays, scalar, params=params)

        def check() -> None:
            import pyopencl as cl

            poison = np.full(n, np.nan, dtype=arrays[out_index].dtype)
            cl.enqueue_copy(backend.queue, arrays[out_index].buffer, poison)
            got = to_host(op())
            bad = int(np.count_nonzero(~np.isclose(got, want, rtol=tol, atol=tol)))
            if bad:
                raise CheckFailed(f"{bad} of {n} elements are wrong")

        return Trial(op, backend, check)

    return Tunable(v, f"stream_{kind}", dtype, stream_size_class(n), make)
