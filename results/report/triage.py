"""`bench triage` as a terminal table and as Markdown: the suspects, worst first, with their
evidence, and the drain list (results.triage holds the statistics)."""

from __future__ import annotations

import shlex

from rich.table import Table

from harness.text import printable
from results.triage import Triage, q_text


def title(t: Triage) -> str:
    seen = ", ".join(f"{len(v)} {k}(s)" for k, v in t.units.items()) or "nothing"
    return (f"triage of {seen}: {len(t.suspects)} suspect(s) (slower than the others by more "
            f"than {t.threshold:.0%}, false-discovery rate {t.fdr:.0%} across "
            f"{len(t.tests)} unit x case tests)")


def _word(arg: str) -> str:
    """A shell word; `Reason=...` as Reason='...' (the form scontrol's manual shows)."""
    key, sep, value = arg.partition("=")
    if sep and key.isidentifier():
        return f"{key}={shlex.quote(value)}"
    return shlex.quote(arg)


def drain_lines(t: Triage) -> list[str]:
    """The drain list as shell commands, every value quoted."""
    return [" ".join(_word(a) for a in cmd) for cmd in t.drain_commands()]


def triage_table(t: Triage) -> Table:
    from results.report.table import escape

    table = Table(title=escape(title(t)), title_justify="left")
    for col, just in (("#", "right"), ("suspect", "left"), ("name", "left"), ("why", "left"),
                      ("case", "left"), ("slower", "right"), ("q", "right")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for i, s in enumerate(t.suspects, 1):
        for j, e in enumerate(sorted(s.evidence, key=lambda e: e.q)):
            first = j == 0
            table.add_row(str(i) if first else "", s.kind if first else "",
                          escape(s.name) if first else "", s.why if first else "",
                          escape(f"{e.case_key} [{e.unit}]"), f"{e.ratio:.2f}x", q_text(e.q))
    return table


def triage_markdown(t: Triage) -> str:
    def cell(x: str) -> str:
        return printable(x).replace("|", "\\|").replace("`", "'")

    lines = [f"### {cell(title(t))}", ""]
    if t.suspects:
        lines += ["| # | suspect | name | why | cases | slower | q |",
                  "|---|---|---|---|---|---|---|"]
        for i, s in enumerate(t.suspects, 1):
            cases = "<br>".join(f"`{cell(e.case_key)}` [{cell(e.unit)}] {e.ratio:.2f}x"
                                for e in sorted(s.evidence, key=lambda e: e.q))
            lines.append(f"| {i} | {s.kind} | `{cell(s.name)}` | {s.why} | {cases} | "
                         f"{s.worst_ratio:.2f}x | {q_text(s.q)} |")
    else:
        lines.append("No suspect: no node or link is slower than the others.")
    drains = drain_lines(t)
    if drains:
        lines += ["", "Drain list:", "", "```sh", *drains, "```"]
    return "\n".join(lines) + "\n"
