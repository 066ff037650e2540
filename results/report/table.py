"""Terminal tables (rich) of measurements and runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape as _markup_escape
from rich.table import Table

from harness.peaks import peak_note
from harness.text import printable
from harness.units import headline_metric, percent, seconds
from harness.workload import WARNINGS
from results.compare import round_spread
from results.runfile import jsonable

if TYPE_CHECKING:
    from harness.measurement import Measurement
    from results.stored import StoredMeasurement, StoredRun


def escape(text: str) -> str:
    """A value from the store as a table cell: control characters shown escaped (no terminal
    escape sequence reaches the terminal), rich markup inert."""
    return _markup_escape(printable(str(text)))


def _float(v: Any) -> float | None:
    if v is None:
        return None
    return float(v)


def ci_rel_of(summary: Mapping[str, Any]) -> float | None:
    if "ci_rel" in summary:
        return _float(summary["ci_rel"])
    med, lo, hi = (_float(summary.get(k)) for k in ("median", "ci_low", "ci_high"))
    if None in (med, lo, hi) or not med:
        return None
    return max(med - lo, hi - med) / med  # type: ignore[operator]


def _figures(m: Measurement) -> tuple[Any, float | None, float | None, float | None,
                                      float | None]:
    """n, median, relative CI half-width, p5 and p95 of a measurement's summary."""
    s = m.summary
    if s is not None:
        return s.n, s.median, s.ci_rel, s.p5, s.p95
    partial = m.extra.get("summary") or {}  # another tool's statistics, kept as it gave them
    return (partial.get("n"), _float(partial.get("median")), ci_rel_of(partial),
            _float(partial.get("p5")), _float(partial.get("p95")))


def _round_medians(m: Measurement) -> Any:
    return m.timing.extra.get("round_medians_s") if m.timing is not None else None


def measurements_table(rows: Iterable[Measurement], title: str | None = None) -> Table:
    """One row per measurement: its case, summary, throughput and how it was timed."""
    rows = list(rows)
    spreads = {id(r): round_spread(_round_medians(r)) for r in rows}
    with_rounds = any(v is not None for v in spreads.values())
    # "is this number normal?": % of what the reference expects, where a run has a reference
    with_expected = any("pct_expected" in r.metrics for r in rows)
    table = Table(title=title, title_justify="left")
    for col, just in (("workload", "left"), ("backend", "left"), ("params", "left"),
                      ("n", "right"), ("median", "right"),
                      ("95% CI", "right"), *((("rounds", "right"),) if with_rounds else ()),
                      ("p5", "right"), ("p95", "right"),
                      ("throughput", "right"),
                      *((("% expected", "right"),) if with_expected else ()), ("stop", "left")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    blocked = 0
    for r in rows:
        case = tuple(escape(x) for x in (
            r.workload, r.backend,
            " ".join(f"{k}={v}" for k, v in sorted((r.params or {}).items()))))
        if not r.ok:
            table.add_row(*case, "", "", "", *(("",) if with_rounds else ()), "", "", "",
                          *(("",) if with_expected else ()),
                          f"[red]{r.status}: {escape(str(r.error))}[/red]")
            continue
        unit = (r.work or {}).get("item_unit", "items")
        timing = r.timing
        n, median, ci, p5, p95 = _figures(r)
        mark = ""
        if timing is not None and "steady_state" in str(timing.block_rule):  # in every round,
            blocked += 1                                                     # or in some
            mark = f" † (singly {seconds(timing.single_call_s)})"
        table.add_row(
            *case, str(n), seconds(median) + mark, percent(ci),
            *((percent(spreads[id(r)]) if spreads[id(r)] is not None else "",)
              if with_rounds else ()),
            seconds(p5), seconds(p95), headline_metric(r.metrics, unit),
            *((_expected_cell(r),) if with_expected else ()),
            escape(timing.stop_reason or "" if timing is not None else ""),
        )
    if blocked:
        table.caption = ("† calls are not alike: the median is per call of back-to-back blocks "
                         "(≥ min_block_time); the median of single calls follows it")
    return table


def _expected_cell(r: Measurement) -> str:
    """`97.3%` of the expected value, red when the measurement fails its expectation."""
    pct = _float(r.metrics.get("pct_expected"))
    if pct is None:
        return ""
    passes = ((r.info or {}).get("expected") or {}).get("passes")
    return f"[red]{pct:.1f}%[/red]" if passes is False else f"{pct:.1f}%"


def info_lines(rows: Iterable[Measurement]) -> list[str]:
    """What measurements recorded beyond their figures, one line per case that has any: the
    compile time (a first call slower than a steady one), the OpenCL build, why a figure beats
    the peak it is held against (a working set in cache), a max-QPS search, the warnings a
    figure came with (harness.workload.WARNINGS)."""
    lines = []
    for r in rows:
        if not r.ok:
            continue
        info = r.info or {}
        parts = []
        compile_s = r.timing.compile_s if r.timing is not None else None
        if compile_s is not None and compile_s >= max(1e-3, _figures(r)[1] or 0):
            parts.append(f"compile {seconds(compile_s)} (first call beyond a steady one)")
        if "build_options" in info:
            built = seconds(_float(info.get("build_s")))
            how = ("reused" if info.get("build_reused")
                   else f"{info.get('build_origin', 'source')} {built}")
            parts.append(f"OpenCL build ({how}) options {info['build_options']!r}")
        metrics = r.metrics
        if (note := peak_note(metrics, info)) is not None:
            parts.append(note)
        if "max_qps" in info:
            plan = info.get("max_qps_plan") or {}
            size = (f"{plan['sessions']} sessions of {plan['queries']} queries: "
                    f"{plan['steps']} bisection steps, {plan['confirm']} confirmations, "
                    f"{plan['step_downs']} step-downs, {seconds(_float(plan.get('search_s')))}"
                    if plan else f"{len(info.get('max_qps_search') or [])} rates tried")
            parts.append(f"max QPS {float(info['max_qps']):.4g} ({size})")
        expected = info.get("expected") or {}
        if expected.get("passes") is False and _float(metrics.get("pct_expected")) is not None:
            tol = _float(expected.get("tolerance")) or 0.0
            parts.append(f"{float(metrics['pct_expected']):.1f}% of expected: fails "
                         f"{expected.get('metric')} {expected.get('op')} "
                         f"{_float(expected.get('value')):.4g}"
                         + (f" ± {tol:.0%}" if tol else "")
                         + f" ({expected.get('reference')})")
        parts.extend(f"warning: {w}" for w in info.get(WARNINGS) or ())
        if parts:
            lines.append(printable(f"{r.case_key}: " + "; ".join(parts)))
    return lines


def runs_table(runs: Iterable[StoredRun]) -> Table:
    table = Table()
    for col in ("run", "started (UTC)", "status", "cases", "suite", "host", "git", "tags"):
        table.add_column(col, overflow="fold")
    for r in runs:
        style = {"complete": "green", "partial": "yellow", "failed": "red"}.get(r.status, "")
        rev = escape((r.git_revision or "")[:10] + ("+" if r.git_dirty else ""))
        tags = " ".join(f"{k}={v}" for k, v in (r.tags or {}).items())
        table.add_row(escape(r.run_id[:8]), escape(r.started_at[:19].replace("T", " ")),
                      f"[{style}]{r.status}[/{style}]" if style else escape(r.status),
                      str(r.n_measurements), escape(r.suite or ""),
                      escape(r.host or ""), rev, escape(tags))
    return table


_JSON_FIELDS = ("case_key", "workload", "backend", "params", "status", "error", "summary",
                "metrics", "work", "timing", "info")


def measurement_json(m: Measurement) -> dict[str, Any]:
    """The machine-readable form of a measurement (summary in seconds), as its run file
    records it (`bench run --json`)."""
    d = m.to_dict()
    return jsonable({k: d.get(k) for k in _JSON_FIELDS})


# `bench show --json`: the summary columns in this order
SHOWN_SUMMARY = ("n", "median", "p5", "p95", "ci_low", "ci_high", "min", "max", "mean", "stdev",
                 "p25", "p75", "p99", "iqr", "ci_level", "outliers")


def stored_measurement_json(sm: StoredMeasurement) -> dict[str, Any]:
    """The machine-readable form of a stored measurement: as the store holds it (every
    summary column, None where it has none)."""
    m, columns = sm.measurement, sm.summary_columns()
    return jsonable({
        "case_key": m.case_key, "workload": m.workload, "backend": m.backend,
        "params": m.params, "status": m.status, "error": m.error,
        "summary": {c: columns[c] for c in SHOWN_SUMMARY}, "metrics": m.metrics,
        "work": m.work, "timing": m.timing.to_dict() if m.timing is not None else None,
        "info": m.info})


def comparison_table(cmp: Any, base_id: str, head_id: str,
                     extra: Sequence[tuple[str, Callable[[str], str]]] = (), label: str = "",
                     failed: dict[str, str] | None = None,
                     sides: tuple[str, str] = ("", "")) -> Table:
    """Per case: base, head, change and its interval, the verdict; `extra` columns (a name
    and a cell per case key) go before the verdict, `failed` cases (key: why) last."""
    from results.compare import IMPROVEMENT, NOISE, REGRESSION

    counts = cmp.counts()
    title = (f"{label}{base_id[:8]}{sides[0]} → {head_id[:8]}{sides[1]}: "
             f"{counts[REGRESSION]} "
             f"regression(s), {counts[IMPROVEMENT]} improvement(s), {counts[NOISE]} noise, "
             f"{counts['unchanged']} unchanged (threshold ±{cmp.threshold:.0%}, "
             f"FDR {cmp.fdr:.0%})")
    table = Table(title=title, title_justify="left")
    columns = [("case", "left"), ("base", "right"), ("head", "right"), ("change", "right"),
               ("95% CI", "right"), *((name, "right") for name, _ in extra),
               ("verdict", "left")]
    for col, just in columns:
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    style = {REGRESSION: "red", IMPROVEMENT: "green", NOISE: "yellow"}
    for c in cmp.worst_first():
        s = style.get(c.verdict, "")
        table.add_row(escape(c.case_key), seconds(c.base_median), seconds(c.head_median),
                      f"{c.change * 100:+.2f}%",
                      f"[{(c.ci_low - 1) * 100:+.2f}%, {(c.ci_high - 1) * 100:+.2f}%]",
                      *(cell(c.case_key) for _, cell in extra),
                      f"[{s}]{c.verdict}[/{s}]" if s else c.verdict)
    for key, why in (failed or {}).items():
        table.add_row(escape(key), *[""] * (len(columns) - 2),
                      f"[red]failed[/red]: {escape(why)}")
    if cmp.only_base or cmp.only_head:
        table.caption = (f"unmatched: {len(cmp.only_base)} case(s) only in base, "
                         f"{len(cmp.only_head)} only in head")
    return table


def ab_table(cmp: Any, rows: dict[str, dict[str, Any]], base_id: str, head_id: str,
             failed: dict[str, str], calibrate: bool = False) -> Table:
    """`bench ab`: the paired verdict per case, with its pairs, disturbed pairs and (A/A)
    the noise floor."""
    def floor(key: str) -> str:
        f = rows.get(key, {}).get("floor")
        return f"{f * 100:.2f}%" if f is not None and f < 1e6 else "-"

    extra = [("pairs", lambda k: str(rows.get(k, {}).get("pairs", ""))),
             ("disturbed", lambda k: str(rows.get(k, {}).get("disturbed", ""))),
             *((("floor", floor),) if calibrate else ())]
    return comparison_table(cmp, base_id, head_id, extra, "paired A/B ", failed,
                            (" (base)", " (head)"))
