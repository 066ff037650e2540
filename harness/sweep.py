"""Parameter sweeps written as one value: `8B..256MiB*2` (geometric, like nccl-tests' -b -e -f)
and `0..1024+256` (arithmetic, like -i). Sizes take the units of harness.params.parse_size."""

from __future__ import annotations

import re

from harness.errors import UserError
from harness.params import parse_size

_SWEEP = re.compile(r"^\s*([^.\s]+)\s*\.\.\s*([^*+\s]+)\s*(?:([*+])\s*(\S+))?\s*$")
MAX_POINTS = 10_000


def expand_sweep(value: str, where: str = "-p") -> list[str]:
    """'8B..1KiB*4' -> ['8', '32', '128', '512']; a value without '..' is returned as is."""
    m = _SWEEP.match(value)
    if ".." not in value:
        return [value]
    if not m:
        raise UserError(f"{where}: {value!r} is not a sweep; write START..END*FACTOR "
                        "(e.g. 8B..64MiB*2) or START..END+STEP")
    try:
        start, end = parse_size(m.group(1)), parse_size(m.group(2))
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None
    kind, step_text = m.group(3) or "*", m.group(4) or "2"
    try:
        step = float(step_text) if kind == "*" else parse_size(step_text)
    except ValueError:
        raise UserError(f"{where}: sweep step {step_text!r} is not a number") from None
    if end < start:
        raise UserError(f"{where}: sweep {value!r} ends before it starts")
    if (kind == "*" and (step <= 1 or start == 0)) or (kind == "+" and step <= 0):
        raise UserError(f"{where}: sweep {value!r} never ends: use a factor > 1 (and a start "
                        "> 0) or a step > 0")
    points: list[int] = []
    x: float = start
    while x <= end:
        points.append(int(x))
        if len(points) > MAX_POINTS:
            raise UserError(f"{where}: sweep {value!r} has more than {MAX_POINTS} points")
        x = x * step if kind == "*" else x + step
    return [str(p) for p in points]
