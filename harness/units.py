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


def headline_metric(metrics: dict[str, float], item_unit: str = "items") -> str:
    """The figure a reader looks for: FLOP/s for compute, bytes/s for memory, else items/s."""
    if "flops_per_s" in metrics:
        return rate(metrics["flops_per_s"], "FLOP/s")
    if "bytes_per_s" in metrics:
        return rate(metrics["bytes_per_s"], "B/s")
    if "items_per_s" in metrics:
        return rate(metrics["items_per_s"], f"{item_unit}/s")
    return ""
