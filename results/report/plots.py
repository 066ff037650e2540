"""Plots of stored results (matplotlib, Agg): each function returns a Figure or None when the
data has nothing to show for it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from results.compare import Comparison

_SIZE_PARAMS = ("size", "bytes", "n")


def _figure(width: float = 8.0, height: float = 4.0) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _label(case: str, limit: int = 60) -> str:
    return case if len(case) <= limit else case[: limit - 1] + "…"


def log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Few, short labels on a log axis over [lo, hi]: matplotlib's default labels minor ticks
    as "2×10^1" when the range spans about a decade, and those overlap once long case labels
    narrow the axes. Within a decade every integer multiple is labelled; up to ~2.5 decades
    1-2-5; beyond, powers of ten (thinned to at most 8). Plain numbers (4, 20, 0.5) where they
    are short, else 10^k."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter

    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    if decades < 0.8:
        subs: tuple[float, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    elif decades <= 2.5:
        subs = (1, 2, 5)
    else:
        subs = (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=8 if subs == (1.0,) else 30))
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=30))
    axis.set_minor_formatter(NullFormatter())
    if subs == (1.0,) and not (lo >= 1e-2 and hi <= 1e5):
        axis.set_major_formatter(LogFormatterSciNotation(base=10))
    else:
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def latency_distributions(samples: dict[str, np.ndarray], title: str) -> Figure | None:
    """Box plots (with the raw spread) of per-call time, one per case, log scale."""
    cases = [(k, v) for k, v in samples.items() if len(v)]
    if not cases:
        return None
    fig = _figure(9, max(2.5, 0.45 * len(cases) + 1.2))
    ax = fig.add_subplot()
    data = [v * 1e6 for _, v in cases]
    parts = ax.violinplot(data, vert=False, showextrema=False)
    for body in parts["bodies"]:
        body.set_alpha(0.35)
    ax.boxplot(data, orientation="horizontal", widths=0.25, showfliers=False)
    ax.set_yticks(range(1, len(cases) + 1), [_label(k) for k, _ in cases], fontsize=8)
    ax.set_xscale("log")
    log_ticks(ax.xaxis, *ax.get_xlim())
    ax.set_xlabel("time per call (µs, log scale)")
    ax.set_title(title, fontsize=10)
    ax.invert_yaxis()
    return fig


def throughput_vs_size(df: pd.DataFrame) -> Figure | None:
    """Bandwidth (or FLOP/s) against the size parameter, one line per workload x backend."""
    import json

    rows = []
    metric = next((m for m in ("busbw_gbps", "bytes_per_s", "flops_per_s") if m in df), None)
    if metric is None:
        return None
    for _, r in df.iterrows():
        params = json.loads(r["params"])
        size_key = next((k for k in _SIZE_PARAMS if isinstance(params.get(k), (int, float))), None)
        if size_key is None or not np.isfinite(r.get(metric, np.nan)):
            continue
        rest = {k: v for k, v in params.items() if k != size_key}
        series = f"{r['workload']} {r['backend']} " + " ".join(f"{k}={v}" for k, v in
                                                              sorted(rest.items()))
        rows.append((series, params[size_key], r[metric]))
    groups: dict[str, list[tuple[float, float]]] = {}
    for series, size, value in rows:
        groups.setdefault(series, []).append((size, value))
    groups = {k: sorted(v) for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return None
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    for series, points in groups.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=_label(series, 50))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("size")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs size", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def scaling_efficiency(df: pd.DataFrame) -> Figure | None:
    if "world_size" not in df or "scaling_efficiency" not in df:
        return None
    d = df.dropna(subset=["world_size", "scaling_efficiency"])
    if d.empty:
        return None
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    for (workload, backend), g in d.groupby(["workload", "backend"]):
        g = g.sort_values("world_size")
        ax.plot(g["world_size"], g["scaling_efficiency"], marker="o", label=f"{workload} {backend}")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("ranks")
    ax.set_ylabel("scaling efficiency")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=7)
    return fig


def history_trend(points: Sequence[tuple[str, float, float, float]], case: str,
                  changes: Sequence[int] = ()) -> Figure | None:
    """(label, median, ci_low, ci_high) per run in time order; change points marked."""
    if len(points) < 2:
        return None
    fig = _figure(8, 3.5)
    ax = fig.add_subplot()
    xs = np.arange(len(points))
    med = np.array([p[1] for p in points]) * 1e6
    lo = np.array([p[2] for p in points]) * 1e6
    hi = np.array([p[3] for p in points]) * 1e6
    lo = np.where(np.isfinite(lo), lo, med)
    hi = np.where(np.isfinite(hi), hi, med)
    # Rounding can put a bound a hair past the median; matplotlib refuses negative errors.
    ax.errorbar(xs, med, yerr=[np.clip(med - lo, 0, None), np.clip(hi - med, 0, None)],
                marker="o", capsize=3)
    for c in changes:
        ax.axvline(c - 0.5, color="red", ls="--", lw=1)
    ax.set_xticks(xs, [p[0] for p in points], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("median (µs)")
    ax.set_title(_label(case, 90), fontsize=10)
    return fig


def comparison_forest(cmp: Comparison, limit: int = 40) -> Figure | None:
    cases = cmp.worst_first()[:limit]
    if not cases:
        return None
    fig = _figure(8, max(2.5, 0.35 * len(cases) + 1.2))
    ax = fig.add_subplot()
    colors = {"regression": "tab:red", "improvement": "tab:green", "noise": "tab:orange",
              "unchanged": "tab:grey"}
    for i, c in enumerate(cases):
        ax.plot([(c.ci_low - 1) * 100, (c.ci_high - 1) * 100], [i, i], color=colors[c.verdict])
        ax.plot([(c.ratio - 1) * 100], [i], "o", color=colors[c.verdict])
    for x in (-cmp.threshold * 100, cmp.threshold * 100):
        ax.axvline(x, color="grey", ls="--", lw=0.8)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_yticks(range(len(cases)), [_label(c.case_key) for c in cases], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("change of median time, head vs base (%)")
    return fig


def image_format(path: Any, kind: str = "plot") -> str:
    """The image format of an output file's extension (png, svg, pdf, ...), or a UserError
    naming the extensions matplotlib writes (before anything is drawn or written)."""
    from matplotlib.backend_bases import FigureCanvasBase

    from harness.errors import UserError

    supported = sorted(FigureCanvasBase.get_supported_filetypes())
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in supported:
        raise UserError(f"cannot write a {kind} to {Path(path).name!r}: "
                        f"{'.' + fmt if fmt else 'no extension'} is not an image format; "
                        f"use one of {', '.join('.' + f for f in supported)}")
    return fmt


def to_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def save(fig: Figure, path: Any) -> None:
    fig.savefig(path, dpi=120, format=image_format(path))
