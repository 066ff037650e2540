"""`cnn-train`: one training step (forward, cross-entropy loss, backward, SGD with momentum) of
a ResNet-style CNN (kernels/nn/reference.py), on torch (eager, or compile=true) and jax (jit).

Every backend starts from the same seeded weights (NumPy, converted) and trains on the same
synthetic batch. The check: the first step's loss equals the float64 NumPy loss of the initial
weights within 1e-4 (relative), and the loss falls over the next steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import Backend, CheckFailed, Param, Prepared, Work, Workload, first_call
from harness.peaks import PeakMetrics, for_backend
from kernels.nn import nn_kernels
from kernels.nn.reference import cnn_data, cnn_forward_flops, cnn_loss, cnn_params

LOSS_RTOL = 1e-4
CHECK_STEPS = 4


class CnnTrain(PeakMetrics, Workload):
    name = "cnn-train"
    description = "One SGD-with-momentum training step of a ResNet-style CNN (float32)"
    params = {
        "depth": Param("int", 2, "residual blocks (two 3x3 convs each)", min=0, max=64),
        "width": Param("int", 16, "channels of every conv", min=1, max=1024),
        "batch": Param("int", 32, "images per step", min=1, max=4096),
        "size": Param("int", 32, "image height and width", min=4, max=1024),
        "classes": Param("int", 10, "output classes", min=2, max=100000),
        "lr": Param("float", 0.05, "learning rate", min=0.0, max=10.0),
        "momentum": Param("float", 0.9, "SGD momentum", min=0.0, max=0.999),
        "compile": Param("bool", False, "torch.compile the model", models=("torch",)),
    }
    models = ("torch", "jax")
    default_backend = "torch:cpu"

    def work(self, params: Mapping[str, Any]) -> Work:
        fwd = cnn_forward_flops(params["depth"], params["width"], params["classes"],
                                params["batch"], params["size"])
        return Work(items=params["batch"], flops=3.0 * fwd, item_unit="images")  # fwd + 2x bwd

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        weights = cnn_params(params["depth"], params["width"], params["classes"])
        x, y = cnn_data(params["batch"], params["size"], params["classes"])
        kern = nn_kernels(backend.model)
        opts = {"compile": params["compile"]} if "compile" in params else {}
        op = kern.cnn_train_step(weights, x, y, params["lr"], params["momentum"], backend,
                                 **opts)
        info: dict[str, Any] = {"peak": for_backend(backend, "float32"),
                                "flush_denormal": getattr(op, "flush_denormal", None)}

        def check() -> None:
            want = cnn_loss(weights, x, y)
            first = float(kern.to_host(first_call(op, backend, info)))  # includes compilation
            if not abs(first - want) <= LOSS_RTOL * abs(want):
                raise CheckFailed(f"cnn-train: first loss {first:.6g} differs from the float64 "
                                  f"reference {want:.6g} by more than {LOSS_RTOL:.0e} (relative)")
            losses = [first] + [float(kern.to_host(op())) for _ in range(CHECK_STEPS)]
            info["check_losses"] = losses
            if not losses[-1] < losses[0]:
                raise CheckFailed(f"cnn-train: the loss did not fall over {CHECK_STEPS} steps: "
                                  f"{', '.join(f'{v:.4g}' for v in losses)}")

        return Prepared(op=op, check=check, info=info, close=getattr(op, "close", None))
