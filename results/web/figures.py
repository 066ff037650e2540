"""plotly.js figures (JSON-able dicts) for the views of one run's measurements: the collective
size sweep (bus bandwidth vs message size, one line per operation and backend), the roofline
(FLOP/s vs arithmetic intensity under the devices' roofs) and scaling efficiency across runs.
Each returns None when the data it draws is absent, so that a page shows only what exists."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from results.report.collectives import sweeps

if TYPE_CHECKING:
    from harness.measurement import Measurement


def _text(value: Any) -> str:
    return html.escape(str(value), quote=False)


def sweep_figure(measurements: Iterable[Measurement]) -> dict[str, Any] | None:
    """Bus bandwidth vs message size per collective sweep (nccl-tests' busbw)."""
    traces = []
    for title, rows in sweeps(measurements):
        pts = [(m.metrics.get("size_bytes"), m.metrics.get("busbw_gbps"))
               for m in rows if m.ok]
        pts = [(x, y) for x, y in pts if x and y is not None]
        if pts:
            traces.append({"type": "scatter", "mode": "lines+markers", "name": _text(title),
                           "x": [x for x, _ in pts], "y": [y for _, y in pts]})
    if not traces:
        return None
    return {"data": traces, "layout": {
        "title": {"text": "collective sweep: bus bandwidth vs message size"},
        "xaxis": {"type": "log", "title": {"text": "message size (bytes)"}},
        "yaxis": {"title": {"text": "busbw (GB/s)"}, "rangemode": "tozero"},
        "height": 420, "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "legend": {"orientation": "h", "y": -0.25}}}


def roofline_figure(measurements: Iterable[Measurement]) -> dict[str, Any] | None:
    """Every successful measurement with FLOPs at its arithmetic intensity, under the peak
    roof of each backend (min(peak FLOP/s, intensity x peak bandwidth))."""
    by_backend: dict[str, list[tuple[float, float, str]]] = {}
    roofs: dict[str, tuple[float, float]] = {}
    for m in measurements:
        x = m.metrics
        ai, flops = x.get("arithmetic_intensity_flop_per_byte"), x.get("flops_per_s")
        if not m.ok or not ai or not flops or ai <= 0 or flops <= 0:
            continue
        by_backend.setdefault(m.backend, []).append((ai, flops, m.case_key))
        pf, pb = x.get("peak_flops_per_s"), x.get("peak_bytes_per_s")
        if pf and pb:
            roofs.setdefault(m.backend, (float(pf), float(pb)))
    if not by_backend:
        return None
    traces: list[dict[str, Any]] = []
    all_ai = [ai for pts in by_backend.values() for ai, _, _ in pts]
    lo, hi = min(all_ai) / 10, max(all_ai) * 10
    for backend, (pf, pb) in sorted(roofs.items()):
        knee = pf / pb
        xs = [v for v in (lo, knee, hi) if lo <= v <= hi] or [lo, hi]
        traces.append({"type": "scatter", "mode": "lines", "name": _text(f"peak ({backend})"),
                       "x": xs, "y": [min(pf, v * pb) for v in xs],
                       "line": {"dash": "dot"}, "hoverinfo": "name"})
    for backend, pts in sorted(by_backend.items()):
        traces.append({"type": "scatter", "mode": "markers", "name": _text(backend),
                       "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                       "text": [_text(p[2]) for p in pts], "marker": {"size": 9}})
    return {"data": traces, "layout": {
        "title": {"text": "roofline"},
        "xaxis": {"type": "log", "title": {"text": "arithmetic intensity (FLOP/byte)"}},
        "yaxis": {"type": "log", "title": {"text": "FLOP/s"}},
        "height": 420, "margin": {"l": 60, "r": 20, "t": 40, "b": 50}}}


def scaling_figure(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Scaling efficiency vs ranks per case (rows of results.report.scaling.scaling_rows)."""
    by_case: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if r.get("efficiency") is not None:
            by_case.setdefault(r["case"], []).append((r["ranks"], r["efficiency"] * 100))
    if not by_case:
        return None
    return {"data": [{"type": "scatter", "mode": "lines+markers", "name": _text(case),
                      "x": [p[0] for p in sorted(pts)], "y": [p[1] for p in sorted(pts)]}
                     for case, pts in sorted(by_case.items())],
            "layout": {"title": {"text": "scaling efficiency vs ranks"},
                       "xaxis": {"type": "log", "title": {"text": "ranks"}},
                       "yaxis": {"title": {"text": "efficiency (%)"}, "rangemode": "tozero"},
                       "height": 420, "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
                       "legend": {"orientation": "h", "y": -0.25}}}
