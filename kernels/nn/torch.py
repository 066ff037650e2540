"""The reference models in PyTorch (eager, or torch.compile with compile=True)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(h + self.conv2(torch.relu(self.conv1(h))))


class CNN(nn.Module):
    def __init__(self, depth: int, width: int, classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.Sequential(*(Block(width) for _ in range(depth)))
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.relu(self.stem(x)))
        return self.fc(h.mean(dim=(2, 3)))


def load(module: nn.Module, params: dict[str, np.ndarray], device: Any) -> nn.Module:
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
    module.load_state_dict(state, strict=True)
    return module.to(device)


def cnn_train_step(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, lr: float,
                   momentum: float, backend: Any, compile: bool = False) -> Callable[[], Any]:
    from kernels.nn.reference import cnn_depth

    width, classes = params["stem.weight"].shape[0], params["fc.weight"].shape[0]
    model = load(CNN(cnn_depth(params), width, classes), params, backend.torch_device)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    tx = torch.from_numpy(x).to(backend.torch_device)
    ty = torch.from_numpy(y).to(backend.torch_device)
    forward = torch.compile(model) if compile else model
    loss_fn = nn.functional.cross_entropy

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(tx), ty)
        loss.backward()
        opt.step()
        return loss.detach()

    # As training fits the fixed batch, gradients and momenta go subnormal; x86 CPUs take ~100x
    # longer on subnormals unless they are flushed to zero, which XLA does by default. Flush
    # here too (on CPU), so that the backends are compared on the same arithmetic; `close`
    # restores the process-wide setting.
    flushed = backend.torch_device.type == "cpu" and torch.set_flush_denormal(True)
    step.flush_denormal = bool(flushed)  # type: ignore[attr-defined]
    step.close = (lambda: torch.set_flush_denormal(False)) if flushed else None  # type: ignore
    return step


def encoder(params: dict[str, np.ndarray], heads: int) -> nn.Module:
    from kernels.nn.reference import transformer_layers

    d = params["layers.0.self_attn.in_proj_weight"].shape[1]
    ff = params["layers.0.linear1.weight"].shape[0]
    layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="relu",
                                       batch_first=True, norm_first=False)
    model = nn.TransformerEncoder(layer, transformer_layers(params), enable_nested_tensor=False)
    return model


def transformer(params: dict[str, np.ndarray], x: np.ndarray, heads: int,
                backend: Any) -> Callable[[], Any]:
    model = load(encoder(params, heads), params, backend.torch_device).eval()
    tx = torch.from_numpy(x).to(backend.torch_device)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(tx)

    return run


def to_host(value: Any) -> np.ndarray:
    return value.detach().to(torch.float64).cpu().numpy()
