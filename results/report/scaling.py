"""Scaling efficiency across runs at different world sizes (`bench report scaling RUN... -o F`).

Cases are matched by case key across the runs; for each, the run with the fewest ranks is the
baseline (normally 1). Efficiency E(n) = throughput(n) / ((n / n0) × throughput(n0)): for weak
scaling (work per rank fixed) that is DESIGN's throughput(n) / (n × throughput(1)); for strong
scaling (global work fixed) it equals T(1) / (n × T(n)). The communication share is the
allreduce time per step over the step time, where the workload measures it (`dp-train`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from harness.units import percent, rate, seconds

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from results.store import Store
    from results.stored import StoredMeasurement, StoredRun


def _ranks(m: StoredMeasurement, header: StoredRun) -> int:
    metrics = m.metrics
    for key in ("world_size", "ranks"):
        if metrics.get(key):
            return int(metrics[key])
    return int((header.env or {}).get("cluster", {}).get("world_size") or 1)


def _throughput(metrics: dict[str, Any]) -> float | None:
    for key in ("samples_per_s", "items_per_s"):
        if metrics.get(key):
            return float(metrics[key])
    return None


def scaling_rows(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """One row per case and world size, with speed-up and efficiency against the smallest.

    Collectives are left out: n ranks do not do n times the work of one, so operations per
    second over n x those of the fewest ranks is no efficiency (their figure across ranks is
    the bus bandwidth). Runs that hold nothing else are a UserError."""
    from harness.errors import UserError
    from harness.workmodel import COLLECTIVE_OPS

    by_case: dict[str, dict[int, StoredMeasurement]] = {}
    collectives = 0
    for run_id in run_ids:
        header = store.run(run_id)
        for m in store.measurements([run_id]):
            if not m.ok:
                continue
            if m.workload in COLLECTIVE_OPS:
                collectives += 1
                continue
            by_case.setdefault(m.case_key, {})[_ranks(m, header)] = m
    if collectives and not by_case:
        raise UserError(f"report scaling: run(s) {', '.join(r[:8] for r in run_ids)} hold "
                        "only collective measurements, whose scaling is not a throughput "
                        "efficiency; compare their bus bandwidth across ranks (bench show) or "
                        "fit a fabric model (bench fabric-model fit)")
    rows = []
    for case, sizes in by_case.items():
        n0 = min(sizes)
        base = _throughput(sizes[n0].metrics)
        for n in sorted(sizes):
            m = sizes[n]
            metrics = m.metrics
            thr = _throughput(metrics)
            speedup = thr / base if thr and base else None
            rows.append({
                "case": case, "ranks": n, "run": m.run_id, "step_s": m.median,
                "throughput": thr, "unit": (m.work or {}).get("item_unit", "items"),
                "speedup": speedup,
                "efficiency": speedup / (n / n0) if speedup else None,
                "comm_share": metrics.get("comm_share"), "comm_s": metrics.get("comm_s"),
            })
    return rows


def scaling_markdown(rows: list[dict[str, Any]]) -> str:
    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.4g}"

    lines = ["| case | ranks | step s | throughput | efficiency | comm share |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['case']} | {r['ranks']} | {num(r['step_s'])} | "
              f"{num(r['throughput'])} | {num(r['efficiency'])} | {num(r['comm_share'])} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def scaling_table(store: Store, run_ids: list[str]) -> Table:
    table = Table(title="scaling efficiency (vs the fewest ranks of each case)",
                  title_justify="left")
    for col, just in (("case", "left"), ("ranks", "right"), ("step", "right"),
                      ("throughput", "right"), ("speed-up", "right"), ("efficiency", "right"),
                      ("comm share", "right"), ("run", "left")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for r in scaling_rows(store, run_ids):
        table.add_row(
            escape(r["case"]), str(r["ranks"]), seconds(r["step_s"]),
            rate(r["throughput"], f"{r['unit']}/s") if r["throughput"] else "-",
            f"{r['speedup']:.2f}x" if r["speedup"] else "-",
            f"{r['efficiency'] * 100:.1f}%" if r["efficiency"] else "-",
            percent(r["comm_share"]).lstrip("±") if r["comm_share"] is not None else "-",
            r["run"][:8])
    return table


def scaling_figure(rows: list[dict[str, Any]]) -> Figure | None:
    """Efficiency vs ranks (lines) over the communication share of the step (bars)."""
    rows = [r for r in rows if r["efficiency"] is not None]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    cases = sorted({r["case"] for r in rows})
    width = 0.8 / max(1, len(cases))
    for i, case in enumerate(cases):
        pts = [r for r in rows if r["case"] == case]
        xs = [r["ranks"] for r in pts]
        line = ax.plot(xs, [r["efficiency"] * 100 for r in pts], marker="o",
                       label=case if len(case) < 60 else case[:59] + "…")[0]
        shares = [(r["ranks"], r["comm_share"]) for r in pts if r["comm_share"] is not None]
        if shares:
            ax.bar([x + (i - (len(cases) - 1) / 2) * width for x, _ in shares],
                   [s * 100 for _, s in shares], width=width, alpha=0.3,
                   color=line.get_color())
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("ranks")
    ax.set_ylabel("efficiency % (line), communication share % (bars)")
    ax.set_xticks(sorted({r["ranks"] for r in rows}))
    ax.set_ylim(0, max(110, max(r["efficiency"] * 100 for r in rows) + 10))
    ax.legend(fontsize=7)
    return fig


def render(store: Store, run_ids: list[str], output: Path, *,
           write: Callable[..., None], **_: Any) -> None:
    """Print the table; write the rows as JSON or the table as Markdown (.md, .txt) through
    `write` (harness.cli.render.emit_to: the format the name says), or the plot as PNG/SVG."""
    from rich.console import Console

    suffix = output.suffix.lower()
    text = suffix in (".json", ".md", ".txt")
    if not text:
        from results.report.plots import image_format

        image_format(output, "scaling plot (or .json, .md, .txt table)")
    rows = scaling_rows(store, run_ids)
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(scaling_table(store, run_ids))
    if text:
        write(output, json=lambda: rows, markdown=lambda: scaling_markdown(rows))
    else:
        fig = scaling_figure(rows)
        if fig is None:
            from harness.errors import UserError

            raise UserError("nothing to plot: no case was measured at two world sizes")
        fig.savefig(output, format=suffix.lstrip("."))
