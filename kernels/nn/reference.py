"""The models' definitions, seeded initialisation and float64 NumPy forward passes (the
references the other backends are checked against).

CNN (ResNet-style, no normalisation layers, so every backend computes the same function):
  stem 3x3 conv (3 -> width) + ReLU; `depth` residual blocks of two 3x3 convs
  (h = relu(h + conv2(relu(conv1(h))))); global average pool; linear to `classes`;
  softmax cross-entropy loss, mean over the batch.
Transformer encoder (as torch.nn.TransformerEncoderLayer, batch_first, post-norm, ReLU,
  no dropout): x = LN(x + MHA(x)); x = LN(x + W2 relu(W1 x)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

LN_EPS = 1e-5


def cnn_params(depth: int, width: int, classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """He-initialised weights (float32), small random biases."""
    rng = np.random.default_rng(seed)

    def conv(cin: int, cout: int) -> tuple[np.ndarray, np.ndarray]:
        w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
        return w.astype(np.float32), (0.01 * rng.standard_normal(cout)).astype(np.float32)

    p: dict[str, np.ndarray] = {}
    p["stem.weight"], p["stem.bias"] = conv(3, width)
    for i in range(depth):
        for j in (1, 2):
            w, b = conv(width, width)
            if j == 2:
                w *= 0.5  # keeps the residual stream's scale as depth grows
            p[f"blocks.{i}.conv{j}.weight"], p[f"blocks.{i}.conv{j}.bias"] = w, b
    p["fc.weight"] = (rng.standard_normal((classes, width)) / np.sqrt(width)).astype(np.float32)
    p["fc.bias"] = np.zeros(classes, np.float32)
    return p


def cnn_data(batch: int, size: int, classes: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    y = rng.integers(0, classes, batch).astype(np.int64)
    return x, y


def conv2d_reference(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Direct convolution in float64: im2col by strided views, then one tensordot."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # n, c, oh, ow, kh, kw
    return np.einsum("ncyxij,ocij->noyx", win, np.asarray(w, np.float64), optimize=True)


def cnn_depth(params: dict[str, Any]) -> int:
    return sum(1 for k in params if k.endswith(".conv1.weight"))


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return conv2d_reference(x, w, 1, 1) + np.asarray(b, np.float64)[None, :, None, None]


def cnn_loss(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """The CNN's mean cross-entropy loss in float64."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h = np.maximum(_conv(x, p["stem.weight"], p["stem.bias"]), 0)
    for i in range(cnn_depth(p)):
        r = np.maximum(_conv(h, p[f"blocks.{i}.conv1.weight"], p[f"blocks.{i}.conv1.bias"]), 0)
        r = _conv(r, p[f"blocks.{i}.conv2.weight"], p[f"blocks.{i}.conv2.bias"])
        h = np.maximum(h + r, 0)
    logits = h.mean(axis=(2, 3)) @ p["fc.weight"].T + p["fc.bias"]
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def cnn_forward_flops(depth: int, width: int, classes: int, batch: int, size: int) -> float:
    per_pixel = 2 * 9 * (3 * width + 2 * depth * width * width)
    return float(batch * (size * size * per_pixel + 2 * width * classes))


# -- transformer ---------------------------------------------------------------------------------


def transformer_params(layers: int, d_model: int, ff: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every layer's own random weights (float32), named as torch's TransformerEncoder names them
    (`layers.{i}.self_attn.in_proj_weight`, ...)."""
    rng = np.random.default_rng(seed)

    def dense(out: int, inp: int) -> np.ndarray:
        return (rng.standard_normal((out, inp)) / np.sqrt(inp)).astype(np.float32)

    def small(n: int, scale: float = 0.02, base: float = 0.0) -> np.ndarray:
        return (base + scale * rng.standard_normal(n)).astype(np.float32)

    p: dict[str, np.ndarray] = {}
    for i in range(layers):
        pre = f"layers.{i}."
        p[pre + "self_attn.in_proj_weight"] = dense(3 * d_model, d_model)
        p[pre + "self_attn.in_proj_bias"] = small(3 * d_model)
        p[pre + "self_attn.out_proj.weight"] = dense(d_model, d_model)
        p[pre + "self_attn.out_proj.bias"] = small(d_model)
        p[pre + "linear1.weight"] = dense(ff, d_model)
        p[pre + "linear1.bias"] = small(ff)
        p[pre + "linear2.weight"] = dense(d_model, ff)
        p[pre + "linear2.bias"] = small(d_model)
        for n in ("norm1", "norm2"):
            p[pre + f"{n}.weight"] = small(d_model, 0.1, 1.0)
            p[pre + f"{n}.bias"] = small(d_model)
    return p


def transformer_layers(params: dict[str, Any]) -> int:
    return sum(1 for k in params if k.endswith("self_attn.in_proj_weight"))


def transformer_forward(xp: Any, params: dict[str, Any], x: Any, heads: int) -> Any:
    """The encoder on `x` (batch, seq, d_model) with array namespace `xp` (numpy or jax.numpy)."""
    b, s, d = x.shape
    dh = d // heads

    def ln(h: Any, w: Any, bias: Any) -> Any:
        mu = h.mean(axis=-1, keepdims=True)
        var = ((h - mu) ** 2).mean(axis=-1, keepdims=True)
        return (h - mu) / xp.sqrt(var + LN_EPS) * w + bias

    for i in range(transformer_layers(params)):
        p = {k[len(f"layers.{i}."):]: v for k, v in params.items()
             if k.startswith(f"layers.{i}.")}
        qkv = x @ p["self_attn.in_proj_weight"].T + p["self_attn.in_proj_bias"]
        q, k, v = (qkv[..., j * d:(j + 1) * d].reshape(b, s, heads, dh).transpose(0, 2, 1, 3)
                   for j in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
        scores = scores - scores.max(axis=-1, keepdims=True)
        weights = xp.exp(scores)
        weights = weights / weights.sum(axis=-1, keepdims=True)
        attn = (weights @ v).transpose(0, 2, 1, 3).reshape(b, s, d)
        attn = attn @ p["self_attn.out_proj.weight"].T + p["self_attn.out_proj.bias"]
        x = ln(x + attn, p["norm1.weight"], p["norm1.bias"])
        hidden = xp.maximum(x @ p["linear1.weight"].T + p["linear1.bias"], 0)
        x = ln(x + hidden @ p["linear2.weight"].T + p["linear2.bias"], p["norm2.weight"],
               p["norm2.bias"])
    return x


def transformer_flops(layers: int, d_model: int, ff: int, seq: int, batch: int) -> float:
    per_layer = 2 * seq * d_model * (3 * d_model + d_model + 2 * ff) + 4 * seq * seq * d_model
    return float(batch * layers * per_layer)
