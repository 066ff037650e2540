"""Work per iteration and the metrics derived from it: no workload computes its own rates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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


@dataclass(frozen=True)
class CollectiveOp:
    """One collective operation as nccl-tests (doc/PERFORMANCE.md) and OSU define it."""

    name: str
    bus: str  # the bus-bandwidth factor: "2(n-1)/n", "(n-1)/n" or "1"
    split: bool = False  # the larger buffer splits into n chunks
    reduces: bool = False  # takes a reduction (op=sum|prod|max|min)
    in_place: bool = False  # has an in-place variant (in_place=true)
    rooted: bool = False  # has a root rank

    def bus_factor(self, n: int) -> float:
        """busbw = algbw x this: nccl-tests' formula as written, for every n (allreduce on one
        rank moves nothing over a bus: 0)."""
        if self.bus == "1":
            return 1.0
        frac = (n - 1) / n if n >= 1 else 0.0
        return 2 * frac if self.bus == "2(n-1)/n" else frac


COLLECTIVE_OPS: dict[str, CollectiveOp] = {op.name: op for op in (
    CollectiveOp("allreduce", "2(n-1)/n", reduces=True, in_place=True),
    CollectiveOp("allgather", "(n-1)/n", split=True),
    CollectiveOp("reduce-scatter", "(n-1)/n", split=True, reduces=True),
    CollectiveOp("broadcast", "1", rooted=True),
    CollectiveOp("reduce", "1", reduces=True, in_place=True, rooted=True),
    CollectiveOp("alltoall", "(n-1)/n", split=True),
    CollectiveOp("p2p", "1"),
)}


def bus_factor(collective: str, n: int) -> float:
    """nccl-tests' bus bandwidth factor of a collective among n ranks."""
    return COLLECTIVE_OPS[collective].bus_factor(n)
