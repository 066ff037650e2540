"""`bench history`: a case across runs, with steps and drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from results.history import History, change_points

PLUGIN = str(Path(__file__).parent / "fixtures" / "plugins" / "mylib.py")


def test_step_is_found_where_it_is():
    rng = np.random.default_rng(0)
    y = np.r_[np.full(15, 1.0), np.full(15, 1.08)] * rng.lognormal(0, 0.005, 30)
    assert change_points(np.log(y)) == [15]


def test_flat_noise_has_no_change_points():
    rng = np.random.default_rng(1)
    for _ in range(20):
        assert change_points(np.log(rng.lognormal(0, 0.02, 40))) == []


def test_slow_drift_is_reported_even_when_each_step_is_small():
    rng = np.random.default_rng(2)
    y = np.linspace(1.0, 1.25, 30) * rng.lognormal(0, 0.003, 30)  # < 1% per run
    h = History("x", medians=list(y), change_points=change_points(np.log(y)), threshold=0.05)
    assert max(abs(a / b - 1) for a, b in zip(y[1:], y[:-1], strict=True)) < 0.05
    assert h.drift() > 0.15


def _history(us):
    y = [u * 1e-6 for u in us]
    return History("x", medians=y, change_points=change_points(np.log(y)), threshold=0.05)


def test_a_step_at_the_end_of_the_series_is_placed_on_its_run():
    h = _history([200, 200, 230, 230, 230, 200])  # back to 200 us on the latest run
    assert h.change_points == [2, 5]
    assert [(i, round(c, 4)) for i, c in h.steps()] == [(2, 0.15), (5, round(200 / 230 - 1, 4))]
    assert h.drift() == 0.0  # the first and the last levels are equal


def test_series_with_steps_at_either_end_and_in_the_middle():
    assert _history([200, 200, 200, 200, 260]).steps() == [(4, pytest.approx(0.3))]
    assert _history([200, 200, 200, 200, 260]).drift() == pytest.approx(0.3)
    assert _history([200, 200, 230, 230, 230, 230]).steps() == [(2, pytest.approx(0.15))]
    assert _history([200, 200, 230, 230, 200, 200]).drift() == 0.0


def test_cli_history_finds_the_regressed_build(bench):
    for slowdown in ("1.0", "1.0", "1.0", "1.15", "1.15", "1.15"):
        r = bench("run", "--plugin", PLUGIN, "-w", "mylib-op", "-p", "us=200",
                  "--budget", "0.2", "-q", "--tag", "branch=main",
                  env={"MYLIB_SLOWDOWN": slowdown})
        assert r.rc == 0, r.stderr
    other = bench("run", "--plugin", PLUGIN, "-w", "mylib-op", "-p", "us=200", "--budget",
                  "0.2", "-q", "--tag", "branch=dev", env={"MYLIB_SLOWDOWN": "2.0"})
    assert other.rc == 0
    h = bench("history", "mylib-op", "--tag", "branch=main", "--json")
    assert h.rc == 0, h.stderr
    data = h.json()
    assert len(data["runs"]) == 6
    # runs are listed newest first in the store; history is oldest first
    assert [s["index"] for s in data["steps"]] == [3]
    assert 0.10 < data["steps"][0]["change"] < 0.20
    table = bench("history", "mylib-op[numpy:cpu](us=200.0)", "--tag", "branch=main")
    assert table.rc == 0 and "step +" in table.stdout
    assert bench("history", "nothing-like-this").rc == 2
    assert bench("history", "mylib-op", "--tag", "branch=none").rc == 2


def test_cli_history_renders_through_the_shared_formats(bench_inproc, workdir):
    for _ in range(2):
        r = bench_inproc("run", "-w", "spin", "-p", "us=10", "--budget", "0.05", "-q")
        assert r.rc == 0, r.stderr
    md = bench_inproc("history", "spin", "--format", "markdown")
    assert md.rc == 0, md.stderr
    assert md.stdout.startswith("### spin[numpy:cpu](us=10.0): 2 run(s)")
    assert "| run | started (UTC) | median | 95% CI | change |" in md.stdout
    assert md.stdout.count("\n| `") == 2 and "drift first → last level" in md.stdout
    as_json = bench_inproc("history", "spin", "--format", "json")
    assert as_json.rc == 0, as_json.stderr
    data = as_json.json()
    assert data["case_key"] == "spin[numpy:cpu](us=10.0)" and len(data["runs"]) == 2
    assert bench_inproc("history", "spin", "--json").json() == data  # the old flag still works
    written = bench_inproc("history", "spin", "--format", "markdown", "-o", "h.md")
    assert written.rc == 0 and written.stdout == ""
    assert (workdir / "h.md").read_text() == md.stdout
    refused = bench_inproc("history", "spin", "--format", "html")
    assert refused.rc == 2 and "html" in refused.stderr


def _reference_change_points(y, min_size=2):
    """The optimal partition written plainly (index arrays), as it was before the buffers."""
    import math

    y = np.asarray(y, dtype=float)
    n = y.size
    diffs = np.abs(np.diff(y))
    sigma = max(float(np.median(diffs)) / (math.sqrt(2) * 0.6745), 1e-4)
    penalty = 8.0 * sigma**2 * math.log(n)
    c1 = np.concatenate([[0.0], np.cumsum(y)])
    c2 = np.concatenate([[0.0], np.cumsum(y * y)])
    best, prev = np.full(n + 1, np.inf), np.zeros(n + 1, dtype=int)
    best[0] = 0.0
    for t in range(min_size, n + 1):
        s = np.arange(t - min_size + 1 if t < n else n)
        total = best[s] + ((c2[t] - c2[s]) - (c1[t] - c1[s]) ** 2 / (t - s)) + penalty
        i = int(np.argmin(total))
        best[t], prev[t] = total[i], i
    cuts, t = [], n
    while t > 0:
        t = prev[t]
        if t > 0:
            cuts.append(int(t))
    return sorted(cuts)


def test_change_points_match_the_plain_optimal_partition():
    rng = np.random.default_rng(7)
    for n in (3, 5, 17, 60, 400):
        for k in range(10):
            level = np.where(np.arange(n) < n // 3, 1.0, 1.0 + 0.05 * k)
            y = np.log(level * rng.lognormal(0, 0.002 * (k + 1), n))
            assert change_points(y) == _reference_change_points(y), (n, k)


def test_cached_change_points_are_those_of_the_series():
    from results.history import cached_change_points

    rng = np.random.default_rng(3)
    y = np.log(np.where(np.arange(300) < 200, 1.0, 1.2) * rng.lognormal(0, 0.01, 300))
    first = cached_change_points(y)
    assert first == change_points(y) == [200]
    first.append(7)  # the caller's copy, not the cache's
    assert cached_change_points(y.copy()) == [200]
    flat = np.log(rng.lognormal(0, 0.01, 300))
    assert cached_change_points(flat) == change_points(flat)


def test_a_long_series_gets_the_steps_of_the_optimal_partition(monkeypatch):
    """Beyond EXACT_MAX points the partition is searched on a grid, then near its cuts: steps
    apart by more than the grid's spacing land where the optimal partition puts them."""
    import results.history as history

    rng = np.random.default_rng(11)
    for n, steps in ((2500, (700, 1900)), (4000, (1234, 2140, 3999)), (6000, ())):
        level = np.ones(n)
        for at in steps:  # the latest run alone: a step of 20% (one point must clear more)
            level[at:] *= 1.2 if at == n - 1 else 1.06
        y = np.log(level * rng.lognormal(0, 0.01, n))
        found = history.change_points(y)
        monkeypatch.setattr(history, "EXACT_MAX", 10**9)
        assert found == history.change_points(y) == list(steps), n
        monkeypatch.undo()
