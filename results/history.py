"""A case's figure across runs, and where it changed.

Change points come from optimal segmentation of the log-medians (least squares, dynamic
programming) with a penalty per segment scaled by a robust estimate of run-to-run noise (the
median absolute difference of successive points) — the same family of method as asv's
step detection. Segment levels are compared as well as neighbours, so a slow drift made of small
steps is reported as a drift even when no single step passes the threshold.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from results.definition import change_indices

if TYPE_CHECKING:
    from results.store import RunFilter, Store

_LOCK = threading.Lock()  # bench serve computes histories in a thread pool


EXACT_MAX = 1000  # longer series: cuts on a grid of about this many positions, then refined


def change_points(values: Sequence[float], penalty: float | None = None,
                  min_size: int = 2) -> list[int]:
    """Indices where a new segment starts (0 < i < n), by penalised least squares.

    Segments are at least `min_size` points long: one odd run is an outlier, not a change —
    except the last segment, which may be the latest run alone: a change there can have no
    second run yet, and forcing it into a longer segment puts the step one run early and
    gives that segment a level between the old one and the new one.

    Up to EXACT_MAX points the partition is the optimal one. A longer series (its optimal
    partition costs O(n^2): 0.1-0.25 s at 10,000 points, most of a results browser's answer)
    gets the optimal partition among those whose cuts fall on a grid of about EXACT_MAX
    positions (the segment costs are still those of every point), then the optimal one among
    the grid and every point within a grid step of the cuts found: a step lands where it is;
    a segment shorter than the grid's spacing (n / EXACT_MAX points) away from any step may
    go unseen."""
    y = np.asarray(values, dtype=float)
    n = y.size
    if n < min_size + 1:
        return []
    if penalty is None:
        diffs = np.abs(np.diff(y))
        sigma = float(np.median(diffs)) / (math.sqrt(2) * 0.6745) if diffs.size else 0.0
        sigma = max(sigma, 1e-4)  # 0.01%: below any timer's resolution of a change
        # 8 sigma^2 log n: under 1% false changes on 40 flat points (simulated, with 5% outliers)
        penalty = 8.0 * sigma**2 * math.log(n)
    c1 = np.concatenate([[0.0], np.cumsum(y)])
    if n <= EXACT_MAX:
        return _partition(c1, np.arange(n + 1), penalty, min_size)
    step = -(-n // EXACT_MAX)
    # the grid, and the latest run on its own (the last segment may be it alone)
    grid = np.unique(np.concatenate([np.arange(0, n, step), [n - 1, n]]))
    cuts = np.asarray(_partition(c1, grid, penalty, min_size), dtype=int)
    # then the best among the grid and every point within a step of a cut found on it
    near = (cuts[:, None] + np.arange(-step, step + 1)[None, :]).ravel()
    dense = np.unique(np.concatenate([grid, near[(near > 0) & (near < n)]]))
    return _partition(c1, dense, penalty, min_size)


def _partition(c1: np.ndarray, at: np.ndarray, penalty: float, min_size: int) -> list[int]:
    """The optimal partition whose cuts are among the positions `at` (0 and n included)."""
    # A segment s..t costs c2[t] - c2[s] - (c1[t] - c1[s])^2 / (t - s), so the best total
    # ending at t is c2[t] + penalty + the least over s of a[s] - (c1[t] - c1[s])^2 / (t - s),
    # with a[s] = best[s] - c2[s] known once best[s] is (c2 then cancels): five passes over
    # one buffer per t, where the plain sum took ten.
    k = at.size - 1
    x1 = c1[at]
    pos = at.astype(float)
    a = np.full(k + 1, np.inf)
    a[0] = 0.0
    prev = np.zeros(k + 1, dtype=int)
    buf, lengths = np.empty(k + 1), np.empty(k + 1)
    # candidates for a segment ending at at[j]: the positions at least min_size before it
    # (the last segment: any length)
    ends = np.searchsorted(at, at - min_size, side="right").tolist()
    ends[-1] = k
    for j, t in enumerate(at.tolist()):
        m = ends[j]
        if j == 0 or m == 0:
            continue
        d, length = buf[:m], lengths[:m]
        np.subtract(x1[j], x1[:m], out=d)
        np.multiply(d, d, out=d)
        np.subtract(t, pos[:m], out=length)
        np.divide(d, length, out=d)
        np.subtract(a[:m], d, out=d)
        i = int(np.argmin(d))
        a[j], prev[j] = d[i] + penalty, i  # best[t] - c2[t]
    cuts, j = [], k
    while j > 0:
        j = prev[j]
        if j > 0:
            cuts.append(int(at[j]))
    return sorted(cuts)
@dataclass
class History:
    case_key: str
    run_ids: list[str] = field(default_factory=list)
    started_at: list[str] = field(default_factory=list)
    medians: list[float] = field(default_factory=list)
    ci_low: list[float] = field(default_factory=list)
    ci_high: list[float] = field(default_factory=list)
    change_points: list[int] = field(default_factory=list)
    threshold: float = 0.05
    env_hashes: list[str | None] = field(default_factory=list)
    # where the figure's definition changes (results.definition): a boundary, never a step
    definition_changes: list[int] = field(default_factory=list)

    def segments(self) -> list[tuple[int, int, float]]:
        """(start, end, median of the segment) between change points."""
        bounds = [0, *self.change_points, len(self.medians)]
        return [(a, b, float(np.median(self.medians[a:b]))) for a, b in
                itertools.pairwise(bounds)]

    def steps(self) -> list[tuple[int, float]]:
        """(index where the level changes, relative change) for steps beyond the threshold."""
        segs = self.segments()
        out = []
        for (_, _, before), (start, _, after) in itertools.pairwise(segs):
            change = after / before - 1
            if abs(change) > self.threshold and start not in self.definition_changes:
                out.append((start, change))
        return out

    def drift(self) -> float:
        """Relative change from the first segment's level to the last one's, both under the
        newest definition of the figure."""
        start = max(self.definition_changes, default=0)
        segs = [seg for seg in self.segments() if seg[0] >= start]
        return segs[-1][2] / segs[0][2] - 1 if segs else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable form (`bench history --json`, bench serve's API): every point."""
        return {"case_key": self.case_key, "threshold": self.threshold,
                "runs": [{"run_id": r, "started_at": t, "median": m, "ci_low": lo,
                          "ci_high": hi} for r, t, m, lo, hi in zip(
                              self.run_ids, self.started_at, self.medians, self.ci_low,
                              self.ci_high, strict=True)],
                "change_points": self.change_points,
                "steps": [{"index": i, "run_id": self.run_ids[i], "change": c}
                          for i, c in self.steps()],
                "definition_changes": [{"index": i, "run_id": self.run_ids[i]}
                                       for i in self.definition_changes],
                "drift": self.drift()}

    def columns(self) -> dict[str, list[Any]]:
        """Every point as columns (bench serve's API: no key repeated per point)."""
        return {"run_id": self.run_ids, "started_at": self.started_at, "median": self.medians,
                "ci_low": self.ci_low, "ci_high": self.ci_high}

    def points(self) -> list[tuple[str, float, float, float]]:
        return [(f"{r[:8]}", m, lo, hi) for r, m, lo, hi in
                zip(self.run_ids, self.medians, self.ci_low, self.ci_high, strict=True)]


def case_history(store: Store, case_key: str, run_ids: Sequence[str] | None = None,
                 threshold: float = 0.05, *, where: RunFilter | None = None,
                 last: int | None = None) -> History:
    """The case's successful measurements in `run_ids` (None: all runs; `where` filters them,
    `last` keeps the newest that many points), oldest first, with their change points."""
    cols = store.case_series(case_key, run_ids, where, last)
    medians = np.asarray(cols["median"], dtype=float)
    hist = History(case_key, threshold=threshold, run_ids=cols["run_id"],
                   started_at=cols["run_started_at"], medians=medians.tolist(),
                   ci_low=np.asarray(cols["ci_low"], dtype=float).tolist(),
                   ci_high=np.asarray(cols["ci_high"], dtype=float).tolist(),
                   env_hashes=cols["env_hash"],
                   definition_changes=change_indices(cols["units_per_call"]))
    if medians.size:  # each definition's span on its own: a change of definition is no step
        bounds = [0, *hist.definition_changes, medians.size]
        cuts = list(hist.definition_changes)
        for a, b in itertools.pairwise(bounds):
            cuts += [a + i for i in cached_change_points(np.log(medians[a:b]))]
        hist.change_points = sorted(cuts)
    return hist


_CACHE: OrderedDict[bytes, list[int]] = OrderedDict()
CACHE_SIZE = 64


def cached_change_points(y: np.ndarray) -> list[int]:
    """change_points(y), remembered by a digest of y's bytes: a results browser asks for the
    same series again and again (its page, then its JSON) until a new run changes it."""
    key = hashlib.blake2b(np.ascontiguousarray(y, dtype=float).tobytes(),
                          digest_size=16).digest()
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return list(found)
    cuts = change_points(y)
    with _LOCK:
        _CACHE[key] = cuts
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return list(cuts)


def clear_cache() -> None:
    """Forget every remembered series (benchmarks/serve_scale.py times a cold request)."""
    with _LOCK:
        _CACHE.clear()
