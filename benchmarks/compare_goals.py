"""Does `bench compare` cry wolf, does it miss regressions, and is it fast? Measured here.

    python benchmarks/compare_goals.py [--reps 10] [--json out.json] [--skip-quick]

1. A/A: the same code twice — the `quick` suite and 50 spin cases — per repetition; counts the
   cases flagged `regression` or `improvement` (the goal: at most 1%).
2. A/B: a user plugin whose speed is set by an environment variable ("two builds of my
   library"), 40 cases, 10 of them slowed by 10%; counts how many slowed cases are flagged
   `regression` (goal: at least 95%) and how many others are flagged at all (goal: none).
3. Speed: compare two stored runs of 1,000 cases x 1,000 samples (goal: under 2 s, the whole
   `bench compare` command), and ingest 1M samples into SQLite (goal: under 10 s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "fixtures" / "plugins" / "mylib.py"
BENCH = [str(Path(sys.executable).with_name("bench"))]
ROUNDS = 3  # as the quick suite: every case measured in 3 interleaved rounds


def bench(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*BENCH, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench {' '.join(args)} failed: {proc.stderr}")
    return proc


def run_id(proc: subprocess.CompletedProcess) -> str:
    return json.loads(proc.stdout)["run_id"]


def verdicts(cwd: Path, base: str, head: str) -> dict[str, str]:
    out = bench(cwd, "compare", base, head, "--format", "json")
    return {c["case_key"]: c["verdict"] for c in json.loads(out.stdout)["cases"]}


def a_a(cwd: Path, reps: int, quick: bool) -> dict:
    spins = ",".join(str(10 * (i + 1)) for i in range(50))  # 10 .. 500 us
    flagged = total = 0
    per_rep = []
    for rep in range(reps):
        ids = []
        for _ in range(2):
            parts = [run_id(bench(cwd, "run", "-w", "spin", "-p", f"us={spins}", "--budget", "0.5",
                                  "--rounds", str(ROUNDS), "-q", "--json"))]
            if quick:
                parts.append(run_id(bench(cwd, "run", "--suite", "quick", "-q", "--json")))
            ids.append(parts)
        n = f = 0
        for base, head in zip(ids[0], ids[1], strict=True):
            v = verdicts(cwd, base, head)
            n += len(v)
            f += sum(x in ("regression", "improvement") for x in v.values())
        per_rep.append({"cases": n, "flagged": f})
        total += n
        flagged += f
        print(f"  A/A rep {rep + 1}: {f} of {n} cases flagged", flush=True)
    return {"cases": total, "flagged": flagged, "flagged_pct": 100 * flagged / total,
            "per_rep": per_rep}


def a_b(cwd: Path, reps: int) -> dict:
    us = [20 * (i + 1) for i in range(40)]  # 20 .. 800 us
    slowed = set(us[::4])  # 10 cases
    args = ["run", "--plugin", str(PLUGIN), "-w", "mylib-op", "-p",
            "us=" + ",".join(map(str, us)), "--budget", "0.5", "--rounds", str(ROUNDS), "-q",
            "--json"]
    hits = misses = false_flags = 0
    for rep in range(reps):
        base = run_id(bench(cwd, *args))
        head = run_id(bench(cwd, *args, env={"MYLIB_SLOWDOWN": "1.10",
                                              "MYLIB_SLOW_US": ",".join(map(str, slowed))}))
        v = verdicts(cwd, base, head)
        for key, verdict in v.items():
            value = float(key.split("us=")[1].rstrip(")"))
            if value in slowed:
                hits += verdict == "regression"
                misses += verdict != "regression"
            else:
                false_flags += verdict in ("regression", "improvement")
        print(f"  A/B rep {rep + 1}: cumulative {hits} of {hits + misses} slowed cases flagged, "
              f"{false_flags} false flags", flush=True)
    slowed_total = hits + misses
    return {"slowed_cases": slowed_total, "flagged_regression": hits,
            "detected_pct": 100 * hits / slowed_total,
            "other_cases": reps * (len(us) - len(slowed)), "false_flags": false_flags}


def speed(cwd: Path) -> dict:
    from results.runfile import RunRecord
    from results.store import Store

    rng = np.random.default_rng(0)
    store = Store(str(cwd / "speed.db"))
    ids, ingest_s = [], []
    for _ in range(2):
        ms = [{"case_key": f"case-{i}", "workload": "synthetic", "backend": "numpy:cpu",
               "params": {"i": i}, "status": "ok", "summary": {"n": 1000, "median": 1.0},
               "metrics": {}, "work": {}, "timing": {},
               "samples": rng.lognormal(0, 0.05, 1000).tolist()} for i in range(1000)]
        rid = str(uuid.uuid4())
        record = RunRecord.from_records(
            {"run_id": rid, "started_at": f"2026-01-01T00:00:0{len(ids)}",
             "env_hash": "synthetic", "env": {}}, ms, "complete")
        t = time.perf_counter()
        store.ingest(record)
        ingest_s.append(time.perf_counter() - t)
        ids.append(rid)
    t = time.perf_counter()
    out = bench(cwd, "compare", ids[0], ids[1], "--format", "json", "--store", "speed.db")
    compare_cli_s = time.perf_counter() - t
    assert len(json.loads(out.stdout)["cases"]) == 1000
    return {"ingest_1M_samples_s": ingest_s, "compare_1000x1000_cli_s": compare_cli_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--skip-quick", action="store_true", help="A/A on the spin cases only")
    ap.add_argument("--json", dest="json_path")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per run (1: no rounds)")
    ap.add_argument("--skip-ab", action="store_true")
    args = ap.parse_args()
    global ROUNDS
    ROUNDS = args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        print("speed:", flush=True)
        result = {"speed": speed(cwd)}
        print(" ", result["speed"], flush=True)
        if not args.skip_ab:
            print("A/B:", flush=True)
            result["a_b"] = a_b(cwd, args.reps)
        print("A/A:", flush=True)
        result["a_a"] = a_a(cwd, args.reps, not args.skip_quick)
    print(json.dumps(result, indent=1))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
