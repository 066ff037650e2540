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

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness.backends.base import Backend

COLLECTIVES = ("allreduce", "allgather", "reduce-scatter", "broadcast", "reduce", "alltoall",
               "p2p")
REDUCE_OPS = ("sum", "prod", "max", "min")
P2P_MODES = ("pingpong", "uni", "bi")


@dataclass
class Bound:
    """One operation bound to its buffers."""

    run: Callable[[], Any]
    results: Callable[[], list[np.ndarray]]
    reset: Callable[[], None]
    info: dict[str, Any]


class Collectives(ABC):
    """A communicator among participants, and the collective operations over it."""

    supported: ClassVar[tuple[str, ...]] = COLLECTIVES

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
