"""Does `bench ab` give sound verdicts on a shared machine, where plain runs do not?

A plugin workload (tests/fixtures/plugins/knob.py, kind=compute: a fixed loop of small numpy
operations, so its time is whatever this machine makes of it) runs as 20 identical cases; the
head side slows chosen cases by a factor (AB_SLOW). Per repetition:

- A/A (nothing slowed): cases flagged at the 5% threshold (goal: <= 1%);
- 5 cases slowed 10%: caught at the 5% threshold (goal: >= 95%), false flags among the others;
- 5 cases slowed 5%: caught at a 2% threshold (goal: >= 90%);
- the same again with two busy loops started for part of each run (another tenant's noise);
- side by side, on the same cases and budget: two plain `bench run`s + `bench compare`, with and
  without `--rounds 3`; and the wall time of each.

    python benchmarks/ab_goals.py --reps 10 --plain-reps 3

Prints a table of rates and median wall times and writes every verdict to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KNOB = ROOT / "tests" / "fixtures" / "plugins" / "knob.py"
BENCH = [sys.executable, "-m", "harness"]
CASES = 20
SLOWED = 5


def case_key(i: int, us: float) -> str:
    return f"knob[numpy:cpu](case={i},kind=compute,us={us})"


class BusyLoops:
    """Two busy loops for a random part of a run (another tenant)."""

    def __init__(self, enabled: bool, expected_s: float, rng: random.Random) -> None:
        self.enabled, self.expected, self.rng = enabled, expected_s, rng
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.stop.wait(self.rng.uniform(0.1, 0.4) * self.expected):
            return
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(2)]
        self.stop.wait(self.rng.uniform(0.2, 0.4) * self.expected)
        self._kill()

    def _kill(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []

    def __enter__(self) -> BusyLoops:
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.enabled:
            self.thread.join()
        self._kill()


def bench(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([*BENCH, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT)
    if proc.returncode not in (0, 1):
        sys.exit(f"bench {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.returncode, proc.stdout, time.perf_counter() - t0


def slow_spec(cases: list[int], factor: float) -> str:
    return ",".join(f"{c}={factor}" for c in cases)


def score(verdicts: dict[str, str], slowed: set[str]) -> dict[str, int]:
    caught = sum(verdicts.get(k) == "regression" for k in slowed)
    false = sum(v in ("regression", "improvement") for k, v in verdicts.items()
                if k not in slowed)
    return {"caught": caught, "slowed": len(slowed), "false": false,
            "unslowed": len(verdicts) - len(slowed)}


def run_ab(store: str, runs: str, us: float, budget: float, slow: str, threshold: float,
           seed: int) -> tuple[dict[str, str], float, dict[str, Any]]:
    args = ["ab", "--plugin", str(KNOB), "-w", "knob", "-p", "kind=compute", "-p", f"us={us}",
            "-p", "case=" + ",".join(map(str, range(CASES))), "--budget", str(budget),
            "--head-env", f"AB_SLOW={slow}", "--threshold", str(threshold), "--format",
            "json", "-q", "--seed", str(seed), "--store", store, "--run-dir", runs]
    _, out, wall = bench(args)
    data = json.loads(out)
    verdicts = {c["case_key"]: c["verdict"] for c in data["cases"]}
    extra = {"pairs": statistics.median(c.get("pairs", 0) for c in data["cases"]),
             "disturbed": sum(c.get("disturbed", 0) for c in data["cases"])}
    return verdicts, wall, extra


def run_plain(store: str, runs: str, us: float, budget: float, slow: str,
              rounds: int) -> tuple[str, float]:
    args = ["run", "--plugin", str(KNOB), "-w", "knob", "-p", "kind=compute", "-p", f"us={us}",
            "-p", "case=" + ",".join(map(str, range(CASES))), "--budget", str(budget),
            "--rounds", str(rounds), "--json", "-q", "--store", store, "--run-dir", runs]
    _, out, wall = bench(args, {"AB_SLOW": slow})
    return json.loads(out)["run_id"], wall


def compare(store: str, runs: str, base: str, head: str, threshold: float) -> dict[str, str]:
    _, out, _ = bench(["compare", base, head, "--threshold", str(threshold), "--format", "json",
                       "--store", store, "--run-dir", runs])
    return {c["case_key"]: c["verdict"] for c in json.loads(out)["cases"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=10, help="repetitions of each bench ab test")
    ap.add_argument("--plain-reps", type=int, default=3, help="repetitions of the plain runs")
    ap.add_argument("--us", type=float, default=230.0, help="work per case (about us)")
    ap.add_argument("--budget", type=float, default=1.0, help="--budget of every run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("ab_goals.json"))
    opts = ap.parse_args()
    rng = random.Random(opts.seed)
    tallies: dict[str, dict[str, int]] = {}
    walls: dict[str, list[float]] = {}
    log: list[dict[str, Any]] = []

    def add(name: str, s: dict[str, int], wall: float | None = None, **extra: Any) -> None:
        t = tallies.setdefault(name, {"caught": 0, "slowed": 0, "false": 0, "unslowed": 0,
                                      "runs": 0})
        for k, v in s.items():
            t[k] += v
        t["runs"] += 1
        if wall is not None:
            walls.setdefault(name, []).append(wall)
        log.append({"test": name, **s, "wall_s": wall, **extra})

    with tempfile.TemporaryDirectory(prefix="ab-goals-") as tmp:
        store, runs = str(Path(tmp) / "bench.db"), str(Path(tmp) / "runs")
        expected = 0.0
        for noisy in (False, True):
            label = " +busy" if noisy else ""
            for rep in range(opts.reps):
                for name, factor, threshold in (("A/A @5%", 1.0, 0.05),
                                                ("10% slower @5%", 1.10, 0.05),
                                                ("5% slower @2%", 1.05, 0.02)):
                    chosen = rng.sample(range(CASES), SLOWED) if factor != 1.0 else []
                    slowed = {case_key(c, opts.us) for c in chosen}
                    with BusyLoops(noisy, expected or 20.0, rng):
                        verdicts, wall, extra = run_ab(store, runs, opts.us, opts.budget,
                                                       slow_spec(chosen, factor), threshold,
                                                       rng.randrange(1 << 30))
                    expected = wall
                    add(f"ab {name}{label}", score(verdicts, slowed), wall, **extra)
                print(f"ab{label}: repetition {rep + 1}/{opts.reps} done", file=sys.stderr)
        for rep in range(opts.plain_reps):
            for rounds in (1, 3):
                chosen10 = rng.sample(range(CASES), SLOWED)
                chosen5 = rng.sample(range(CASES), SLOWED)
                base, w1 = run_plain(store, runs, opts.us, opts.budget, "", rounds)
                same, w2 = run_plain(store, runs, opts.us, opts.budget, "", rounds)
                h10, _ = run_plain(store, runs, opts.us, opts.budget,
                                   slow_spec(chosen10, 1.10), rounds)
                h5, _ = run_plain(store, runs, opts.us, opts.budget,
                                  slow_spec(chosen5, 1.05), rounds)
                tag = f"plain rounds={rounds}"
                add(f"{tag} A/A @5%", score(compare(store, runs, base, same, 0.05), set()),
                    w1 + w2)
                add(f"{tag} 10% slower @5%",
                    score(compare(store, runs, base, h10, 0.05),
                          {case_key(c, opts.us) for c in chosen10}))
                add(f"{tag} 5% slower @2%",
                    score(compare(store, runs, base, h5, 0.02),
                          {case_key(c, opts.us) for c in chosen5}))
            print(f"plain: repetition {rep + 1}/{opts.plain_reps} done", file=sys.stderr)

    print(f"{'test':32} {'runs':>4} {'caught':>12} {'false flags':>14} {'wall (median)':>14}")
    for name, t in tallies.items():
        caught = f"{t['caught']}/{t['slowed']} {100 * t['caught'] / t['slowed']:.0f}%" \
            if t["slowed"] else "-"
        false = f"{t['false']}/{t['unslowed']} {100 * t['false'] / max(1, t['unslowed']):.1f}%"
        wall = f"{statistics.median(walls[name]):.1f} s" if name in walls else ""
        print(f"{name:32} {t['runs']:>4} {caught:>12} {false:>14} {wall:>14}")
    print("(wall: one bench ab run; for plain runs, the two runs of an A/A comparison)")
    opts.out.write_text(json.dumps({"tallies": tallies, "walls": walls, "log": log}, indent=1))


if __name__ == "__main__":
    main()
