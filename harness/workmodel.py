"""Work per iteration and the metrics derived from it: no workload computes its own rates."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from harness.stats import Summary


@dataclass(frozen=True)
class Work:
    """What one iteration of a workload does. Zero means "not applicable"."""

    items: float = 1.0
    flops: float = 0.0
    bytes: float = 0.0
    item_unit: str = "items"
    # A timed call does this many units of the work above, and every figure (samples, summary,
    # latency, rates) is per unit: p2p ping-pong's call is a round trip, two one-way trips, and
    # its latency is half the round trip (OSU's osu_latency).
    units_per_call: float = 1.0


def derive_metrics(summary: Summary, work: Work) -> dict[str, float]:
    """Metrics from the median time per iteration; every name carries its unit."""
    t = summary.median
    metrics: dict[str, float] = {"latency_s": t}
    if t <= 0:
        return metrics
    if work.items:
        metrics["items_per_s"] = work.items / t
    if work.flops:
        metrics["flops_per_s"] = work.flops / t
    if work.bytes:
        metrics["bytes_per_s"] = work.bytes / t
    if work.flops and work.bytes:  # the roofline's x axis
        metrics["arithmetic_intensity_flop_per_byte"] = work.flops / work.bytes
    return metrics


# -- collective operations: one record each, for the workloads, the fabric model and reports ----


class CheckInputs(Protocol):
    """The known inputs of a collective's correctness check and the array operations the
    expected results are made of (the workload supplies them, with numpy)."""

    root: int
    mode: str  # p2p: pingpong | uni | bi

    def of(self, rank: int, count: int) -> Any:
        """Participant `rank`'s input of `count` elements."""

    def reduce(self, arrays: Iterable[Any]) -> Any:
        """The reduction (op=sum|prod|max|min) of the arrays, element by element."""

    def concat(self, arrays: Iterable[Any]) -> Any:
        """The arrays one after another."""


# What participant `rank` of n holds after the operation, for inputs of `count` elements (the
# larger buffer's count, as nccl-tests sizes); None where nothing is defined.
Result = Callable[[CheckInputs, int, int, int], Any]
# (c_alpha, c_bytes) of the alpha-beta cost on p >= 2 ranks for m bytes: time = c_alpha * alpha
# + c_bytes / beta (Thakur, Rabenseifner and Gropp, 2005; cluster/fabric_model.py's table).
Cost = Callable[[bool, int, float], tuple[float, float]]


def _log2(p: int) -> int:
    return math.ceil(math.log2(p))


def _all_reduced(x: CheckInputs, rank: int, n: int, count: int) -> Any:
    return x.reduce(x.of(r, count) for r in range(n))


def _reduced_at_root(x: CheckInputs, rank: int, n: int, count: int) -> Any:
    return _all_reduced(x, rank, n, count) if rank == x.root else None


def _roots_input(x: CheckInputs, rank: int, n: int, count: int) -> Any:
    return x.of(x.root, count)


def _gathered(x: CheckInputs, rank: int, n: int, count: int) -> Any:
    return x.concat(x.of(r, count // n) for r in range(n))


def _own_chunk(x: CheckInputs, rank: int, n: int, count: int) -> tuple[int, int]:
    chunk = count // n
    return rank * chunk, (rank + 1) * chunk


def _reduced_chunk(x: CheckInputs, rank: int, n: int, count: int) -> Any:
    lo, hi = _own_chunk(x, rank, n, count)
    return x.reduce(x.of(r, count)[lo:hi] for r in range(n))


def _transposed(x: CheckInputs, rank: int, n: int, count: int) -> Any:
    lo, hi = _own_chunk(x, rank, n, count)
    return x.concat(x.of(r, count)[lo:hi] for r in range(n))


def _peers_input(x: CheckInputs, rank: int, n: int, count: int) -> Any:
    if rank > 1 or (x.mode == "uni" and rank == 0):  # uni: only the receiver holds data
        return None
    return x.of(1 - rank, count)


def _allreduce_cost(ring: bool, p: int, m: float) -> tuple[float, float]:
    lg = _log2(p)
    return (2 * (p - 1), 2 * (p - 1) / p * m) if ring else (2 * lg, 2 * lg * m)


def _gather_cost(ring: bool, p: int, m: float) -> tuple[float, float]:
    """allgather (recursive doubling) and reduce-scatter (recursive halving) alike."""
    return (p - 1, (p - 1) / p * m) if ring else (_log2(p), (p - 1) / p * m)


def _broadcast_cost(ring: bool, p: int, m: float) -> tuple[float, float]:
    lg = _log2(p)
    return (p - 1, m) if ring else (lg, lg * m)  # pipelined ring; binomial tree


def _alltoall_cost(ring: bool, p: int, m: float) -> tuple[float, float]:
    return (p - 1, (p - 1) / p * m)  # pairwise exchange for both


def _p2p_cost(ring: bool, p: int, m: float) -> tuple[float, float]:
    return (1.0, m)


@dataclass(frozen=True)
class CollectiveOp:
    """One collective operation as nccl-tests (doc/PERFORMANCE.md) and OSU define it."""

    name: str
    bus: str  # the bus-bandwidth factor: "2(n-1)/n", "(n-1)/n" or "1"
    result: Result = field(repr=False, compare=False)  # what the check holds each rank to
    cost: Cost | None = field(default=None, repr=False, compare=False)  # None: not modelled
    split: bool = False  # the larger buffer splits into n chunks
    reduces: bool = False  # takes a reduction (op=sum|prod|max|min)
    in_place: bool = False  # has an in-place variant (in_place=true)
    rooted: bool = False  # has a root rank
    pairwise: bool = False  # between two ranks, whatever n is (p2p)

    def bus_factor(self, n: int) -> float:
        """busbw = algbw x this: nccl-tests' formula as written, for every n (allreduce on one
        rank moves nothing over a bus: 0)."""
        if self.bus == "1":
            return 1.0
        frac = (n - 1) / n if n >= 1 else 0.0
        return 2 * frac if self.bus == "2(n-1)/n" else frac

    def expected(self, inputs: CheckInputs, rank: int, n: int, count: int) -> Any:
        """What participant `rank` of n must hold after the operation (None: nothing defined)."""
        return self.result(inputs, rank, n, count)

    def coefficients(self, algorithm: str, p: int, m: float) -> tuple[float, float] | None:
        """(c_alpha, c_bytes) with time = c_alpha * alpha + c_bytes / beta for m bytes on p
        ranks by the ring or tree algorithm; None where there is no cost model. One rank moves
        nothing (a pairwise operation always has its two)."""
        if self.cost is None:
            return None
        if p < 2 and not self.pairwise:
            return (0.0, 0.0)
        return self.cost(algorithm == "ring", p, m)


COLLECTIVE_OPS: dict[str, CollectiveOp] = {op.name: op for op in (
    CollectiveOp("allreduce", "2(n-1)/n", _all_reduced, _allreduce_cost, reduces=True,
                 in_place=True),
    CollectiveOp("allgather", "(n-1)/n", _gathered, _gather_cost, split=True),
    CollectiveOp("reduce-scatter", "(n-1)/n", _reduced_chunk, _gather_cost, split=True,
                 reduces=True),
    CollectiveOp("broadcast", "1", _roots_input, _broadcast_cost, rooted=True),
    CollectiveOp("reduce", "1", _reduced_at_root, reduces=True, in_place=True, rooted=True),
    CollectiveOp("alltoall", "(n-1)/n", _transposed, _alltoall_cost, split=True),
    CollectiveOp("p2p", "1", _peers_input, _p2p_cost, pairwise=True),
)}
# the operations the fabric model has a cost for, and those of them it can scale to n ranks
FABRIC_MODELLED = tuple(name for name, op in COLLECTIVE_OPS.items() if op.cost is not None)
SCALABLE = tuple(name for name in FABRIC_MODELLED if not COLLECTIVE_OPS[name].pairwise)


def bus_factor(collective: str, n: int) -> float:
    """nccl-tests' bus bandwidth factor of a collective among n ranks."""
    return COLLECTIVE_OPS[collective].bus_factor(n)
