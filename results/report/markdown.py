"""Markdown for a CI job summary or a PR comment: compact, worst first."""

from __future__ import annotations

from typing import Any

from harness.text import printable
from harness.units import seconds
from results.compare import IMPROVEMENT, NOISE, REGRESSION, UNCHANGED, Comparison

ICON = {REGRESSION: "🔴", IMPROVEMENT: "🟢", NOISE: "🟡", UNCHANGED: "⚪"}


def _cell(text: str) -> str:
    return printable(text).replace("|", "\\|").replace("`", "'")


def _pct(x: float) -> str:
    return f"{(x - 1) * 100:+.1f}%"


def compare_markdown(cmp: Comparison, base_id: str, head_id: str,
                     env_diff: list[tuple[str, Any, Any]], warnings: list[str] | None = None,
                     limit: int = 50, title: str = "accelbench compare") -> str:
    counts = cmp.counts()
    lines = [
        f"### {title}: `{base_id[:8]}` → `{head_id[:8]}`",
        "",
        (f"**{counts[REGRESSION]} regression(s)**, {counts[IMPROVEMENT]} improvement(s), "
         f"{counts[NOISE]} noise, {counts[UNCHANGED]} unchanged — threshold "
         f"±{cmp.threshold:.0%}, false-discovery rate {cmp.fdr:.0%}, "
         f"{cmp.level:.0%} intervals of head/base median time"),
        "",
        *(f"> ⚠️ {_cell(w)}\n" for w in warnings or []),
    ]
    shown = [c for c in cmp.worst_first() if c.verdict != UNCHANGED][:limit]
    if shown:
        lines += ["| | case | base | head | change | CI |", "|---|---|---|---|---|---|"]
        for c in shown:
            lines.append(
                f"| {ICON[c.verdict]} {c.verdict} | `{_cell(c.case_key)}` | "
                f"{seconds(c.base_median)} | {seconds(c.head_median)} | {_pct(c.ratio)} | "
                f"[{_pct(c.ci_low)}, {_pct(c.ci_high)}] |")
        hidden = len([c for c in cmp.cases if c.verdict != UNCHANGED]) - len(shown)
        if hidden > 0:
            lines.append(f"\n… and {hidden} more; see the JSON or HTML report.")
    else:
        lines.append("No case changed beyond the threshold.")
    if cmp.only_base or cmp.only_head:
        lines += ["", f"Unmatched cases: {len(cmp.only_base)} only in base, "
                      f"{len(cmp.only_head)} only in head."]
    if env_diff:
        lines += ["", f"<details><summary>Environment differences ({len(env_diff)})</summary>",
                  "", "| key | base | head |", "|---|---|---|"]
        for key, b, h in env_diff[:40]:
            lines.append(f"| `{_cell(key)}` | {_cell(str(b))} | {_cell(str(h))} |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
