"""What a stored figure means, where that changed between versions of accelbench.

A measurement's samples are seconds per unit of its timed call: `timing.units_per_call`
(harness.workmodel.Work.units_per_call; absent means 1). p2p ping-pong was stored per round
trip until its latency became OSU's, half the round trip (units_per_call 2), under the same
case key: a run stored before holds twice the figure of one stored after, the code unchanged.
Figures of one case under two definitions are not one quantity, so `bench compare` leaves such
a case out and `bench history` breaks its series there, each saying "definition changed" —
never a regression, an improvement or a step. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.measurement import Measurement, TimingRecord
    from results.stored import StoredMeasurement


def units_per_call(timing: TimingRecord | Mapping[str, Any] | None) -> float:
    """The units of work one timed call counted as (the samples are seconds per unit)."""
    if timing is not None and not isinstance(timing, Mapping):
        timing = timing.to_dict()
    value = (timing or {}).get("units_per_call")
    return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0


def per_what(units: float) -> str:
    """What a sample's seconds are per: 'timed call', '1/2 timed call'."""
    return "timed call" if units == 1 else f"1/{units:g} timed call"


def definitions(measurements: Iterable[Measurement | StoredMeasurement]) -> dict[str, float]:
    """case key -> units per call, of the measurements that succeeded."""
    return {m.case_key: units_per_call(m.timing) for m in measurements if m.status == "ok"}


def changed_cases(base: Iterable[Measurement | StoredMeasurement],
                  head: Iterable[Measurement | StoredMeasurement],
                  ) -> dict[str, tuple[float, float]]:
    """Cases both sides measured under different definitions: key -> (base's, head's units)."""
    b, h = definitions(base), definitions(head)
    return {k: (b[k], h[k]) for k in b if k in h and b[k] != h[k]}


def changed_warning(changed: Mapping[str, tuple[float, float]]) -> list[str]:
    """One line per pair of definitions: the cases not compared, and why."""
    groups: dict[tuple[float, float], list[str]] = {}
    for key, pair in sorted(changed.items()):
        groups.setdefault(pair, []).append(key)
    lines = []
    for (b, h), keys in groups.items():
        why = (" (p2p ping-pong: stored before its latency became half the round trip, as "
               "OSU's)" if any(k.startswith("p2p[") for k in keys) else "")
        lines.append(f"definition changed, not compared: BASE's seconds are per {per_what(b)}, "
                     f"HEAD's per {per_what(h)} (timing.units_per_call){why}: "
                     + ", ".join(keys))
    return lines


def change_indices(units: Iterable[float | None]) -> list[int]:
    """Where a series' definition changes (0 < i < n): its figure before i is not comparable
    with its figure from i on."""
    seq = [1.0 if u is None else float(u) for u in units]
    return [i for i in range(1, len(seq)) if seq[i] != seq[i - 1]]
