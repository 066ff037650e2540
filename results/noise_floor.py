"""Noise floors: the smallest change each case can resolve on a machine, from `bench ab
--calibrate` (an A/A run), and the warning when a threshold asks for less."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from results.stored import StoredRun

CALIBRATION_TAG = "ab_calibration"


def latest_floors(store: Any, host: str) -> tuple[StoredRun | None, dict[str, float]]:
    """The newest calibration run of this host (its base side) and its floor per case."""
    from results.store import RunFilter

    # the tags are filtered in SQL: a store of 10,000 runs holds a handful of calibrations
    _, runs = store.find_runs(RunFilter(tags=((CALIBRATION_TAG, "1"), ("ab_side", "base"))))
    for run in runs:
        if run.host == host:
            floors = {m.case_key: float(m.metrics["ab_floor"])
                      for m in store.measurements([run.run_id])
                      if m.ok and "ab_floor" in m.metrics}
            return run, floors
    return None, {}


def floor_warning(run: StoredRun | None, floors: dict[str, float], threshold: float,
                  case_keys: Iterable[str]) -> str | None:
    """A warning naming the cases whose floor lies above the threshold, or None."""
    if run is None:
        return None
    above = sorted(((floors[k], k) for k in case_keys
                    if k in floors and math.isfinite(floors[k]) and floors[k] > threshold),
                   reverse=True)
    if not above:
        return None
    worst, key = above[0]
    return (f"--threshold {threshold:.1%} is below the noise floor of {len(above)} case(s) "
            f"measured by `bench ab --calibrate` on {run.host} "
            f"({str(run.started_at)[:16]}; e.g. {key}: {worst:.1%}): such changes cannot "
            "be resolved at that budget; raise --threshold or --budget")
