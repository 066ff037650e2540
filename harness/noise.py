"""The machine's own noise, watched around the turns of a paired experiment (`bench ab`).

A paired ratio cancels whatever slows both turns of a pair alike; what it cannot absorb is a
pair whose two turns saw different machines. Three witnesses compare the turns of each pair:

- a **canary**: a fixed pure-Python loop of ~0.05 ms that each worker runs just before and just
  after its turn, in its own process (so it sees the core, the frequency and the contention the
  turn saw); a turn's canary is the slower of the two;
- **CPU pressure** (``/proc/pressure/cpu``, "some"): the share of each turn's wall time during
  which a runnable task waited for a CPU, i.e. another process competed with ours;
- **steal** (``/proc/stat``): the share of CPU time the hypervisor gave to another tenant.

The gap between a pair's two turns is judged against the usual gap on this machine now (the
median and robust spread of recent quiet pairs, never below a fixed tolerance), since machines of
one kind differ by 2x and drift. A steadily busy machine shows no gap; one that flips between a
fast and a slow state (a hyperthread sibling that comes and goes, another tenant's bursts) does.
A pair beyond it is `disturbed`; the caller measures it again.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

CANARY_LOOPS = 1500  # ~40-100 us of bytecode on the machines this ran on: ~2% of a turn
HISTORY = 256  # readings that make "usual" (about 85 pairs)
MIN_HISTORY = 8  # before this many, nothing is called unusual
CANARY_TOL = 0.10  # a gap in canary time (log ratio) below this is never unusual
PRESSURE_TOL = 0.10  # a gap in pressure share below this is never unusual
STEAL_TOL = 0.05


def canary(loops: int = CANARY_LOOPS) -> float:
    """Seconds of one fixed loop of interpreter work (harness/ab_worker.py runs the same)."""
    t0 = time.perf_counter()
    s = 0
    for i in range(loops):
        s += i * i
    return time.perf_counter() - t0


def _pressure_us(path: str = "/proc/pressure/cpu") -> float | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("some"):
                    return float(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cpu_ticks(path: str = "/proc/stat") -> tuple[float, float] | None:
    """(steal ticks, all ticks) summed over CPUs."""
    try:
        with open(path) as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [float(v) for v in fields[1:]]
    steal = values[7] if len(values) > 7 else 0.0
    return steal, sum(values[:8])


@dataclass
class Reading:
    """The witnesses at one moment."""

    wall: float
    pressure_us: float | None
    ticks: tuple[float, float] | None


@dataclass
class Verdict:
    disturbed: bool
    reasons: list[str] = field(default_factory=list)
    canary_gap: float = 0.0  # |ln| of the turns' canary ratio, beyond the case's usual offset
    pressure: float | None = None  # the larger turn's share of wall time a task waited for a CPU
    steal: float | None = None  # the larger turn's share of CPU time stolen


class _Usual:
    """Median and robust spread of a witness's recent values."""

    def __init__(self) -> None:
        self.values: deque[float] = deque(maxlen=HISTORY)

    def add(self, v: float) -> None:
        self.values.append(v)

    def ready(self) -> bool:
        return len(self.values) >= MIN_HISTORY

    def median(self) -> float:
        return float(np.median(self.values))

    def spread(self) -> float:
        a = np.asarray(self.values)
        return float(1.4826 * np.median(np.abs(a - np.median(a))))


class MachineWatch:
    """Readings around each pair and whether the pair was disturbed."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 pressure: Callable[[], float | None] = _pressure_us,
                 ticks: Callable[[], tuple[float, float] | None] = _cpu_ticks) -> None:
        self.clock, self.pressure, self.ticks = clock, pressure, ticks
        self.canary_gap = _Usual()
        self.pressure_gap = _Usual()
        self.steal_gap = _Usual()
        self.available = {"pressure": pressure() is not None, "steal": ticks() is not None}
        self.new_case()

    def read(self) -> Reading:
        return Reading(self.clock(), self.pressure(), self.ticks())

    def new_case(self, offsets: dict[str, _Usual] | None = None) -> None:
        """A new case: its sides' own offsets (one side's threads raise the pressure its turns
        see) are learned afresh, or taken up from where the case left them (`offsets`)."""
        self.offsets = offsets or {name: _Usual() for name in ("canary", "pressure", "steal")}

    def judge(self, readings: list[Reading], canaries: list[float],
              head_first: bool = False) -> Verdict:
        """Did the two turns of a pair see different machines? `readings` are taken before,
        between and after the turns; `canaries` are the turns' canary times, in turn order
        (`head_first`: the head side's turn came first). A difference between the sides that
        every pair of the case shows (the head side runs two threads, so its turns see more
        pressure) is the code's, not the machine's: each witness is judged on how far its
        head-minus-base difference lies from the case's median one (learned from the case's
        first MIN_HISTORY pairs, which are not judged). "Usual" learns from quiet pairs; until
        it has, a gap beyond the fixed tolerance is unusual. A machine that is
        steadily busy shows no gap between the turns of a pair, so it is not flagged."""
        v = Verdict(False)
        sign = -1.0 if head_first else 1.0  # second turn minus first, as head minus base
        witnesses: list[tuple[str, str, float, _Usual, float]] = []
        if len(canaries) == 2 and min(canaries) > 0:
            witnesses.append(("canary",
                              f"canary {max(canaries) / min(canaries):.2f}x slower in one turn",
                              sign * math.log(canaries[1] / canaries[0]), self.canary_gap,
                              CANARY_TOL))
        pressure, steal = self._turn_shares(readings)
        if len(pressure) == 2:
            v.pressure = max(pressure)
            witnesses.append(("pressure", f"CPU pressure {min(pressure):.0%} vs "
                              f"{max(pressure):.0%} in the two turns",
                              sign * (pressure[1] - pressure[0]), self.pressure_gap,
                              PRESSURE_TOL))
        if len(steal) == 2:
            v.steal = max(steal)
            witnesses.append(("steal",
                              f"steal {min(steal):.0%} vs {max(steal):.0%} in the two turns",
                              sign * (steal[1] - steal[0]), self.steal_gap, STEAL_TOL))
        gaps = []
        for name, reason, diff, usual, tol in witnesses:
            offset = self.offsets[name]
            learning = not offset.ready()  # the case's first pairs teach its sides' offset
            gap = abs(diff) if learning else abs(diff - offset.median())
            offset.add(diff)
            if name == "canary":
                v.canary_gap = gap
            limit = max(tol, usual.median() + 4 * usual.spread()) if usual.ready() else tol
            if gap > limit and not learning:
                v.reasons.append(reason)
            if not learning:
                gaps.append((gap, usual))
        v.disturbed = bool(v.reasons)
        if not v.disturbed:  # "usual" is what quiet pairs show
            for gap, usual in gaps:
                usual.add(gap)
        return v

    @staticmethod
    def _turn_shares(readings: list[Reading]) -> tuple[list[float], list[float]]:
        """Per stretch between consecutive readings: the pressure share of wall time and the
        steal share of CPU time."""
        pressure, steal = [], []
        for a, b in itertools.pairwise(readings):
            wall_us = max((b.wall - a.wall) * 1e6, 1.0)
            if a.pressure_us is not None and b.pressure_us is not None:
                pressure.append(max(0.0, (b.pressure_us - a.pressure_us) / wall_us))
            if a.ticks is not None and b.ticks is not None:
                total = b.ticks[1] - a.ticks[1]
                if total > 0:
                    steal.append(max(0.0, (b.ticks[0] - a.ticks[0]) / total))
        return pressure, steal
