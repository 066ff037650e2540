"""Collectives as nccl-tests and OSU print them: one size-sweep table per operation and backend
(size, count, type, redop, root, time, algbw, busbw, #wrong), in the terminal and as text that
scripts written for nccl-tests' output can parse (`bench export --format nccl-tests`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from harness.measurement import Measurement

from harness.workmodel import COLLECTIVE_OPS

COLLECTIVE_WORKLOADS = tuple(COLLECTIVE_OPS)
NCCL_TYPE = {"float32": "float", "float64": "double", "int32": "int32", "int64": "int64"}
_SWEEP_KEYS = ("size", "in_place")


def is_collective(m: Measurement) -> bool:
    return m.workload in COLLECTIVE_WORKLOADS


def _params(m: Measurement) -> dict[str, Any]:
    p = m.params or {}
    return json.loads(p) if isinstance(p, str) else p


def sweeps(rows: Iterable[Measurement]) -> list[tuple[str, list[Measurement]]]:
    """Collective measurements grouped into size sweeps: (title, rows by size), in run order."""
    groups: dict[str, list[Measurement]] = {}
    for m in rows:
        if not is_collective(m):
            continue
        p = _params(m)
        fixed = " ".join(f"{k}={v}" for k, v in sorted(p.items()) if k not in _SWEEP_KEYS)
        title = f"{m.workload} on {m.backend}  {fixed}".rstrip()
        groups.setdefault(title, []).append(m)
    return [(t, sorted(ms, key=lambda m: (_params(m).get("size", 0),
                                          bool(_params(m).get("in_place")))))
            for t, ms in groups.items()]


def _cells(m: Measurement) -> tuple[str, str, str, str]:
    """time (us), algbw, busbw, #wrong — as nccl-tests prints them."""
    if not m.ok:
        return "N/A", "N/A", "N/A", "FAIL"
    x = m.metrics
    wrong = x.get("wrong")
    return (f"{x.get('time_s', math.nan) * 1e6:.2f}", f"{x.get('algbw_gbps', math.nan):.2f}",
            f"{x.get('busbw_gbps', math.nan):.2f}",
            "N/A" if wrong is None else str(int(wrong)))


def _row_keys(m: Measurement) -> tuple[str, str, str, str, str]:
    p, x = _params(m), m.metrics
    size = int(x.get("size_bytes") or p.get("size", 0))
    count = int(x.get("count") or 0) or "-"
    root = str(p.get("root", -1))
    return str(size), str(count), NCCL_TYPE.get(p.get("dtype", ""), p.get("dtype", "")), \
        str(p.get("op", "none")), root


def sweep_table(title: str, rows: list[Measurement]) -> Table:
    ranks = next((int(m.metrics.get("ranks", 0)) for m in rows if m.ok), 0)
    table = Table(title=f"{title}  ({ranks} ranks)" if ranks else title, title_justify="left")
    for col in ("size (B)", "count", "type", "redop", "root", "in-place", "time (us)",
                "algbw (GB/s)", "busbw (GB/s)", "#wrong"):
        table.add_column(col, justify="left" if col in ("type", "redop") else "right")
    for m in rows:
        size, count, dtype, op, root = _row_keys(m)
        time_us, alg, bus, wrong = _cells(m)
        style = "red" if wrong not in ("0", "N/A") else ""
        table.add_row(size, count, dtype, op, root,
                      "yes" if _params(m).get("in_place") else "no", time_us, alg, bus,
                      f"[{style}]{escape(wrong)}[/{style}]" if style else wrong)
    return table


def nccl_tests_text(rows: Iterable[Measurement], run_ids: list[str]) -> str:
    """The sweeps in nccl-tests' own text layout (out-of-place, then in-place columns)."""
    out = [f"# accelbench run(s) {', '.join(run_ids)} in nccl-tests format"]
    for title, ms in sweeps(rows):
        ranks = next((int(m.metrics.get("ranks", 0)) for m in ms if m.ok), 0)
        out += [
            "#",
            f"# {title}  nranks {ranks}",
            "#",
            f"#{'':>59}out-of-place{'':>23}in-place",
            f"#{'size':>11}{'count':>13}{'type':>10}{'redop':>8}{'root':>8}"
            f"{'time':>9}{'algbw':>8}{'busbw':>8}{'#wrong':>7}"
            f"{'time':>9}{'algbw':>8}{'busbw':>8}{'#wrong':>7}",
            f"#{'(B)':>11}{'(elements)':>13}{'':>26}{'(us)':>9}{'(GB/s)':>8}{'(GB/s)':>8}{'':>7}"
            f"{'(us)':>9}{'(GB/s)':>8}{'(GB/s)':>8}",
        ]
        by_size: dict[tuple[str, ...], dict[bool, Measurement]] = {}
        for m in ms:
            by_size.setdefault(_row_keys(m), {})[bool(_params(m).get("in_place"))] = m
        busbws = []
        for keys, pair in by_size.items():
            size, count, dtype, op, root = keys
            line = f" {size:>11}{count:>13}{dtype:>10}{op:>8}{root:>8}"
            for in_place in (False, True):
                m = pair.get(in_place)
                cells = _cells(m) if m else ("N/A",) * 4
                line += f"{cells[0]:>9}{cells[1]:>8}{cells[2]:>8}{cells[3]:>7}"
                if m and m.ok:
                    busbws.append(m.metrics.get("busbw_gbps", 0.0))
            out.append(line)
        wrong = sum(1 for m in ms if not m.ok)
        out += [f"# Out of bounds values : {wrong} {'OK' if not wrong else 'FAILED'}",
                f"# Avg bus bandwidth    : {sum(busbws) / len(busbws) if busbws else 0:.4g}",
                "#"]
    return "\n".join(out) + "\n"
