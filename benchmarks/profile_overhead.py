"""Does `bench run --profile` change the timed figure? It must not: the profiled iterations come
after the timed ones. This runs the same cases with and without --profile, alternating over
rounds (so a busy host's drift hits both alike), and prints each case's median per side, the
median over rounds of the per-round ratio with/without, and the runs' own 95% CI half-widths.

    python benchmarks/profile_overhead.py [--rounds 3] [--budget 1] [--json out.json]

On a shared host the run-to-run spread of one side is far wider than one run's CI, so the noise
is measured, not assumed: half the range of each side's medians over rounds, relative to their
median, the larger of the two sides. "Same within noise" means the ratio's distance from 1 is
within that spread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# One backend per `bench run`, one BLAS/OpenMP thread: on a shared 2-vCPU host, a 2-thread
# BLAS whose second thread is descheduled swings between ~0.15 and ~16 ms for this gemm (with or
# without --profile), which would drown any difference; --threads 0 leaves the defaults.
BACKENDS = ("torch:cpu", "jax:cpu", "onnxruntime:cpu", "numpy:cpu")
CASE = ("-w", "gemm", "-p", "m=256", "-p", "n=256", "-p", "k=256")


ENV = dict(os.environ)


def bench(cwd: Path, backend: str, budget: float, profile: bool) -> dict[str, dict]:
    cmd = [str(Path(sys.executable).with_name("bench")), "run", *CASE, "-b", backend,
           "--budget", str(budget), "--json", "-q", *(["--profile"] if profile else [])]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True,
                         env=ENV).stdout
    return {m["case_key"]: m for m in json.loads(out)["measurements"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            ENV[var] = str(args.threads)
    rows: dict[str, dict[str, list]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for profile in ((False, True) if r % 2 == 0 else (True, False)):
                for key, m in ((k, m) for b in BACKENDS
                               for k, m in bench(Path(tmp), b, args.budget, profile).items()):
                    side = rows.setdefault(key, {"off": [], "on": [], "ci_off": [], "ci_on": []})
                    s = m["summary"]
                    tag = "on" if profile else "off"
                    side[tag].append(s["median"])
                    side["ci_" + tag].append((s["ci_high"] - s["ci_low"]) / 2 / s["median"])
                    if profile:
                        assert m["timing"]["profile"].get("path"), m["timing"]["profile"]
    report = {}
    print(f"{'case':52} {'without':>10} {'with':>10} {'ratio':>7} {'CI±':>6} {'spread':>7}"
          "  verdict")
    for key, v in rows.items():
        ratios = [a / b for a, b in zip(v["on"], v["off"], strict=True)]
        ratio = statistics.median(ratios)
        ci = max(statistics.median(v["ci_off"]), statistics.median(v["ci_on"]))
        off, on = statistics.median(v["off"]), statistics.median(v["on"])
        spread = max((max(v["off"]) - min(v["off"])) / 2 / off,
                     (max(v["on"]) - min(v["on"])) / 2 / on)
        verdict = "same within noise" if abs(ratio - 1) <= max(spread, ci) else "DIFFERENT"
        print(f"{key[:52]:52} {off * 1e6:8.2f}us {on * 1e6:8.2f}us {ratio:7.4f} {ci:6.2%} "
              f"{spread:7.2%}  {verdict}")
        print(f"{'':52} rounds without: {' '.join(f'{x * 1e6:.1f}' for x in v['off'])} us;"
              f" with: {' '.join(f'{x * 1e6:.1f}' for x in v['on'])} us")
        report[key] = {"median_off_s": off, "median_on_s": on, "medians_off_s": v["off"],
                       "medians_on_s": v["on"], "ratios": ratios, "ratio": ratio,
                       "ci_rel": ci, "spread_rel": spread, "verdict": verdict}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
