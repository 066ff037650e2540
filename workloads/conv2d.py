"""`conv2d`: a 2-D convolution layer's forward pass (NCHW input, OIHW weights, no bias),
checked against a float64 NumPy reference. FLOPs count one multiply-add as two, as for gemm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness import Backend, CheckFailed, Param, Prepared, UserError, Work, Workload, first_call
from harness.peaks import PeakMetrics, for_backend
from kernels import array_kernels, check_dtype
from kernels.nn.reference import conv2d_reference as reference

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2}
TOLERANCE = {"float64": 1e-10, "float32": 1e-4, "float16": 2e-2}


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class Conv2d(PeakMetrics, Workload):
    name = "conv2d"
    description = "2-D convolution forward (NCHW, square kernel, zero padding)"
    params = {
        "batch": Param("int", 8, "images per call", min=1, max=65536),
        "channels": Param("int", 32, "input channels", min=1, max=65536),
        "filters": Param("int", 32, "output channels", min=1, max=65536),
        "size": Param("int", 56, "image height and width", min=1, max=16384),
        "kernel": Param("int", 3, "kernel height and width", min=1, max=31),
        "stride": Param("int", 1, "stride", min=1, max=31),
        "padding": Param("int", -1, "zero padding per side (-1: kernel // 2)", min=-1, max=31),
        "dtype": Param("str", "float32", "element type", choices=tuple(ITEMSIZE)),
        "variant": Param("str", "igemm", "OpenCL kernel variant: igemm (implicit GEMM, tuned "
                         "per device by `bench tune`) or direct (the naive kernel)",
                         choices=("igemm", "direct"), models=("opencl",), omit_default=True),
    }
    models = ("numpy", "torch", "jax", "onnxruntime", "opencl")
    default_backend = "torch:cpu"

    @staticmethod
    def _padding(params: Mapping[str, Any]) -> int:
        return params["kernel"] // 2 if params["padding"] < 0 else params["padding"]

    def validate(self, params: Mapping[str, Any], backend: str) -> None:
        check_dtype("conv2d", "conv2d", "convolution", backend, params["dtype"])
        if out_size(params["size"], params["kernel"], params["stride"], self._padding(params)) < 1:
            raise UserError(f"conv2d: a {params['kernel']}x{params['kernel']} kernel does not fit "
                            f"a {params['size']}x{params['size']} image with padding "
                            f"{self._padding(params)}")

    def work(self, params: Mapping[str, Any]) -> Work:
        n, c, f, k = params["batch"], params["channels"], params["filters"], params["kernel"]
        o = out_size(params["size"], k, params["stride"], self._padding(params))
        size = ITEMSIZE[params["dtype"]]
        moved = (n * c * params["size"] ** 2 + f * c * k * k + n * f * o * o) * size
        return Work(items=n, flops=2.0 * n * f * o * o * c * k * k, bytes=float(moved),
                    item_unit="images")

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        kern = array_kernels(backend.model)
        dtype, stride, padding = params["dtype"], params["stride"], self._padding(params)
        rng = np.random.default_rng(0)
        shape_x = (params["batch"], params["channels"], params["size"], params["size"])
        shape_w = (params["filters"], params["channels"], params["kernel"], params["kernel"])
        x = kern.to_device(backend, rng.uniform(-1, 1, shape_x), dtype)
        w = kern.to_device(backend, rng.uniform(-1, 1, shape_w) / np.sqrt(np.prod(shape_w[1:])),
                           dtype)
        op = kern.conv2d(x, w, stride, padding, **({"variant": params["variant"]}
                                                     if "variant" in params else {}))

        def check() -> None:
            got = kern.to_host(first_call(op, backend, info))
            ref = reference(kern.to_host(x), kern.to_host(w), stride, padding)
            if got.shape != ref.shape:
                raise CheckFailed(f"conv2d output has shape {got.shape}, expected {ref.shape}")
            err = np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-300)
            if not np.isfinite(err) or err > TOLERANCE[dtype]:
                raise CheckFailed(f"conv2d result differs from the float64 reference: relative "
                                  f"error {err:.3g} > {TOLERANCE[dtype]:.0e}")

        info = {**getattr(op, "info", {}), "peak": for_backend(backend, dtype)}
        return Prepared(op=op, check=check, info=info)
