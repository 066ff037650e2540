"""Build OpenCL programs once per device, from the `.cl` sources here or from a precompiled binary.

Kernels come in variants per device type, because one source does not run well everywhere: a
GPU-style tiled kernel is ~20x slower than a CPU-style vectorised one on a CPU device (PoCL).
`variant_for(device)` picks the default; a case may name another (`variant=`) and add build
options (`build_options=`). FPGAs cannot compile at run time: `binary=path` loads a program
binary (`.aocx`, `.xclbin`, or what `program.binaries` gave on another run) built offline with
the same kernel names and the variant's default options.

Every build records the options it used, how long it took and where it came from; a build that
fails raises a UserError carrying the compiler's error lines.

A variant's tunables are `-D` options with defaults (`defines`) and, where the variant can be
tuned, a `Space`: the legal values of each and a constraint on a combination given the device's
`DeviceFacts`. kernels/opencl/tune.py searches the space on the device and caches the best;
the defaults are a portable starting point, never constants chosen for one machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError

SOURCES = Path(__file__).resolve().parent
# Options every build gets: the usual fast-math set that vendor BLAS kernels are built with.
BASE_OPTIONS = ("-cl-mad-enable", "-cl-fast-relaxed-math")


@dataclass(frozen=True)
class DeviceFacts:
    """What a tuning constraint and a tuning cache key need to know about a device."""

    platform: str
    device: str
    driver: str
    type: str  # cpu, gpu, accelerator, other
    max_work_group: int
    local_mem: int
    compute_units: int
    extensions: tuple[str, ...] = ()

    @classmethod
    def of(cls, device: Any) -> DeviceFacts:
        return cls(str(device.platform.name).strip(), str(device.name).strip(),
                   str(device.driver_version).strip(), device_type(device),
                   int(device.max_work_group_size), int(device.local_mem_size),
                   int(device.max_compute_units), tuple(str(device.extensions).split()))


Constraint = Callable[[dict[str, Any], DeviceFacts, str], bool]


def _any(params: dict[str, Any], facts: DeviceFacts, dtype: str) -> bool:
    return True


@dataclass(frozen=True)
class Space:
    """A kernel's tunable parameters: the legal values of each `-D` option, and a constraint
    on a combination (params, device facts, dtype) -> legal."""

    values: dict[str, tuple[Any, ...]]
    constraint: Constraint = _any

    def size(self) -> int:
        n = 1
        for v in self.values.values():
            n *= len(v)
        return n

    def allows(self, params: dict[str, Any], facts: DeviceFacts, dtype: str) -> bool:
        return (all(params.get(k) in v for k, v in self.values.items())
                and self.constraint(params, facts, dtype))

    def legal(self, facts: DeviceFacts, dtype: str) -> Iterator[dict[str, Any]]:
        names = list(self.values)
        for combo in itertools.product(*(self.values[n] for n in names)):
            params = dict(zip(names, combo, strict=True))
            if self.constraint(params, facts, dtype):
                yield params


@dataclass(frozen=True)
class Variant:
    """One implementation of a workload's kernels: source, kernel names, default tunables
    (each a `-D` option of the source), and the space the tuner may search."""

    name: str
    source: str
    kernels: tuple[str, ...]
    defines: dict[str, Any] = field(default_factory=dict)
    local: tuple[int, ...] | None = None  # work-group shape (None: the runtime chooses)
    about: str = ""
    space: Space | None = None


ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2}


REGISTER_FILE_MAX = 32 * 64  # bytes: the largest vector register file of a common CPU ISA


def _gemm_cpu_ok(p: dict[str, Any], facts: DeviceFacts, dtype: str) -> bool:
    # one work-item's accumulators (RB x NB vectors of VW) within what any CPU's vector
    # registers could hold; the work-group within the device's limit
    return (p["RB"] * p["NB"] * p["VW"] * ITEMSIZE[dtype] <= REGISTER_FILE_MAX
            and p["WG"] <= facts.max_work_group)


def _gemm_tiled_ok(p: dict[str, Any], facts: DeviceFacts, dtype: str) -> bool:
    ts, wpt = p["TS"], p["WPT"]
    return (ts % wpt == 0 and ts * (ts // wpt) <= facts.max_work_group
            and 2 * ts * ts * ITEMSIZE[dtype] <= facts.local_mem)


def _conv2d_ok(p: dict[str, Any], facts: DeviceFacts, dtype: str) -> bool:
    return (p["RF"] * p["VW"] * ITEMSIZE[dtype] <= REGISTER_FILE_MAX
            and p["WG"] <= facts.max_work_group)


def _stream_ok(p: dict[str, Any], facts: DeviceFacts, dtype: str) -> bool:
    return p["WG"] <= facts.max_work_group and p["VW"] * p["EPW"] <= 4096


GEMM_SPACES = {
    # In the order coordinate descent walks them: the vector shape first, the group last.
    "cpu": Space({"VW": (4, 8, 16), "NB": (1, 2, 3, 4),
                  "RB": (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16),
                  "WG": (1, 2, 4, 8, 16, 32, 64), "KU": (1, 2, 4)}, _gemm_cpu_ok),
    "tiled": Space({"TS": (8, 16, 32, 64), "WPT": (1, 2, 4, 8, 16)}, _gemm_tiled_ok),
}
CONV2D_SPACE = Space({"VW": (4, 8, 16), "RF": (1, 2, 4, 8, 16), "WG": (1, 4, 16, 64)},
                     _conv2d_ok)
STREAM_SPACE = Space({"VW": (1, 2, 4, 8, 16), "EPW": (1, 2, 4, 8, 16, 32, 64, 128, 256),
                      "CONTIG": (0, 1), "WG": (0, 16, 64, 256, 1024)}, _stream_ok)


GEMM_VARIANTS = {
    "cpu": Variant("cpu", "gemm_cpu.cl", ("pack_b", "gemm_cpu"),
                   {"RB": 8, "VW": 16, "NB": 1, "WG": 16, "KU": 1}, None,
                   "register-blocked vectors over packed B panels (CPU devices)",
                   GEMM_SPACES["cpu"]),
    "tiled": Variant("tiled", "gemm_tiled.cl", ("gemm_tiled",), {"TS": 32, "WPT": 8}, None,
                     "local-memory tiles, WPT outputs per work-item (GPUs)",
                     GEMM_SPACES["tiled"]),
    "naive": Variant("naive", "gemm_naive.cl", ("gemm_naive",), {}, None,
                     "one work-item per element (the portable baseline)"),
}
CONV2D_VARIANTS = {
    "igemm": Variant("igemm", "conv2d_igemm.cl", ("conv2d_igemm",), {"VW": 8, "RF": 4, "WG": 4},
                     None, "implicit GEMM: RF filters x VW output pixels per work-item",
                     CONV2D_SPACE),
    "direct": Variant("direct", "conv2d.cl", ("conv2d_direct",), {}, None,
                      "one work-item per output element (the naive baseline)"),
}
# The defaults are the portable baseline (one element per work-item, the runtime's work-group
# size): what the kernel does until the tuner has searched the device.
STREAM_VARIANTS = {
    "simple": Variant("simple", "stream.cl",
                      ("stream_copy", "stream_scale", "stream_add", "stream_triad"),
                      {"VW": 1, "EPW": 1, "CONTIG": 1, "WG": 0}, None,
                      "EPW vectors of VW elements per work-item", STREAM_SPACE),
}


def device_type(device: Any) -> str:
    """'cpu', 'gpu', 'accelerator' (FPGAs and other boards) or 'other'."""
    import pyopencl as cl

    t = device.type
    if t & cl.device_type.CPU:
        return "cpu"
    if t & cl.device_type.GPU:
        return "gpu"
    if t & cl.device_type.ACCELERATOR:
        return "accelerator"
    return "other"


def gemm_variant_for(device: Any) -> str:
    """The default GEMM variant for a device: the CPU kernel on CPUs, tiles elsewhere."""
    return "cpu" if device_type(device) == "cpu" else "tiled"


def tunables(variant: Variant, extra: str = "") -> dict[str, Any]:
    """The variant's defines with `-DNAME=value` overrides from extra build options: the host
    launches with the same values (e.g. rows per work-item) that the kernel is built with."""
    values = dict(variant.defines)
    for opt in shlex.split(extra):
        m = re.fullmatch(r"-D(\w+)(?:=(.*))?", opt)
        if m and m.group(1) in values:
            values[m.group(1)] = int(m.group(2)) if (m.group(2) or "").isdigit() else m.group(2)
    return values


def options_for(variant: Variant, dtype: str, extra: str = "") -> str:
    """The full build option string: the variant's tunables (as overridden by extra), the element
    type, then the rest of extra."""
    defines = tunables(variant, extra)
    defines["T"] = {"float64": "double", "float16": "half"}.get(dtype, "float")
    opts = [*BASE_OPTIONS, *(f"-D{k}={v}" for k, v in defines.items())]
    if dtype == "float64":
        opts.append("-DUSE_FP64=1")
    if dtype == "float16":
        opts.append("-DUSE_FP16=1")
    for opt in shlex.split(extra):
        m = re.fullmatch(r"-D(\w+)(?:=.*)?", opt)
        if not (m and m.group(1) in variant.defines):
            opts.append(shlex.quote(opt))
    return " ".join(opts)


@dataclass
class Built:
    """A program built for one device, and the facts of how it was built."""

    program: Any
    options: str
    origin: str  # "source" or "binary"
    path: str
    build_s: float
    reused: bool = False
    log: str = ""  # the compiler's output (warnings), kept in info rather than printed

    def kernel(self, name: str) -> Any:
        """A fresh kernel object (its own arguments) from the program."""
        import pyopencl as cl

        return cl.Kernel(self.program, name)

    def info(self) -> dict[str, Any]:
        info = {"build_options": self.options, "build_origin": self.origin,
                "build_path": self.path, "build_s": self.build_s, "build_reused": self.reused}
        if self.log:
            info["build_log"] = self.log
        return info


_cache: dict[tuple[Any, ...], Built] = {}


def _error_lines(message: str, limit: int = 3) -> str:
    """The compiler's error lines from a failed build's message, joined into one line."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    errors = [re.sub(r"^\S*?\.cl:", "line ", ln) for ln in lines
              if re.search(r"\berror\b", ln, re.IGNORECASE) and "clBuildProgram" not in ln]
    picked = errors[:limit] or lines[-limit:]
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(picked) + more


MAX_LOG = 8000  # characters of compiler output kept with a build


@contextlib.contextmanager
def _compiler_output() -> Iterator[list[str]]:
    """Collect what a build writes instead of letting it reach the run's output: pyopencl's
    CompilerWarning, and what the OpenCL compiler itself prints on file descriptor 2 (PoCL's
    clang: "1 warning generated."). The list holds that text once the block ends."""
    import pyopencl as cl

    out: list[str] = []
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", cl.CompilerWarning)
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def _build_log(program: Any, device: Any, printed: list[str]) -> str:
    import pyopencl as cl

    try:
        log = str(program.get_build_info(device, cl.program_build_info.LOG) or "")
    except (cl.Error, AttributeError):
        log = ""
    text = "\n".join(part.strip() for part in (log, *printed) if part and part.strip())
    return text[:MAX_LOG]


def build(backend: Any, variant: Variant, dtype: str = "float32", extra_options: str = "",
          binary: str = "") -> Built:
    """The variant's program on the backend's device, built once per device and options."""
    import pyopencl as cl

    device = backend.cl_device
    backend.require_dtype(dtype)  # cl_khr_fp16 / cl_khr_fp64: one line, not a build log
    options = options_for(variant, dtype, extra_options)
    src = SOURCES / variant.source
    text = "" if binary else src.read_text()
    key = (device.int_ptr, backend.context.int_ptr, variant.source,
           hashlib.sha256(text.encode()).hexdigest(), options, binary)
    if key in _cache:
        hit = _cache[key]
        hit.reused = True
        return hit
    t0 = time.perf_counter()
    if binary:
        path = Path(binary).expanduser()
        if not path.is_file():
            raise UserError(f"opencl: program binary not found: {path}")
        try:
            with _compiler_output() as printed:
                program = cl.Program(backend.context, [device], [path.read_bytes()])
                program.build(options=options)
        except (cl.LogicError, cl.RuntimeError) as exc:
            raise UserError(f"opencl: {path} is not a program binary that device {device.name!r} "
                            f"can load ({_error_lines(str(exc))})") from None
        origin, where = "binary", str(path)
    else:
        try:
            with _compiler_output() as printed:
                program = cl.Program(backend.context, text).build(options=options)
        except cl.RuntimeError as exc:
            raise UserError(f"opencl: {variant.source} failed to build on {device.name!r} with "
                            f"options '{options}': {_error_lines(str(exc))}") from None
        origin, where = "source", str(src)
    build_s = time.perf_counter() - t0
    names = set(program.kernel_names.split(";")) if program.kernel_names else set()
    missing = [k for k in variant.kernels if k not in names]
    if missing:
        raise UserError(f"opencl: {where} has no kernel {missing[0]!r} (it has: "
                        f"{', '.join(sorted(names)) or 'none'}); variant {variant.name!r} needs "
                        f"{', '.join(variant.kernels)}")
    built = Built(program, options, origin, where, build_s, log=_build_log(program, device,
                                                                            printed))
    _cache[key] = built
    return built


def save_binary(built: Built, path: str | Path) -> Path:
    """Write the built program's device binary (what an FPGA flow produces offline) to `path`."""
    p = Path(path)
    p.write_bytes(built.program.binaries[0])
    return p
