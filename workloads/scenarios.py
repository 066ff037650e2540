"""Inference scenarios, as MLPerf LoadGen defines them, for any inference op (a zero-argument
callable answering one query, plus the backend's synchronisation):

- single-stream: one query at a time, the next when the last is answered; the figures are the
  latency percentiles (the timing engine's summary of the op gives them directly);
- offline: all queries at once, answered in batches; the figure is samples/s;
- server: queries arrive as a Poisson process at a target rate; a query waits while earlier ones
  are served (one server, first come first served), and its latency runs from its arrival to
  its answer, so queueing counts; the result says whether the p99 latency stayed under a bound;
- max-qps: the highest arrival rate whose server-scenario p99 stays under the bound (bisection,
  then confirmation in sessions of other seeds, stepping down when one fails; sized from the
  time budget), then server sessions at that rate are what is timed. As in LoadGen, the rate is
  valid only if the p99 over all the timed sessions holds the bound too.

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
    seed: int | None = None  # of the session's arrivals; None for sessions pooled

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
                     duration_s: float, seed: int | None = None) -> ServerResult:
    p99 = percentile(latencies, 99)
    return ServerResult(qps=qps, achieved_qps=len(latencies) / duration_s if duration_s else 0.0,
                        queries=len(latencies), p50_s=percentile(latencies, 50),
                        p90_s=percentile(latencies, 90), p99_s=p99, p99_bound_s=p99_bound_s,
                        held=bool(p99 <= p99_bound_s), seed=seed)


def server(query: Callable[[], Any], sync: Callable[[Any], None] | None, qps: float,
           queries: int, p99_bound_s: float, seed: int = 0,
           clock: Callable[[], float] = time.perf_counter,
           wait: Callable[[float], None] | None = None) -> ServerResult:
    t0 = clock()
    lat = server_session(query, sync, qps, queries, seed, clock, wait)
    return summarize_server(lat, qps, p99_bound_s, clock() - t0, seed)


TIMED_SEED = 1000  # timed sessions' seeds start here: arrivals the search has not seen


class ServerSessions:
    """Server sessions at one rate, one per call of `run` (a timed op): the timing engine's
    first call and warm-up make some before the timed ones, so `result` pools the last ones."""

    def __init__(self, query: Callable[[], Any], sync: Callable[[Any], None] | None, qps: float,
                 queries: int, p99_bound_s: float,
                 clock: Callable[[], float] = time.perf_counter,
                 wait: Callable[[float], None] | None = None) -> None:
        self.query, self.sync, self.qps, self.queries = query, sync, qps, queries
        self.p99_bound_s, self.clock, self.wait = p99_bound_s, clock, wait
        self.latencies: list[np.ndarray] = []
        self.durations: list[float] = []

    def run(self) -> None:
        t0 = self.clock()
        lat = server_session(self.query, self.sync, self.qps, self.queries,
                             TIMED_SEED + len(self.latencies), self.clock, self.wait)
        self.durations.append(self.clock() - t0)
        self.latencies.append(lat)

    def result(self, last: int | None = None) -> ServerResult:
        """The last `last` sessions (all when None) pooled: their p99 is the timed run's."""
        n = len(self.latencies) if last is None else max(1, min(last, len(self.latencies)))
        return summarize_server(np.concatenate(self.latencies[-n:]), self.qps, self.p99_bound_s,
                                sum(self.durations[-n:]))


def broke_bound(r: ServerResult) -> str:
    """One phrase: how a pooled result broke its bound."""
    return (f"p99 {r.p99_s * 1e3:.4g} ms over {r.queries} queries at {r.qps:.4g} queries/s "
            f"broke the {r.p99_bound_s * 1e3:g} ms bound")


def bisect_max(holds: Callable[[float], bool], lo: float, hi: float, steps: int = 8) -> float:
    """The largest x in [lo, hi] with holds(x), assuming holds is true below some threshold and
    false above it; 0.0 if it fails even at lo. Pure: the server runs are behind `holds`.
    `lo` is tried only when no rate above it held (at a low rate a session is the longest)."""
    if holds(hi):
        return hi
    found = False
    for _ in range(steps):
        mid = (lo + hi) / 2
        if holds(mid):
            lo, found = mid, True
        else:
            hi = mid
    return lo if found or holds(lo) else 0.0


# The max-QPS search. LoadGen's rule: a server result is valid only if the p99 bound held over
# the whole timed run, so one lucky session (one seed of arrivals) must not decide the rate: the
# candidate must hold over sessions of other seeds, pooled, as the timed sessions will be.
CONFIRM = 2  # sessions, each with its own seed of arrivals, pooled to confirm a candidate
STEP_DOWN = 0.9  # a candidate that fails its confirmation is lowered by this factor ...
MAX_STEP_DOWNS = 5  # ... at most this many times (to 59%); then the search has no result
MIN_QUERIES = 50  # per search session, whatever the budget: fewer, and the p99 is noise
MIN_STEPS, MAX_STEPS = 4, 8  # bisection steps: 4 pin the rate to 6% of the single-stream rate
SEARCH_LOAD = 0.6  # the load a search session runs at, on average (what its length is sized on)


@dataclass(frozen=True)
class SearchPlan:
    """How large a max-QPS search is: queries per session, bisection steps, confirmations."""

    queries: int
    steps: int
    confirm: int = CONFIRM

    @property
    def sessions(self) -> int:
        """Sessions of a search without step-downs: the top rate, the steps, the
        confirmations (the lowest rate is tried only when nothing above it held)."""
        return 1 + self.steps + self.confirm

    def needs_s(self, ceiling_qps: float) -> float:
        """About how long the search's sessions take (at SEARCH_LOAD on average) for a server
        answering `ceiling_qps` queries a second back to back."""
        return self.queries * self.sessions / (SEARCH_LOAD * max(ceiling_qps, 1e-12))


def search_plan(budget_s: float, ceiling_qps: float, confirm: int = CONFIRM) -> SearchPlan:
    """The search that fits in about `budget_s` seconds, for a server answering `ceiling_qps`
    queries a second back to back: a session of q queries at load L lasts q / (L * ceiling),
    so the budget buys budget * SEARCH_LOAD * ceiling queries, spent on more bisection steps
    (up to MAX_STEPS) and then on longer sessions. Never less than MIN_STEPS steps of
    MIN_QUERIES queries: a tiny budget gets the smallest search that still means something."""
    affordable = max(0.0, budget_s) * SEARCH_LOAD * ceiling_qps
    steps = int(min(MAX_STEPS, max(MIN_STEPS, affordable // MIN_QUERIES - 1 - confirm)))
    queries = max(MIN_QUERIES, int(affordable // (1 + steps + confirm)))
    return SearchPlan(queries=queries, steps=steps, confirm=confirm)


def over_budget(plan: SearchPlan, budget_s: float, ceiling_qps: float,
                search_s: float) -> str | None:
    """A warning when the plan needs more than the budget (its minimums: MIN_STEPS steps of
    MIN_QUERIES queries, whatever the budget), naming both and the single-stream rate a model
    would need for the plan to fit; None when it fits."""
    need = plan.needs_s(ceiling_qps)
    if need <= budget_s:
        return None
    fits = plan.queries * plan.sessions / (SEARCH_LOAD * max(budget_s, 1e-12))
    return (f"max-qps search beyond the --budget of {budget_s:g} s: its smallest meaningful "
            f"size ({plan.sessions} server sessions of {plan.queries} queries: {plan.steps} "
            f"bisection steps, {plan.confirm} confirmations) needs about {need:.3g} s at this "
            f"model's {ceiling_qps:.4g} queries/s (more where only low rates hold the bound; "
            f"it would fit the budget at {fits:.4g} queries/s); the search took "
            f"{search_s:.3g} s, the timed sessions come on top")


def over_allowed(n: int) -> int:
    """How many of n latencies may exceed the bound with the p99 still within it (percentile)."""
    return n - int(np.ceil(0.99 * n))


@dataclass(frozen=True)
class Confirmation:
    """A candidate rate's confirmation: its sessions of other seeds, pooled."""

    qps: float
    queries: int  # pooled (fewer than planned when the outcome was already certain)
    over: int  # queries over the bound
    held: bool  # the pooled p99 within the bound

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def confirmed_max(session: Callable[[float, int], np.ndarray], p99_bound_s: float, lo: float,
                  hi: float, steps: int, confirm: int = CONFIRM,
                  seed: int = 0) -> tuple[float, list[Confirmation]]:
    """(rate, confirmations): bisection on sessions of seed `seed` (session(qps, seed) gives
    its latencies), then the candidate must hold the bound over `confirm` sessions of other
    seeds pooled; one that fails is lowered by STEP_DOWN and confirmed again (at most
    MAX_STEP_DOWNS times, never below lo). The rate is 0.0 when none was confirmed; the
    step-downs are len(confirmations) - 1. Pure: the server runs are behind `session`."""
    def holds(qps: float) -> bool:
        return percentile(session(qps, seed), 99) <= p99_bound_s

    candidate = bisect_max(holds, lo, hi, steps)
    confirmations: list[Confirmation] = []
    while candidate > 0:
        confirmations.append(_confirm(session, p99_bound_s, candidate, confirm, seed))
        if confirmations[-1].held:
            return candidate, confirmations
        if len(confirmations) > MAX_STEP_DOWNS or candidate * STEP_DOWN < lo:
            break
        candidate *= STEP_DOWN
    return 0.0, confirmations


def _confirm(session: Callable[[float, int], np.ndarray], p99_bound_s: float, qps: float,
             confirm: int, seed: int) -> Confirmation:
    n = over = 0
    planned: int | None = None
    for k in range(1, confirm + 1):
        lat = session(qps, seed + k)
        planned = planned or len(lat) * confirm
        n += len(lat)
        over += int(np.count_nonzero(lat > p99_bound_s))
        if over > over_allowed(planned):  # the pooled p99 can no longer hold: stop here
            break
    return Confirmation(qps=qps, queries=n, over=over,
                        held=over <= over_allowed(n) and n == planned)


@dataclass
class MaxQps:
    """What a max-QPS search found, and what it spent."""

    qps: float  # the highest confirmed rate; 0.0 when none held
    ceiling_qps: float  # the single-stream rate: the top of the search
    plan: SearchPlan
    search_s: float  # the search's time on its clock, single-stream calls included
    runs: list[ServerResult]  # every server session, in order
    confirmations: list[Confirmation]

    @property
    def step_downs(self) -> int:
        return max(0, len(self.confirmations) - 1)

    def to_dict(self) -> dict[str, Any]:
        """The search's facts for a measurement's info (its sessions go separately)."""
        return {"qps": self.qps, "ceiling_qps": self.ceiling_qps,
                "queries": self.plan.queries, "steps": self.plan.steps,
                "confirm": self.plan.confirm, "step_downs": self.step_downs,
                "sessions": len(self.runs), "search_s": self.search_s,
                "confirmations": [c.to_dict() for c in self.confirmations]}


def single_stream_rate(query: Callable[[], Any], sync: Callable[[Any], None] | None,
                       clock: Callable[[], float] = time.perf_counter) -> float:
    """Queries per second answered back to back (the median of 20, after 3 warm-up calls):
    a single server can do no better."""
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
    return 1.0 / max(float(np.median(times)), 1e-12)


def max_qps(query: Callable[[], Any], sync: Callable[[Any], None] | None, p99_bound_s: float,
            budget_s: float = 5.0, plan: SearchPlan | None = None, seed: int = 0,
            clock: Callable[[], float] = time.perf_counter,
            wait: Callable[[float], None] | None = None) -> MaxQps:
    """The highest Poisson arrival rate whose p99 latency stays within the bound, searched
    between 5% and 100% of the single-stream rate and confirmed with other seeds
    (confirmed_max); the search is sized from `budget_s` (search_plan) unless `plan` is given."""
    t0 = clock()
    ceiling = single_stream_rate(query, sync, clock)
    plan = plan or search_plan(budget_s, ceiling)
    runs: list[ServerResult] = []

    def session(qps: float, s: int) -> np.ndarray:
        start = clock()
        lat = server_session(query, sync, qps, plan.queries, s, clock, wait)
        runs.append(summarize_server(lat, qps, p99_bound_s, clock() - start, s))
        return lat

    best, confirmations = confirmed_max(session, p99_bound_s, 0.05 * ceiling, ceiling,
                                        plan.steps, plan.confirm, seed)
    return MaxQps(qps=best, ceiling_qps=ceiling, plan=plan, search_s=clock() - t0, runs=runs,
                  confirmations=confirmations)
