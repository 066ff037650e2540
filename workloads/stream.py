"""`stream`: McCalpin's STREAM kernels (copy, scale, add, triad); bytes counted as STREAM does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness import Backend, CheckFailed, Param, Prepared, Work, Workload, first_call
from harness.peaks import PeakMetrics, for_backend
from kernels import array_kernels, check_dtype

ITEMSIZE = {"float64": 8, "float32": 4}
ARRAYS_TOUCHED = {"copy": 2, "scale": 2, "add": 3, "triad": 3}
FLOPS_PER_ELEMENT = {"copy": 0, "scale": 1, "add": 1, "triad": 2}  # triad: a multiply and an add
SCALAR = 3.0


def expected(kind: str, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return {
        "copy": lambda: a,
        "scale": lambda: SCALAR * c,
        "add": lambda: a + b,
        "triad": lambda: b + SCALAR * c,
    }[kind]()


class Stream(PeakMetrics, Workload):
    name = "stream"
    description = "STREAM memory bandwidth: copy, scale, add, triad over n elements"
    params = {
        "n": Param("int", 1 << 24, "elements per array", min=1, max=1 << 33),
        "op": Param("str", "triad", "STREAM kernel", choices=tuple(ARRAYS_TOUCHED)),
        "dtype": Param("str", "float64", "element type", choices=tuple(ITEMSIZE)),
    }
    models = ("numpy", "torch", "jax", "onnxruntime", "opencl")
    default_backend = "numpy:cpu"

    def validate(self, params: Mapping[str, Any], backend: str) -> None:
        check_dtype("stream", "stream", "STREAM kernel", backend, params["dtype"])

    def work(self, params: Mapping[str, Any]) -> Work:
        n = params["n"]
        moved = ARRAYS_TOUCHED[params["op"]] * n * ITEMSIZE[params["dtype"]]
        return Work(items=n, flops=float(FLOPS_PER_ELEMENT[params["op"]] * n),
                    bytes=float(moved), item_unit="elements")

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        kern = array_kernels(backend.model)
        n, kind, dtype = params["n"], params["op"], params["dtype"]
        rng = np.random.default_rng(0)
        host = [rng.uniform(-1, 1, n) for _ in range(3)]
        a, b, c = (kern.to_device(backend, x, dtype) for x in host)
        inputs = [kern.to_host(x) for x in (a, b, c)]
        op = kern.stream(kind, a, b, c, SCALAR)

        def check() -> None:
            got = kern.to_host(first_call(op, backend, info))
            want = expected(kind, *inputs)
            tol = 1e-12 if dtype == "float64" else 1e-6
            if not np.allclose(got, want, rtol=tol, atol=tol):
                bad = int(np.count_nonzero(~np.isclose(got, want, rtol=tol, atol=tol)))
                raise CheckFailed(f"stream {kind}: {bad} of {n} elements are wrong")

        info = {**getattr(op, "info", {}), "peak": for_backend(backend, dtype)}
        return Prepared(op=op, check=check, info=info)
