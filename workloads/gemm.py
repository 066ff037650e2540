"""`gemm`: C = A @ B, with 2·m·n·k FLOPs per call, checked against a float64 NumPy reference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness import Backend, CheckFailed, Param, Prepared, UserError, Work, Workload, first_call
from harness.peaks import PeakMetrics, for_backend
from kernels import array_kernels

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
# Relative Frobenius-norm error allowed against the float64 reference.
TOLERANCE = {"float64": 1e-10, "float32": 1e-4, "float16": 2e-2, "bfloat16": 5e-2}
# Element types each backend model multiplies in.
DTYPES = {
    "numpy": ("float64", "float32", "float16"),
    "torch": ("float64", "float32", "float16", "bfloat16"),
    "jax": ("float64", "float32", "float16", "bfloat16"),
    "onnxruntime": ("float64", "float32", "float16"),
    "opencl": ("float64", "float32", "float16"),  # float16 where the device has cl_khr_fp16
}
OPENCL_ONLY = ("opencl",)


class Gemm(PeakMetrics, Workload):
    name = "gemm"
    description = "Dense matrix multiply C = A @ B (m x k times k x n)"
    params = {
        "m": Param("int", 256, "rows of A and C", min=1, max=65536),
        "n": Param("int", 256, "columns of B and C", min=1, max=65536),
        "k": Param("int", 256, "columns of A, rows of B", min=1, max=65536),
        "dtype": Param("str", "float32", "element type", choices=tuple(ITEMSIZE)),
        "variant": Param("str", "auto", "OpenCL kernel variant (auto: by device type)",
                         choices=("auto", "cpu", "tiled", "naive"), models=OPENCL_ONLY,
                         omit_default=True),
        "binary": Param("str", "", "OpenCL program binary to load instead of building the "
                        "source (FPGA flows: .aocx, .xclbin)", models=OPENCL_ONLY,
                        omit_default=True),
        "build_options": Param("str", "", "extra OpenCL build options, e.g. -DRB=4",
                               models=OPENCL_ONLY, omit_default=True),
    }
    models = ("numpy", "torch", "jax", "onnxruntime", "opencl")
    default_backend = "numpy:cpu"

    def validate(self, params: Mapping[str, Any], backend: str) -> None:
        model = backend.split(":", 1)[0]
        dtype = params["dtype"]
        if model in DTYPES and dtype not in DTYPES[model]:
            raise UserError(f"gemm: {model} has no {dtype} matrix multiply (on {backend}); "
                            f"use dtype={' or '.join(DTYPES[model])}")

    def validate_device(self, params: Mapping[str, Any], backend: Backend) -> None:
        if backend.model == "opencl":
            from kernels.opencl.build import require_dtype

            require_dtype(backend.cl_device, params["dtype"])

    def work(self, params: Mapping[str, Any]) -> Work:
        m, n, k = params["m"], params["n"], params["k"]
        size = ITEMSIZE[params["dtype"]]
        return Work(items=1, flops=2.0 * m * n * k, bytes=float((m * k + k * n + m * n) * size),
                    item_unit="matmuls")

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        kern = array_kernels(backend.model)
        m, n, k, dtype = params["m"], params["n"], params["k"], params["dtype"]
        rng = np.random.default_rng(0)
        a_host = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b_host = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        a = kern.to_device(backend, a_host, dtype)
        b = kern.to_device(backend, b_host, dtype)
        options = {k: params[k] for k in ("variant", "binary", "build_options") if k in params}
        op = kern.gemm(a, b, **options)

        def check() -> None:
            got = kern.to_host(first_call(op, backend, info))
            # Reference from the inputs as the backend holds them (already rounded to dtype).
            ref = kern.to_host(a) @ kern.to_host(b)
            err = np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-300)
            if not np.isfinite(err) or err > TOLERANCE[dtype]:
                raise CheckFailed(
                    f"gemm result differs from the float64 reference: relative error {err:.3g} "
                    f"> {TOLERANCE[dtype]:.0e}"
                )

        info = {**getattr(op, "info", {}), "peak": for_backend(backend, dtype)}
        return Prepared(op=op, check=check, info=info)
