"""`spin`: busy-wait a given number of microseconds — the calibration workload with a known time."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from harness import Backend, Param, Prepared, Work, Workload


class Spin(Workload):
    name = "spin"
    description = "Busy-wait `us` microseconds on the host: a known true time to calibrate against"
    params = {"us": Param("float", 100.0, "microseconds to spin", min=0.0, max=10_000_000.0)}
    models = ("numpy",)
    default_backend = "numpy:cpu"

    def work(self, params: Mapping[str, Any]) -> Work:
        return Work(items=1, item_unit="spins")

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        # A call to spin costs more than its deadline: entering it, reading the clock and
        # overshooting the deadline by up to one loop iteration. That cost is measured here and
        # taken off the deadline, so one call lasts `us`; it is reported as `self_cost_s`.
        self_cost = _self_cost_ns()
        ns = max(0, int(params["us"] * 1000) - self_cost)
        return Prepared(op=partial(_spin, ns), info={"self_cost_s": self_cost * 1e-9})


def _spin(ns: int, clock: Any = time.perf_counter_ns) -> None:
    deadline = clock() + ns
    while clock() < deadline:
        pass


def periodic(fast_us: float, slow_us: float, every: int) -> Callable[[], None]:
    """Fast calls with a slow one every `every` calls, as a small torch matmul behaves: an op
    whose steady cost per call (the mean) differs from its typical single call."""
    count = [0]

    def op() -> None:
        count[0] += 1
        _spin(int((slow_us if count[0] % every == 0 else fast_us) * 1000))

    return op


def _self_cost_ns(reps: int = 2000, probe_ns: int = 2000) -> int:
    """Median time a short spin lasts beyond its deadline and an empty pair of clock reads.

    The probe spins for real (`probe_ns`), so the overshoot of the last loop iteration past the
    deadline is measured as it happens in use; a zero-length spin never loops and misses it."""
    clock = time.perf_counter_ns
    spin_costs, empty_costs = [], []
    for _ in range(reps):
        t0 = clock()
        _spin(probe_ns)
        t1 = clock()
        spin_costs.append(t1 - t0 - probe_ns)
        t0 = clock()
        empty_costs.append(clock() - t0)
    spin_costs.sort()
    empty_costs.sort()
    return max(0, spin_costs[reps // 2] - empty_costs[reps // 2])
