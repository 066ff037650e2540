"""Neural-network models per programming model, one shape each (kernels/nn/<model>.py):

- `cnn_train_step(params, x, y, lr, momentum, **opts)` -> a zero-argument op doing one SGD-with-
  momentum training step of the ResNet-style CNN in `reference.py`, returning the step's loss;
- `transformer(params, x, heads, **opts)` -> a zero-argument op running the encoder on `x`,
  returning its output.

`params` are NumPy arrays from one seeded initialisation (reference.py), converted by each model,
so every backend starts from identical weights and sees identical data.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def nn_kernels(model: str) -> ModuleType:
    return importlib.import_module(f"kernels.nn.{model}")
