"""The roofline (Williams, Waterman, Patterson 2009): every measured point with FLOPs at its
arithmetic intensity (FLOP per byte moved, from the work model), under two roofs:

- the peak roof: peak FLOP/s and peak memory bandwidth of the device (the catalogue's datasheet
  figures where the device is in it, else the host's measured attainable peaks), kept with each
  measurement (`peak_flops_per_s`, `peak_bytes_per_s`; for older ones recovered from `pct_peak`),
  so the plot needs nothing beyond `results.load()`;
- the attained roof: the best FLOP/s and the best STREAM bandwidth in the runs plotted.

`bench report roofline RUN -o roofline.png` draws it; from Python, `plot_roofline(df, path)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import UserError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from results.store import Store

MARKERS = "osD^v<>pXh"


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    import pandas as pd

    return df[name] if name in df else pd.Series(np.nan, index=df.index)


def roofs(df: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """{label: (FLOP/s, bytes/s)}: the peak roof per device peak and the attained roof."""
    ok = df[df["status"] == "ok"] if "status" in df else df
    flops, bw, pct = _col(ok, "flops_per_s"), _col(ok, "bytes_per_s"), _col(ok, "pct_peak")
    memory = (_col(ok, "roof_is_memory") == 1) | ~(flops > 0)
    peak_f, peak_b = _col(ok, "peak_flops_per_s"), _col(ok, "peak_bytes_per_s")
    # measurements stored before their peaks were kept: recovered from pct_peak and the roof
    legacy = peak_f.isna() & peak_b.isna() & (pct > 0)
    peak_f = peak_f.mask(legacy & ~memory & (flops > 0), flops * 100 / pct)
    peak_b = peak_b.mask(legacy & memory & (bw > 0), bw * 100 / pct)
    by_f = peak_f.groupby(ok["backend"]).median() if "backend" in ok else {}
    by_b = peak_b.groupby(ok["backend"]).median() if "backend" in ok else {}
    out: dict[str, tuple[float, float]] = {}
    seen: set[tuple[float, float]] = set()
    for backend in sorted(set(ok["backend"]) if "backend" in ok else ()):
        f = float(by_f.get(backend, np.nan))
        b = float(by_b.get(backend, np.nan))
        if not (np.isfinite(f) and np.isfinite(b)):
            continue
        key = (round(f, -6), round(b, -6))
        if key in seen:
            continue
        seen.add(key)
        out[f"peak ({backend})"] = (f, b)
    best_f = float(flops[flops > 0].max()) if (flops > 0).any() else np.nan
    stream = ok[memory & (bw > 0)]
    best_b = float(stream["bytes_per_s"].max()) if len(stream) else float(bw.max())
    if np.isfinite(best_f) and np.isfinite(best_b):
        out["attained in these runs"] = (best_f, best_b)
    return out


def roofline_points(df: pd.DataFrame) -> pd.DataFrame:
    """The measurements a roofline plots: successful ones with FLOPs and bytes."""
    flops = _col(df, "flops_per_s")
    ai = _col(df, "arithmetic_intensity_flop_per_byte")
    status_ok = (df["status"] == "ok") if "status" in df else True
    return df[status_ok & (flops > 0) & (ai > 0)]


def roofline_figure(df: pd.DataFrame, title: str = "roofline") -> Figure:
    """The roofline of `bench report roofline` and of the HTML report: the peak roofs of the
    devices measured (catalogue or measured attainable peaks), the attained roof dashed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    points = roofline_points(df)
    if points.empty:
        raise UserError("roofline: no measurement with FLOPs and bytes in these runs "
                        "(run gemm or conv2d, e.g. bench run -w gemm -b numpy:cpu)")
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    x_lo = float(points["arithmetic_intensity_flop_per_byte"].min()) / 8
    x_hi = float(points["arithmetic_intensity_flop_per_byte"].max()) * 8
    xs = np.logspace(np.log10(x_lo), np.log10(x_hi), 200)
    for i, (label, (peak_f, peak_b)) in enumerate(roofs(df).items()):
        style = "--" if label.startswith("attained") else "-"
        ax.plot(xs, np.minimum(xs * peak_b, peak_f) / 1e9, ls=style, lw=1.2,
                color="grey" if style == "--" else f"C{i}",
                label=f"{label}: {peak_f / 1e9:.4g} GFLOP/s, {peak_b / 1e9:.4g} GB/s")
    backends = sorted(points["backend"].unique())
    workloads = sorted(points["workload"].unique())
    for bi, backend in enumerate(backends):
        for wi, workload in enumerate(workloads):
            sel = points[(points["backend"] == backend) & (points["workload"] == workload)]
            if sel.empty:
                continue
            ax.scatter(sel["arithmetic_intensity_flop_per_byte"], sel["flops_per_s"] / 1e9,
                       marker=MARKERS[wi % len(MARKERS)], color=f"C{(bi + 3) % 10}", s=36,
                       edgecolor="black", linewidth=0.4, label=f"{workload} {backend}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(title)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_roofline(df: pd.DataFrame, output: str | Path, title: str = "roofline") -> Path:
    """Draw the roofline of the measurements in `df` (from results.load) to a PNG (or any
    format matplotlib knows from the extension), written to a temporary name then renamed."""
    from results.report.plots import image_format

    out = Path(output)
    folder = out.resolve().parent
    if not folder.is_dir():
        raise UserError(f"cannot write {out}: folder {folder} does not exist")
    fmt = image_format(out, "roofline")
    fig = roofline_figure(df, title)
    tmp = folder / f".{out.name}.tmp{out.suffix}"
    fig.savefig(tmp, dpi=120, format=fmt)
    tmp.replace(out)
    return out


def render(store: Store, run_ids: list[str], output: Path, **_: Any) -> None:
    """The `bench report roofline RUN... -o FILE` kind."""
    from results.frame import load

    df = load(store, run_ids)
    title = f"roofline: run {run_ids[0][:8]}" if len(run_ids) == 1 else \
        f"roofline: {len(run_ids)} runs"
    plot_roofline(df, output, title)
