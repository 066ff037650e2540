"""The shape every collective backend has: a communicator and nccl-tests' operations.

`Collectives.prepare(coll, inputs, ...)` binds one operation to buffers made from `inputs` (one
host array per participant living in this process: one for a rank of MPI/Gloo/NCCL/gRPC, all of
them for JAX's devices) and returns a `Bound`: `run()` performs the operation once, `results()`
reads every local participant's output back as numpy arrays, `reset()` restores the inputs (an
in-place operation overwrites them).

Buffer sizes follow nccl-tests: `count` is the element count of the larger buffer — for
allgather the gathered output, for reduce-scatter and alltoall the input — so `size` in bytes is
comparable across operations.
"""

from __future__ import annotations

import mmap
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness.backends.base import Backend
from harness.workmodel import COLLECTIVE_OPS

COLLECTIVES = tuple(COLLECTIVE_OPS)
REDUCE_OPS = ("sum", "prod", "max", "min")
DTYPES = ("float32", "float64", "int32", "int64")
P2P_MODES = ("pingpong", "uni", "bi")


@dataclass(frozen=True)
class Supports:
    """What one collective backend module can do, declared once as its `SUPPORTED`: read by
    the module itself, by the workloads' validation (so a dry run refuses what a run would)
    and by `bench list`."""

    collectives: tuple[str, ...] = COLLECTIVES
    dtypes: tuple[str, ...] = DTYPES
    ops: tuple[str, ...] = REDUCE_OPS
    in_place: bool = True
    sum_only: tuple[str, ...] = ()  # collectives whose reduction can only sum

    def refusal(self, backend: str, coll: str, params: Mapping[str, Any]) -> str | None:
        """Why this backend cannot run `coll` with these parameters, or None."""
        if coll not in self.collectives:
            return f"backend {backend!r} has no {coll}; it has: {', '.join(self.collectives)}"
        dtype = params.get("dtype")
        if dtype is not None and dtype not in self.dtypes:
            return (f"backend {backend!r} has no {dtype} {coll}; its element types: "
                    f"{', '.join(self.dtypes)}")
        op = params.get("op")
        if op is not None and op not in self.ops:
            return f"backend {backend!r} has no {op} reduction; it has: {', '.join(self.ops)}"
        if op is not None and op != "sum" and coll in self.sum_only:
            return f"backend {backend!r} has only a sum {coll}: use op=sum"
        if params.get("in_place") and not self.in_place:
            return f"backend {backend!r} has immutable arrays: use in_place=false"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"collectives": list(self.collectives), "dtypes": list(self.dtypes),
                "ops": list(self.ops), "in_place": self.in_place,
                "sum_only": list(self.sum_only)}


@dataclass
class Bound:
    """One operation bound to its buffers."""

    run: Callable[[], Any]
    results: Callable[[], list[np.ndarray]]
    reset: Callable[[], None]
    info: dict[str, Any]


class Collectives(ABC):
    """A communicator among participants, and the collective operations over it."""

    size: int  # participants (the n of the bus-bandwidth factors)
    local: list[int]  # participants that live in this process

    @abstractmethod
    def barrier(self) -> None:
        """All participants meet (the backend's own barrier, not the control channel's)."""

    @abstractmethod
    def prepare(self, coll: str, inputs: list[np.ndarray], *, op: str, root: int,
                in_place: bool, mode: str, window: int = 1) -> Bound:
        """`mode` and `window` are p2p's: pingpong | uni | bi, and for uni/bi the messages in
        flight per call (OSU's window_size; the receiver reuses one buffer for all of them)."""

    def allreduce_inplace(self, buf: Any) -> None:
        """Sum `buf` (a contiguous host numpy array; torch_dist also takes a tensor) across the
        participants, in place: what data-parallel training does with its gradients."""
        raise NotImplementedError(f"{type(self).__name__} has no in-place allreduce")

    def describe(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        return None


class CollectiveBackend(Backend):
    """A backend whose point is communication: `mpi`, `gloo`, `nccl`, `grpc`."""

    devices = ("cpu",)
    collectives_cls: ClassVar[type[Collectives]]
    _comm: Collectives | None = None

    def collectives(self) -> Collectives:
        if self._comm is None:
            self._comm = self.collectives_cls(self)  # type: ignore[call-arg]
        return self._comm

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"backend": self.name}
        if self._comm is not None:
            d.update(self._comm.describe())
        return d


def out_count(coll: str, count: int, n: int) -> int:
    """Elements of a participant's output buffer for an input of `count` (nccl-tests sizes)."""
    if coll == "reduce-scatter":
        return count // n
    return count


def in_count(coll: str, count: int, n: int) -> int:
    """Elements of a participant's input buffer, where `count` is the larger buffer's."""
    if coll == "allgather":
        return count // n
    return count


def page_aligned(host: np.ndarray) -> np.ndarray:
    """A copy of `host` whose data starts on a page boundary, as OSU's and nccl-tests' buffers
    do (posix_memalign to the page size). Where malloc happens to place a buffer moves a
    shared-memory collective's time: a 256 KiB allreduce over Open MPI's vader read 42.4 us
    page-aligned and 43.0-44.9 us at other offsets, on one machine in one run."""
    raw = np.empty(host.nbytes + mmap.PAGESIZE, np.uint8)
    start = -raw.ctypes.data % mmap.PAGESIZE
    out = raw[start:start + host.nbytes].view(host.dtype).reshape(host.shape)
    out[...] = host
    return out
