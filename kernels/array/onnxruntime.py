"""ONNX Runtime kernels: each op is a one- or two-node ONNX graph built with the onnx helper API,
run in a session on the backend's execution provider with inputs and output bound once
(io_binding), so a call runs the graph and nothing else."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import TensorProto, helper

# The element types each kernel of this module computes in (workloads validate against it).
KERNEL_DTYPES = {"gemm": ("float64", "float32", "float16"),
                 "stream": ("float64", "float32"),
                 "conv2d": ("float32", "float16")}
DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
ONNX_TYPES = {np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.float32): TensorProto.FLOAT,
              np.dtype(np.float16): TensorProto.FLOAT16}
OPSET = 17


@dataclass
class OrtArray:
    """A tensor where the backend's execution provider keeps it (an OrtValue)."""

    backend: Any
    value: Any  # onnxruntime.OrtValue
    dtype: np.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape())


def graph_model(nodes: Sequence[Any], inputs: dict[str, OrtArray], out_shape: Sequence[int],
                elem: int, initializers: Sequence[Any] = ()) -> bytes:
    """A serialized ONNX model of `nodes` with named inputs and one output `out`."""
    graph = helper.make_graph(
        list(nodes), "accelbench",
        [helper.make_tensor_value_info(n, elem, list(x.shape)) for n, x in inputs.items()],
        [helper.make_tensor_value_info("out", elem, list(out_shape))],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="accelbench")
    model.ir_version = 8  # readable by every onnxruntime since 1.10
    return model.SerializeToString()


def bound_op(backend: Any, model: bytes, inputs: dict[str, OrtArray],
             out_shape: Sequence[int], dtype: Any) -> Callable[[], OrtArray]:
    """A session for `model` with inputs and a preallocated output bound; the op runs it."""
    session = backend.session(model)
    out = backend.ortvalue(np.zeros(tuple(out_shape), dtype=dtype))
    binding = session.io_binding()
    for name, x in inputs.items():
        binding.bind_ortvalue_input(name, x.value)
    binding.bind_ortvalue_output("out", out)
    result = OrtArray(backend, out, np.dtype(dtype))

    def op() -> OrtArray:
        session.run_with_iobinding(binding)
        return result

    return op


def gemm(a: OrtArray, b: OrtArray) -> Callable[[], Any]:
    elem = ONNX_TYPES[a.dtype]
    shape = (a.shape[0], b.shape[1])
    model = graph_model([helper.make_node("MatMul", ["a", "b"], ["out"])], {"a": a, "b": b},
                        shape, elem)
    return bound_op(a.backend, model, {"a": a, "b": b}, shape, a.dtype)


def stream(kind: str, a: OrtArray, b: OrtArray, c: OrtArray, scalar: float):
    elem = ONNX_TYPES[a.dtype]
    s = helper.make_tensor("s", elem, [], np.asarray([scalar], dtype=a.dtype).tobytes(), raw=True)
    nodes, inputs, inits = {
        "copy": ([helper.make_node("Identity", ["a"], ["out"])], {"a": a}, []),
        "scale": ([helper.make_node("Mul", ["c", "s"], ["out"])], {"c": c}, [s]),
        "add": ([helper.make_node("Add", ["a", "b"], ["out"])], {"a": a, "b": b}, []),
        "triad": ([helper.make_node("Mul", ["c", "s"], ["sc"]),
                   helper.make_node("Add", ["b", "sc"], ["out"])], {"b": b, "c": c}, [s]),
    }[kind]
    model = graph_model(nodes, inputs, a.shape, elem, inits)
    return bound_op(a.backend, model, inputs, a.shape, a.dtype)


def conv2d(x: OrtArray, w: OrtArray, stride: int, padding: int) -> Callable[[], Any]:
    n, _, h, _ = x.shape
    f, _, k, _ = w.shape
    o = (h + 2 * padding - k) // stride + 1
    node = helper.make_node("Conv", ["x", "w"], ["out"], kernel_shape=[k, k],
                            strides=[stride, stride], pads=[padding] * 4)
    inputs = {"x": x, "w": w}
    model = graph_model([node], inputs, (n, f, o, o), ONNX_TYPES[x.dtype])
    return bound_op(x.backend, model, inputs, (n, f, o, o), x.dtype)


def to_device(backend: Any, array: np.ndarray, dtype: str) -> OrtArray:
    host = np.ascontiguousarray(array, dtype=DTYPES[dtype])
    return OrtArray(backend, backend.ortvalue(host), host.dtype)


def to_host(value: OrtArray) -> np.ndarray:
    return np.asarray(value.value.numpy(), dtype=np.float64)
