"""The reference models in JAX: pure functions of the parameter pytree, jit-compiled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kernels.nn.reference import cnn_depth, transformer_forward


def _conv(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    y = jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None, :, None, None]


def cnn_logits(p: dict[str, jax.Array], x: jax.Array, depth: int) -> jax.Array:
    h = jax.nn.relu(_conv(x, p["stem.weight"], p["stem.bias"]))
    for i in range(depth):
        r = jax.nn.relu(_conv(h, p[f"blocks.{i}.conv1.weight"], p[f"blocks.{i}.conv1.bias"]))
        h = jax.nn.relu(h + _conv(r, p[f"blocks.{i}.conv2.weight"], p[f"blocks.{i}.conv2.bias"]))
    return h.mean(axis=(2, 3)) @ p["fc.weight"].T + p["fc.bias"]


def cnn_train_step(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, lr: float,
                   momentum: float, backend: Any) -> Callable[[], Any]:
    depth = cnn_depth(params)
    put = lambda a: jax.device_put(a, backend.jax_device)  # noqa: E731
    state = {"p": {k: put(v) for k, v in params.items()},
             "m": {k: put(np.zeros_like(v)) for k, v in params.items()}}
    jx, jy = put(x), put(y.astype(np.int32))

    def loss_fn(p: dict[str, jax.Array]) -> jax.Array:
        logp = jax.nn.log_softmax(cnn_logits(p, jx, depth))
        return -jnp.take_along_axis(logp, jy[:, None], axis=1).mean()

    @jax.jit
    def step(p: dict[str, jax.Array], m: dict[str, jax.Array]) -> tuple[Any, Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(p)
        # torch.optim.SGD's momentum: v = mu * v + g; p = p - lr * v
        m = jax.tree_util.tree_map(lambda v, g: momentum * v + g, m, grads)
        p = jax.tree_util.tree_map(lambda w, v: w - lr * v, p, m)
        return p, m, loss

    def run() -> jax.Array:
        state["p"], state["m"], loss = step(state["p"], state["m"])
        return loss

    return run


def transformer(params: dict[str, np.ndarray], x: np.ndarray, heads: int,
                backend: Any) -> Callable[[], Any]:
    p = {k: jax.device_put(v, backend.jax_device) for k, v in params.items()}
    jx = jax.device_put(x, backend.jax_device)
    fwd = jax.jit(lambda p, x: transformer_forward(jnp, p, x, heads))
    return lambda: fwd(p, jx)


def to_host(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)
