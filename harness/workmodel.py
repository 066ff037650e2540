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
