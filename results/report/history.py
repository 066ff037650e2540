"""A case across runs (`bench history`) as a terminal table and as Markdown: one row per run,
its median, the width of its 95% interval, and the steps found; then the drift."""

from __future__ import annotations

from typing import Any

from harness.text import printable
from harness.units import percent, seconds
from results.history import History

DEFINITION_CHANGED = "definition changed"  # results.definition: not comparable, never a step


def _rows(hist: History) -> list[tuple[str, str, str, str, float | str | None]]:
    """(run, started, median, CI width, change) per run, oldest first: the change is a step's
    relative size, DEFINITION_CHANGED, or None."""
    starts: dict[int, float | str] = dict(hist.steps())
    starts.update({i: DEFINITION_CHANGED for i in hist.definition_changes})
    rows = []
    for i, (rid, started, m, lo, hi) in enumerate(zip(
            hist.run_ids, hist.started_at, hist.medians, hist.ci_low, hist.ci_high, strict=True)):
        width = max(m - lo, hi - m) / m if m else float("inf")
        rows.append((rid[:8], started[:19].replace("T", " "), seconds(m), percent(width),
                     starts.get(i)))
    return rows


def _summary(hist: History) -> tuple[str, bool]:
    """The closing line, and whether the drift lies beyond the threshold."""
    drift = hist.drift()
    since = " since the definition changed" if hist.definition_changes else ""
    return (f"{len(hist.steps())} step(s) beyond ±{hist.threshold:.0%}; drift first → last "
            f"level{since} {drift * 100:+.1f}%", abs(drift) > hist.threshold)


def history_table(out: Any, hist: History) -> None:
    """Print the table and the drift line on a rich console."""
    from rich.table import Table

    from results.report.table import escape

    t = Table(title=escape(f"{hist.case_key}: {len(hist.medians)} run(s)"), title_justify="left")
    for col in ("run", "started (UTC)", "median", "95% CI", "change"):
        t.add_column(col)
    for rid, started, median, ci, step in _rows(hist):
        t.add_row(rid, started, median, ci, "" if step is None else
                  f"[yellow]{step}[/yellow]" if isinstance(step, str) else
                  f"[red]step {step * 100:+.1f}%[/red]")
    out.print(t)
    line, beyond = _summary(hist)
    out.print(line + (" [red](beyond threshold)[/red]" if beyond else ""), highlight=False)


def _cell(text: str) -> str:
    return printable(text).replace("|", "\\|").replace("`", "'")


def history_markdown(hist: History) -> str:
    """The same as Markdown (a CI job summary, a PR comment)."""
    lines = [f"### {_cell(hist.case_key)}: {len(hist.medians)} run(s)", "",
             "| run | started (UTC) | median | 95% CI | change |", "|---|---|---:|---:|---|"]
    for rid, started, median, ci, step in _rows(hist):
        mark = ("" if step is None else step if isinstance(step, str) else
                f"**step {step * 100:+.1f}%**")
        lines.append(f"| `{_cell(rid)}` | {_cell(started)} | {median} | {ci} | {mark} |")
    line, beyond = _summary(hist)
    lines += ["", line + (" **(beyond threshold)**" if beyond else "")]
    return "\n".join(lines) + "\n"
