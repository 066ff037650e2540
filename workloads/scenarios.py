"""Inference scenarios, as MLPerf LoadGen defines them, for any inference op (a zero-argument
callable answering one query, plus the backend's synchronisation):

- single-stream: one query at a time, the next when the last is answered; the figures are the
  latency percentiles (the timing engine's summary of the op gives them directly);
- offline: all queries at once, answered in batches; the figure is samples/s;
- server: queries arrive as a Poisson process at a target rate; a query waits while earlier ones
  are served (one server, first come first served), and its latency runs from its arrival to
  its answer, so queueing counts; the result says whether the p99 latency stayed under a bound;
- max-qps: the highest arrival rate whose server-scenario p99 stays under the bound (bisection),
  then server sessions at that rate are what is timed.

The pure parts (arrival times, percentiles, the bisection) are separate from the timed loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SCENARIOS = ("single-stream", "offline", "server", "max-qps")


def poisson_arrivals(qps: float, n: int, seed: int = 0) -> np.ndarray:
    """Arrival times (seconds from 0) of n queries of a Poisson process at `qps` per second."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1.0 / qps, n))


def percentile(latencies: Any, q: float) -> float:
    """The q-th percentile, as MLPerf reports it (the smallest value with q% at or below)."""
    x = np.sort(np.asarray(latencies, dtype=float))
    if x.size == 0:
        return float("nan")
    return float(x[min(x.size - 1, max(0, int(np.ceil(q / 100 * x.size)) - 1))])


@dataclass
class ServerResult:
    qps: float  # target arrival rate
    achieved_qps: float  # queries answered per second of the session
    queries: int
    p50_s: float
    p90_s: float
    p99_s: float
    p99_bound_s: float
    held: bool  # p99 <= bound

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _wait_until(deadline: float, clock: Callable[[], float]) -> None:
    while True:
        left = deadline - clock()
        if left <= 0:
            return
        if left > 2e-3:
            time.sleep(left - 1e-3)  # sleep most of the way, spin the last millisecond


def server_session(query: Callable[[], Any], sync: Callable[[Any], None] | None, qps: float,
                   queries: int, seed: int = 0, clock: Callable[[], float] = time.perf_counter,
                   wait: Callable[[float], None] | None = None) -> np.ndarray:
    """Latencies (arrival to answer, seconds) of `queries` Poisson arrivals served in order.
    `clock` and `wait(deadline)` (idle until clock() >= deadline) can be a simulated clock."""
    arrivals = poisson_arrivals(qps, queries, seed)
    latencies = np.empty(queries)
    wait = wait or (lambda deadline: _wait_until(deadline, clock))
    t0 = clock()
    for i, arrival in enumerate(arrivals):
        wait(t0 + arrival)  # idle until it arrives; at once if we are still busy (queueing)
        out = query()
        if sync is not None:
            sync(out)
        latencies[i] = clock() - t0 - arrival
    return latencies


def summarize_server(latencies: np.ndarray, qps: float, p99_bound_s: float,
                     duration_s: float) -> ServerResult:
    p99 = percentile(latencies, 99)
    return ServerResult(qps=qps, achieved_qps=len(latencies) / duration_s if duration_s else 0.0,
                        queries=len(latencies), p50_s=percentile(latencies, 50),
                        p90_s=percentile(latencies, 90), p99_s=p99, p99_bound_s=p99_bound_s,
                        held=bool(p99 <= p99_bound_s))


def server(query: Callable[[], Any], sync: Callable[[Any], None] | None, qps: float,
           queries: int, p99_bound_s: float, seed: int = 0,
           clock: Callable[[], float] = time.perf_counter,
           wait: Callable[[float], None] | None = None) -> ServerResult:
    t0 = clock()
    lat = server_session(query, sync, qps, queries, seed, clock, wait)
    return summarize_server(lat, qps, p99_bound_s, clock() - t0)


def bisect_max(holds: Callable[[float], bool], lo: float, hi: float, steps: int = 8) -> float:
    """The largest x in [lo, hi] with holds(x), assuming holds is true below some threshold and
    false above it; 0.0 if it fails even at lo. Pure: the server runs are behind `holds`."""
    if not holds(lo):
        return 0.0
    if holds(hi):
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if holds(mid) else (lo, mid)
    return lo


def max_qps(query: Callable[[], Any], sync: Callable[[Any], None] | None, p99_bound_s: float,
            queries: int = 200, steps: int = 7, seed: int = 0,
            clock: Callable[[], float] = time.perf_counter,
            wait: Callable[[float], None] | None = None) -> tuple[float, list[ServerResult]]:
    """The highest Poisson arrival rate whose p99 latency stays within the bound, searched
    between 5% and 100% of the single-stream rate (a single server cannot do better); also
    every server run it made."""
    for _ in range(3):  # warm-up
        out = query()
        if sync is not None:
            sync(out)
    times = []
    for _ in range(20):
        t0 = clock()
        out = query()
        if sync is not None:
            sync(out)
        times.append(clock() - t0)
    ceiling = 1.0 / float(np.median(times))
    runs: list[ServerResult] = []

    def holds(qps: float) -> bool:
        runs.append(server(query, sync, qps, queries, p99_bound_s, seed, clock, wait))
        return runs[-1].held

    return bisect_max(holds, 0.05 * ceiling, ceiling, steps), runs
