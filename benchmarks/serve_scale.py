"""How fast `bench serve` answers over a large store (issue: < 300 ms each, server time).

    python benchmarks/serve_scale.py [--runs 10000] [--cases 50] [--store PATH] [--repeat 7]

Makes (or reuses, with --store and --keep) a SQLite store of RUNS runs x CASES cases, written
in bulk through the store's schema (SQLAlchemy Core executemany; every few thousand runs the
environment changes, and one case's level steps half-way), then times the application's
answers in this process through Starlette's TestClient (no network: the server's time):
the runs list (first and a deep page), a case history of RUNS points (page and API), one run,
and a compare page. Each request is made once with nothing of its data remembered (its time is
printed as "first": a history's change points are computed then, and kept for the same
series), after the same kind of page for other data (a running server has compiled its
templates), then --repeat times; the median and max milliseconds are printed, with the target.
A figure, not a test: run it on a quiet machine (platform notes: machines of this kind differ,
and drift).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import numpy as np

TARGET_MS = 300.0
SAMPLES = 32  # raw samples kept per measurement


def fill(path: Path, n_runs: int, n_cases: int, seed: int = 0) -> list[str]:
    """A store of n_runs x n_cases measurements; the run ids, oldest first."""
    import sqlalchemy as sa

    from results import schema as s
    from results.store import Store

    store = Store(str(path))
    rng = np.random.default_rng(seed)
    cases = [f"spin[numpy:cpu](us={10 * (i + 1)}.0)" for i in range(n_cases)]
    envs = [{"host": "bench-node", "libraries": {"numpy": f"2.{k}.0"},
             "env": {"OMP_NUM_THREADS": str(1 + k % 2)}} for k in range(1 + n_runs // 2500)]
    env_hashes = [f"env{k:04d}" for k in range(len(envs))]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    run_ids = [str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i)) for i in
               range(n_runs)]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(s.environments), [{"env_hash": h, "data": e}
                                                 for h, e in zip(env_hashes, envs,
                                                                 strict=True)])
        conn.execute(sa.insert(s.cases), [
            {"case_key": k, "workload": "spin", "backend": "numpy:cpu",
             "params": {"us": 10.0 * (i + 1)}} for i, k in enumerate(cases)])
    mid = 0
    batch = 500
    for lo in range(0, n_runs, batch):
        runs, ms, samples = [], [], []
        for i in range(lo, min(lo + batch, n_runs)):
            when = (start + dt.timedelta(minutes=30 * i)).isoformat()
            runs.append({"run_id": run_ids[i], "started_at": when, "finished_at": when,
                         "status": "complete", "command": "bench run --suite quick",
                         "suite": "quick", "git_revision": f"{i:040x}", "git_dirty": False,
                         "slurm_job_id": None, "host": "bench-node",
                         "env_hash": env_hashes[i // 2500],
                         "tags": {"branch": "main" if i % 4 else "dev"},
                         "harness_version": "0.1.0", "n_measurements": n_cases})
            for seq, key in enumerate(cases):
                level = 1e-5 * (seq + 1) * (1.1 if seq == 0 and i >= n_runs // 2 else 1.0)
                x = np.sort(level * rng.lognormal(0, 0.01, SAMPLES))
                med = float(np.median(x))
                mid += 1
                ms.append({"measurement_id": mid, "run_id": run_ids[i], "seq": seq,
                           "case_key": key, "status": "ok", "error": None,
                           "n": SAMPLES, "min": float(x[0]), "max": float(x[-1]),
                           "mean": float(x.mean()), "stdev": float(x.std()), "median": med,
                           "p5": float(x[1]), "p25": float(x[8]), "p75": float(x[24]),
                           "p95": float(x[-2]), "p99": float(x[-1]),
                           "iqr": float(x[24] - x[8]), "ci_low": float(x[11]),
                           "ci_high": float(x[20]), "ci_level": 0.95, "outliers": 0,
                           "metrics": {"latency_s": med, "items_per_s": 1 / med},
                           "work": {"items": 1, "item_unit": "calls"},
                           "timing": {"stop_reason": "ci"}, "info": {},
                           "started_at": when, "finished_at": when})
                samples.append({"measurement_id": mid, "n": SAMPLES, "seconds": s.pack(x),
                                "device_seconds": None})
        with store.engine.begin() as conn:
            conn.execute(sa.insert(s.runs), runs)
            conn.execute(sa.insert(s.measurements), ms)
            conn.execute(sa.insert(s.samples), samples)
    return run_ids


def timed(client: Any, path: str, repeat: int,
          other: str | None = None) -> tuple[float, float, float, int]:
    """(first ms, median ms, max ms, bytes): the first answer (cold: nothing of it cached yet)
    and the median and max of `repeat` answers after it. `other`, the same kind of page for
    another object, is asked for first: the server has then made a page of this kind (its
    template compiled), as a running server has, and "first" is the cost of new data."""
    from results.history import clear_cache

    if other is not None:
        assert client.get(other).status_code == 200
    clear_cache()
    t0 = time.perf_counter()
    first = client.get(path)
    cold = (time.perf_counter() - t0) * 1000
    if first.status_code != 200:
        raise SystemExit(f"GET {path}: {first.status_code} {first.text[:300]}")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    return cold, statistics.median(times), max(times), len(first.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--store", type=Path, help="reuse this store if it exists, else make it")
    args = parser.parse_args()

    import warnings

    warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette: httpx vs httpx2
    from starlette.testclient import TestClient

    from results.store import Store
    from results.web.app import create_app

    tmp = None
    if args.store is None:
        tmp = tempfile.TemporaryDirectory(prefix="serve-scale-")
        args.store = Path(tmp.name) / "bench.db"
    if not args.store.exists():
        t0 = time.perf_counter()
        fill(args.store, args.runs, args.cases)
        print(f"store: {args.runs} runs x {args.cases} cases written in "
              f"{time.perf_counter() - t0:.1f} s to {args.store}", file=sys.stderr)
    store = Store(str(args.store), create=False)
    total, newest = store.find_runs(limit=1)
    _, oldest = store.find_runs(offset=total - 1, limit=1)
    case = "spin[numpy:cpu](us=10.0)"
    key = urllib.parse.quote(case, safe="")
    base, head = oldest[0].run_id, newest[0].run_id
    client = TestClient(create_app(store))
    other_key = urllib.parse.quote("spin[numpy:cpu](us=20.0)", safe="")
    _, second = store.find_runs(offset=1, limit=1)
    pages = [  # (label, path, the same kind of page for another object, asked for first)
        ("runs list, page 1", "/runs", "/runs?page=2"),
        ("runs list, last page", f"/runs?page={max(1, -(-total // 50))}", None),
        ("runs list, tag filter", "/runs?tag=branch%3Ddev", None),
        ("API runs", "/api/runs", "/api/runs?page=2"),
        ("run page (50 cases)", f"/runs/{head}", f"/runs/{second[0].run_id}"),
        (f"case history page ({total} points)", f"/cases/{key}", f"/cases/{other_key}"),
        (f"API case history ({total} points)", f"/api/cases/{key}/history",
         f"/api/cases/{other_key}/history"),
        ("compare page (50 cases)", f"/compare?base={base}&head={head}",
         f"/compare?base={second[0].run_id}&head={head}"),
        ("API compare", f"/api/compare?base={base}&head={head}",
         f"/api/compare?base={second[0].run_id}&head={head}"),
    ]
    print(f"{'request':<40} {'first ms':>9} {'median ms':>10} {'max ms':>8} {'KiB':>8}  "
          f"target < {TARGET_MS:.0f} ms")
    for label, path, other in pages:
        cold, med, top, size = timed(client, path, args.repeat, other)
        mark = "" if med < TARGET_MS else "  OVER"
        print(f"{label:<40} {cold:>9.1f} {med:>10.1f} {top:>8.1f} {size / 1024:>8.0f}{mark}")
    api = client.get(f"/api/cases/{key}/history").json()
    page = client.get(f"/cases/{key}").text
    shown = page.split("The plot shows ", 1)[1].split(" of ")[0] if "The plot shows " in page \
        else str(total)
    print(f"API history points: {len(api['points']['run_id'])} of {total} runs; plot points: "
          f"{shown}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
