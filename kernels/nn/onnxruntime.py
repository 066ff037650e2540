"""The transformer in ONNX Runtime: the torch model exported with torch.onnx, run with its
input and output bound once (io_binding)."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError


def export_transformer(params: dict[str, np.ndarray], x: np.ndarray, heads: int,
                       folder: Path) -> Path:
    """The torch encoder with these weights as an ONNX file (weights beside it, .onnx.data)."""
    try:
        import torch

        from kernels.nn.torch import encoder, load
    except ImportError:
        raise UserError("transformer-infer on onnxruntime exports the torch model: "
                        "pip install 'accelbench[torch]'") from None
    model = load(encoder(params, heads), params, "cpu").eval()
    path = folder / "encoder.onnx"
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)  # the exporter logs optional-package notes as warnings
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.from_numpy(x),), str(path), input_names=["x"],
                              output_names=["out"], dynamo=True, verbose=False)
    except Exception as exc:  # the exporter raises many kinds; the first line says which
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"transformer-infer: exporting the torch model to ONNX failed: "
                        f"{type(exc).__name__}: {first}") from None
    finally:
        quiet.setLevel(level)
    return path


def transformer(params: dict[str, np.ndarray], x: np.ndarray, heads: int,
                backend: Any) -> Callable[[], Any]:
    with tempfile.TemporaryDirectory(prefix="accelbench-onnx-") as tmp:
        path = export_transformer(params, x, heads, Path(tmp))
        session = backend.session(str(path))  # reads the weights now; the folder can go
    xin = backend.ortvalue(np.ascontiguousarray(x))
    out = backend.ortvalue(np.zeros(x.shape, np.float32))
    binding = session.io_binding()
    binding.bind_ortvalue_input(session.get_inputs()[0].name, xin)
    binding.bind_ortvalue_output(session.get_outputs()[0].name, out)

    def run() -> Any:
        session.run_with_iobinding(binding)
        return out

    run.keep = (xin, session)  # type: ignore[attr-defined]
    return run


def to_host(value: Any) -> np.ndarray:
    return np.asarray(value.numpy(), dtype=np.float64)
