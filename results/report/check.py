"""`bench check` as a terminal table and as Markdown: per case, expected, measured, % of
expected and the verdict (results.reference holds the model)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from harness.text import printable
from results.reference import FAIL, MISSING, PASS, CheckResult, CheckRow

_STYLE = {PASS: "green", FAIL: "red", MISSING: "yellow"}


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def _pct(r: CheckRow) -> str:
    p = r.pct_expected
    return "" if p is None else f"{p:.1f}%"


def _order(result: CheckResult) -> list[CheckRow]:
    rank = {FAIL: 0, PASS: 1, MISSING: 2}
    return sorted(result.rows, key=lambda r: (rank[r.status], r.case_key))


def title(result: CheckResult) -> str:
    c, ref = result.counts(), result.reference
    where = ref.system + (f"/{ref.partition}" if ref.partition else "")
    return (f"check against {ref.path}" + (f" ({where})" if where else "")
            + f": {c[PASS]} pass, {c[FAIL]} fail, {c[MISSING]} without a reference")


def check_table(result: CheckResult) -> Table:
    from results.report.table import escape

    table = Table(title=escape(title(result)), title_justify="left")
    for col, just in (("case", "left"), ("metric", "left"), ("expected", "right"),
                      ("measured", "right"), ("% of expected", "right"), ("verdict", "left")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for r in _order(result):
        e = r.expectation
        s = _STYLE[r.status]
        verdict = f"[{s}]{r.status}[/{s}]" + (f" {escape(r.why)}" if r.status == FAIL else "")
        table.add_row(escape(r.case_key), escape(e.metric) if e else "",
                      escape(f"{e.op} {e.value:.4g}" + (f" ± {e.tolerance:.0%}"
                                                         if e.tolerance else "")) if e else "",
                      _num(r.measured), _pct(r), verdict)
    return table


def _cell(text: str) -> str:
    return printable(text).replace("|", "\\|").replace("`", "'")


def check_markdown(result: CheckResult) -> str:
    icon = {PASS: "✅", FAIL: "❌", MISSING: "➖"}
    lines = [f"### {_cell(title(result))}", "",
             "| | case | metric | expected | measured | % of expected |",
             "|---|---|---|---|---|---|"]
    for r in _order(result):
        e = r.expectation
        expected = (f"{e.op} {e.value:.4g}" + (f" ± {e.tolerance:.0%}" if e.tolerance else "")
                    if e else "")
        lines.append(f"| {icon[r.status]} {r.status} | `{_cell(r.case_key)}` | "
                     f"{_cell(e.metric) if e else ''} | {_cell(expected)} | {_num(r.measured)} | "
                     f"{_pct(r)} |")
    return "\n".join(lines) + "\n"


def check_json(result: CheckResult) -> dict[str, Any]:
    return result.to_dict()
