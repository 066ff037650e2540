"""Self-contained HTML reports: inline CSS, inline SVG plots, a few lines of inline JavaScript
to sort tables. Nothing is fetched from the network; everything user-supplied is escaped."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.files import write_text_atomic
from harness.peaks import peak_note
from harness.units import headline_key, headline_metric, percent, seconds
from results.report import plots
from results.report.roofline import roofline_figure, roofline_points

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from harness.measurement import Measurement
    from results.compare import Comparison
    from results.store import Store
    from results.stored import StoredMeasurement

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #f5f5f5; cursor: pointer; user-select: none; white-space: nowrap; }
th[data-dir="asc"]::after { content: " ▲"; } th[data-dir="desc"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.regression { color: #b00020; font-weight: 600; } .improvement { color: #137333; font-weight: 600; }
.noise { color: #a66a00; } .failed { color: #b00020; } .muted { color: #777; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
code { background: #f5f5f5; padding: 0 3px; }
"""

# Click a header to sort; numbers sort by the data-v attribute when present.
SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var dir = th.dataset.dir === "asc" ? "desc" : "asc";
    table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = dir;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col], y = b.cells[col];
      var xv = x.dataset.v !== undefined ? parseFloat(x.dataset.v) : x.textContent;
      var yv = y.dataset.v !== undefined ? parseFloat(y.dataset.v) : y.textContent;
      var c = (typeof xv === "number" && typeof yv === "number") ? xv - yv
              : String(xv).localeCompare(String(yv));
      return dir === "asc" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

esc = html.escape


class Page:
    def __init__(self, title: str, plots_dir: Path | None = None) -> None:
        self.title = title
        self.parts: list[str] = []
        self.plots_dir = plots_dir
        self.figures = 0

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def heading(self, text: str, level: int = 2) -> None:
        self.add(f"<h{level}>{esc(text)}</h{level}>")

    def figure(self, fig: Figure | None, name: str, caption: str = "") -> None:
        if fig is None:
            return
        self.figures += 1
        if self.plots_dir is not None:
            self.plots_dir.mkdir(parents=True, exist_ok=True)
            stem = f"{self.figures:02d}-{name}"
            plots.save(fig, self.plots_dir / f"{stem}.png")
            fig.savefig(self.plots_dir / f"{stem}.svg")
        cap = f"<figcaption class='muted'>{esc(caption)}</figcaption>" if caption else ""
        self.add(f"<figure class='plot' data-name='{esc(name)}'>{plots.to_svg(fig)}{cap}</figure>")

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """rows: cells as text, or (text, sort value, css class, title: a tooltip)."""
        out = ["<table class='sortable'><thead><tr>"]
        out += [f"<th>{esc(h)}</th>" for h in headers]
        out.append("</tr></thead><tbody>")
        for row in rows:
            out.append("<tr>")
            for cell in row:
                if isinstance(cell, tuple):
                    text, value, cls, title = (*cell, "", "")[:4]
                    v = (f" data-v='{value:.17g}'" if isinstance(value, (int, float))
                         and math.isfinite(value) else "")
                    tip = f" title='{esc(title)}'" if title else ""
                    out.append(f"<td class='num {esc(cls)}'{v}{tip}>{esc(str(text))}</td>")
                else:
                    out.append(f"<td>{esc(str(cell))}</td>")
            out.append("</tr>")
        out.append("</tbody></table>")
        self.add("".join(out))

    def html(self) -> str:
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(self.title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(self.title)}</h1>{''.join(self.parts)}"
            f"<script>{SORT_JS}</script></body></html>"
        )


def write_atomic(text: str, output: Path) -> None:
    write_text_atomic(output, text)


def _measurement_rows(ms: Sequence[StoredMeasurement]) -> list[list[Any]]:
    rows = []
    for m in ms:
        params = " ".join(f"{k}={v}" for k, v in sorted((m.params or {}).items()))
        s = m.summary
        if not m.ok or s is None:  # (a partial summary, another tool's, has no CI to show)
            rows.append([m.workload, m.backend, params, "", "", "", "", "", "",
                         ("failed: " + str(m.error), math.nan, "failed")])
            continue
        ci = s.ci_rel if s.median else math.inf
        unit = (m.work or {}).get("item_unit", "items")
        metrics = m.metrics
        rate_key = headline_key(metrics)
        timing = m.timing
        rows.append([
            m.workload, m.backend, params, (s.n, s.n),
            (seconds(s.median), s.median), (percent(ci), ci),
            (seconds(s.p5), s.p5), (seconds(s.p95), s.p95),
            (headline_metric(metrics, unit), metrics.get(rate_key, math.nan) if rate_key
             else math.nan),
            ((timing.stop_reason if timing is not None else None) or "", math.nan),
        ])
    return rows


MEASUREMENT_HEADERS = ("workload", "backend", "params", "n", "median", "95% CI", "p5", "p95",
                       "throughput", "stop")
# Percentages a measurement may carry, shown as columns where any measurement of the run has one:
# % of the peak it is held against, % of what its reference expects ("is this number normal?").
PCT_COLUMNS = (("pct_peak", "% of peak"), ("pct_expected", "% of expected"))


PEAK_MARK = "‡"  # on a % of peak that needs its note (harness.peaks.peak_note)


def _peak_note(m: Measurement | StoredMeasurement) -> str | None:
    return peak_note(m.metrics, m.info or {}) if m.status == "ok" else None


def measurement_table(ms: Sequence[StoredMeasurement]) -> tuple[list[str], list[list[Any]]]:
    """The run's measurements table: headers and rows, with the percentage columns it has;
    a % of peak that needs explaining is marked, its note as the cell's tooltip."""
    extra = [(k, h) for k, h in PCT_COLUMNS if any(k in m.metrics for m in ms)]
    rows = _measurement_rows(ms)
    for m, row in zip(ms, rows, strict=True):
        for key, _ in extra:
            v = m.metrics.get(key)
            note = _peak_note(m) if key == "pct_peak" else None
            text = (f"{v:.1f}%" if v is not None else "") + (f" {PEAK_MARK}" if note else "")
            row.insert(-1, (text, v if v is not None else math.nan, "", note or ""))
    headers = [*MEASUREMENT_HEADERS[:-1], *(h for _, h in extra), MEASUREMENT_HEADERS[-1]]
    return headers, rows


def peak_footnotes(ms: Sequence[StoredMeasurement]) -> str:
    """The notes of the marked % of peak figures, under the table (a tooltip is not printed)."""
    notes = [(m.case_key, n) for m in ms if (n := _peak_note(m))]
    return "".join(f"<p class='muted peak-note'>{PEAK_MARK} {esc(k)}: {esc(n)}</p>"
                   for k, n in notes)


def _profile_section(page: Page, run_id: str, ms: Sequence[StoredMeasurement],
                     run_dir: Path | None) -> None:
    """What `bench profile summarize` says of the run's profiled cases, top 10 operators each."""
    from results import profile as prof

    entries = [(m, prof.trace_entry(m.measurement)) for m in ms]
    entries = [(m, e) for m, e in entries if e.get("path") or e.get("error")]
    if not entries:
        return
    page.heading(f"Profiles, run {run_id[:8]}", 3)
    for m, entry in entries:
        key = m.case_key
        path = entry.get("path")
        found = prof.find_trace(path, run_id, run_dir) if path else None
        if found is None:
            why = entry.get("error") or f"trace missing: {path}"
            page.add(f"<p><b>{esc(key)}</b> <span class='muted'>{esc(why)}</span></p>")
            continue
        s = prof.summarize_file(found, top=10)
        page.add(f"<p><b>{esc(key)}</b>: {esc(s.kind)} trace, {s.steps} step(s) of "
                 f"{esc(prof.fmt_s(s.step_s))}, {esc(s.basis)} self time. "
                 f"<span class='muted'>{esc(s.note)} <code>{esc(str(found))}</code></span></p>")
        page.table(("operator", "self / step", "share", "count"),
                   [[o.name, (prof.fmt_s(o.per_step_s), o.per_step_s), (f"{o.share:.1%}", o.share),
                     (o.count, o.count)] for o in s.ops])
        if s.ranks:
            page.table(("rank", "wait", "in the operation", "wait share"),
                       [[(r.rank, r.rank), (prof.fmt_s(r.wait_s), r.wait_s),
                         (prof.fmt_s(r.op_s), r.op_s), (f"{r.wait_share:.1%}", r.wait_share)]
                        for r in s.ranks])


def render(store: Store, run_ids: list[str], output: Path, plots_dir: Path | None = None,
           run_dir: Path | None = None, **_: Any) -> None:
    from results.frame import load
    from results.history import case_history

    title = (f"accelbench report: run {run_ids[0][:8]}" if len(run_ids) == 1
             else f"accelbench report: {len(run_ids)} runs")
    page = Page(title, plots_dir)
    runs = [store.run(r) for r in run_ids]
    page.table(("run", "started (UTC)", "status", "suite", "host", "cases", "tags", "command"),
               [[r.run_id[:8], r.started_at[:19].replace("T", " "), r.status,
                 r.suite or "", r.host or "", (r.n_measurements, r.n_measurements),
                 " ".join(f"{k}={v}" for k, v in (r.tags or {}).items()), r.command]
                for r in runs])
    for run in runs:
        rid = run.run_id
        env = run.env or {}
        page.heading(f"Run {rid[:8]} ({run.status})")
        cpu = env.get("cpu", {})
        page.add(f"<p class='muted'>{esc(str(env.get('host', '')))} · "
                 f"{esc(str(cpu.get('model', '')))} · {esc(str(cpu.get('logical_cores', '')))} "
                 f"cores · libraries {esc(json.dumps(env.get('libraries', {})))} · env "
                 f"<code>{esc(str(run.env_hash or ''))}</code></p>")
        ms = store.measurements([rid])
        page.table(*measurement_table(ms))
        page.add(peak_footnotes(ms))
        page.figure(plots.latency_distributions(store.case_samples(rid),
                                                f"time per call, run {rid[:8]}"),
                    f"latency-{rid[:8]}", "Distribution of per-call times (violin) with the "
                    "median and quartiles (box).")
        _profile_section(page, rid, ms, run_dir)
    df = load(store, run_ids)
    if not df.empty:
        page.figure(plots.throughput_vs_size(df), "throughput-vs-size",
                    "Throughput against the size parameter.")
        page.figure(roofline_figure(df, "roofline") if not roofline_points(df).empty else None,
                    "roofline", "Measured points under the peak roofs of their devices "
                    "(catalogue or measured attainable peak FLOP/s and memory bandwidth); "
                    "dashed: the best attained in these runs.")
        page.figure(plots.scaling_efficiency(df), "scaling", "Scaling efficiency against ranks.")
    if len(run_ids) > 1:
        page.heading("History across these runs")
        keys = [k for k, n in df["case"].value_counts().items() if n >= 2][:12] if not \
            df.empty else []
        for i, key in enumerate(keys):
            hist = case_history(store, key, run_ids)
            page.figure(plots.history_trend(hist.points(), key, hist.change_points),
                        f"history-{i + 1}")
    write_atomic(page.html(), output)


def compare_html(cmp: Comparison, base_id: str, head_id: str,
                 env_diff: list[tuple[str, Any, Any]], warnings: Sequence[str] = ()) -> str:
    counts = cmp.counts()
    page = Page(f"accelbench compare: {base_id[:8]} → {head_id[:8]}")
    page.add(f"<p><b>{counts['regression']} regression(s)</b>, {counts['improvement']} "
             f"improvement(s), {counts['noise']} noise, {counts['unchanged']} unchanged — "
             f"threshold ±{cmp.threshold:.0%}, false-discovery rate {cmp.fdr:.0%}.</p>")
    for warning in warnings:
        page.add(f"<p class='noise'>⚠ {esc(warning)}</p>")
    if env_diff:
        page.heading("Environment differences")
        page.table(("key", "base", "head"), [[k, str(b), str(h)] for k, b, h in env_diff])
    page.heading("Cases")
    page.table(("case", "base median", "head median", "change", "CI low", "CI high", "verdict"),
               [[c.case_key, (seconds(c.base_median), c.base_median),
                 (seconds(c.head_median), c.head_median),
                 (f"{c.change * 100:+.2f}%", c.change),
                 (f"{(c.ci_low - 1) * 100:+.2f}%", c.ci_low),
                 (f"{(c.ci_high - 1) * 100:+.2f}%", c.ci_high),
                 (c.verdict, float(["regression", "noise", "improvement",
                                    "unchanged"].index(c.verdict)), c.verdict)]
                for c in cmp.worst_first()])
    page.figure(plots.comparison_forest(cmp), "comparison",
                "Change of the median with its interval; dashed lines are the threshold.")
    if cmp.only_base or cmp.only_head:
        page.heading("Unmatched cases")
        page.table(("case", "only in"), [[k, "base"] for k in cmp.only_base]
                   + [[k, "head"] for k in cmp.only_head])
    return page.html()
