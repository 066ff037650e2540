"""Human units for seconds and rates (SI prefixes; bytes in decimal GB/s as STREAM reports)."""

from __future__ import annotations

import math

_PREFIXES = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")]


def seconds(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value * 1e9:.4g} ns"


def rate(value: float, unit: str) -> str:
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def percent(fraction: float | None) -> str:
    if fraction is None or not math.isfinite(fraction):
        return "n/a"
    return f"±{fraction * 100:.2f}%"


# Below this arithmetic intensity (FLOP/byte) work is memory-bound on every device we know
# (ridge points: CPUs ~2-10, GPUs ~10-300): its headline is bandwidth where no roof says.
MEMORY_BOUND_INTENSITY = 1.0


def headline_key(metrics: dict[str, float]) -> str | None:
    """The metric a reader looks for: bandwidth for memory-bound work (STREAM, even with its
    FLOPs), FLOP/s for compute, else items/s."""
    ai = metrics.get("arithmetic_intensity_flop_per_byte")
    memory = metrics.get("roof_is_memory")
    if memory is None:
        memory = ai is not None and float(ai) < MEMORY_BOUND_INTENSITY
    if "bytes_per_s" in metrics and (memory or "flops_per_s" not in metrics):
        return "bytes_per_s"
    return next((k for k in ("flops_per_s", "bytes_per_s", "items_per_s") if k in metrics), None)


def headline_metric(metrics: dict[str, float], item_unit: str = "items") -> str:
    """The figure a reader looks for (see headline_key), with its unit."""
    key = headline_key(metrics)
    if key is None:
        return ""
    unit = {"flops_per_s": "FLOP/s", "bytes_per_s": "B/s"}.get(key, f"{item_unit}/s")
    return rate(metrics[key], unit)
