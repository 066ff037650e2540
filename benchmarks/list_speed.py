"""How long `bench list` takes, start to exit, as a user waits for it.

    python benchmarks/list_speed.py [BENCH ...] [--runs 5]

Each BENCH is a `bench` console script (default: the one beside this interpreter); give two to
set an older installation beside this one, e.g.
`python benchmarks/list_speed.py /work/main/.venv/bin/bench .venv/bin/bench`. Each is run once
to warm the file cache (not counted), then --runs times, alternating between them so that a
disturbance of the machine falls on both; the median, min and max wall seconds are printed,
and the median held against the target (issue 17: `bench list` under 1 s): PASS or FAIL.
Every run uses an empty backend-probe cache (the slowest case of a listing that probes nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0  # `bench list`, start to exit, median of the runs


def run_once(bench: str, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([bench, "list"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{bench} list failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench", nargs="*", default=[str(Path(sys.executable).with_name("bench"))])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--target", type=float, default=TARGET_S,
                        help=f"seconds the median must stay under (default {TARGET_S:g})")
    args = parser.parse_args()
    times: dict[str, list[float]] = {b: [] for b in args.bench}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_CACHE_DIR": str(Path(tmp) / "cache")}
        for bench in args.bench:  # warm-up, not counted
            run_once(bench, Path(tmp), env)
        for _ in range(args.runs):
            for bench in args.bench:
                times[bench].append(run_once(bench, Path(tmp), env))
    print(f"`bench list`, {args.runs} runs each (wall seconds, start to exit); target: "
          f"median under {args.target:g} s")
    for bench, ts in times.items():
        median = statistics.median(ts)
        verdict = "PASS" if median < args.target else "FAIL"
        print(f"  {bench}: median {median:.3f} s  (min {min(ts):.3f}, max {max(ts):.3f})  "
              f"runs: {', '.join(f'{t:.3f}' for t in ts)}  {verdict} "
              f"(target {args.target:g} s)")


if __name__ == "__main__":
    main()
