"""Issue 3's and issue 16's performance targets, measured side by side in one run.

    python benchmarks/compute_targets.py [--rounds 3] [--tune SECONDS] [--json out.json]

The OpenCL kernels run with the parameters the tuner cached for this device (`bench tune`, or
`--tune SECONDS` here first: a fresh search of each OpenCL kernel measured below, at most
SECONDS each); what they ran with and whether it came from the cache is printed.

1. gemm float32 4096 on torch:cpu: bench's FLOP/s against a bare `torch.mm` loop (target:
   within 3%), and torch against numpy.
2. gemm float32 2048 on opencl:pocl with the CPU kernel variant against numpy's sgemm
   (target: at least 80%, issue 16; 50% before tuning, issue 3).
3. stream triad (float64, 2^24) on every backend; torch:cpu and opencl:pocl against the best
   stream figure of any backend in the run (target: at least 80%).
4. Harness overhead on cnn-train and transformer-infer: bench's median against a bare loop
   around the same step (target: under 2%).

Each comparison alternates the two sides over rounds on the same prepared operation, so drift
of a shared, busy host hits both alike; the figure is the median over rounds of the per-round
ratio. Every prepared operation passes its correctness check first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from harness.backends.base import parse_backend
from harness.timing import Engine, TimingPolicy
from harness.workload import make_case
from harness.workload import registry as workloads

_backends: dict[str, Any] = {}


def prepared(workload: str, spec: str, **raw: Any) -> tuple[Any, Any, Any]:
    if spec not in _backends:
        b = parse_backend(spec)
        b.setup()
        _backends[spec] = b
    backend = _backends[spec]
    case = make_case(workload, spec, {k: str(v) for k, v in raw.items()}, "benchmark")
    w = workloads.get(workload)()
    p = w.prepare(backend, case.param_dict)
    if p.check:
        p.check()
    return backend, p, w.work(case.param_dict)


def bare_median(backend: Any, op: Any, calls: int) -> float:
    """A bare loop: one call per sample, the backend's synchronisation inside the region."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        r = op()
        backend.synchronize(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_median(backend: Any, op: Any, budget: float) -> float:
    policy = TimingPolicy(budget=budget, warmup_budget=0.2, target_ci=0.005)
    return statistics.median(Engine(backend, policy).measure(op).samples)


def side_by_side(backend: Any, op: Any, rounds: int, calls: int, budget: float) -> dict[str, Any]:
    bare, ours = [], []
    bare_median(backend, op, 2)  # warm
    for _ in range(rounds):
        bare.append(bare_median(backend, op, calls))
        ours.append(bench_median(backend, op, budget))
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    return {"bare_s": statistics.median(bare), "bench_s": statistics.median(ours),
            "bench_over_bare": statistics.median(ratios), "ratios": ratios}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--tune", type=float, default=0.0, metavar="SECONDS",
                    help="search the OpenCL kernels again first, SECONDS each (0: the cache)")
    args = ap.parse_args()
    r = args.rounds
    out: dict[str, Any] = {}
    if args.tune > 0:
        out["tuning"] = tune_opencl(args.tune)

    print("1. gemm float32 4096 on torch:cpu: bench vs a bare torch.mm loop")
    flops = 2 * 4096**3
    tb, tp, _ = prepared("gemm", "torch:cpu", m=4096, n=4096, k=4096)
    s = side_by_side(tb, tp.op, r, calls=5, budget=3.0)
    nb, npp, _ = prepared("gemm", "numpy:cpu", m=4096, n=4096, k=4096)
    numpy_s = statistics.median(bench_median(nb, npp.op, 3.0) for _ in range(r))
    out["gemm4096_torch"] = {**s, "bench_gflops": flops / s["bench_s"] / 1e9,
                             "bare_gflops": flops / s["bare_s"] / 1e9,
                             "numpy_gflops": flops / numpy_s / 1e9,
                             "torch_over_numpy": numpy_s / s["bench_s"]}
    g = out["gemm4096_torch"]
    print(f"   bare torch.mm   {g['bare_gflops']:8.1f} GFLOP/s")
    print(f"   bench           {g['bench_gflops']:8.1f} GFLOP/s   bench/bare time "
          f"{g['bench_over_bare']:.4f}  (target <= 1.03)  rounds {fmt(s['ratios'])}")
    print(f"   numpy (bench)   {g['numpy_gflops']:8.1f} GFLOP/s   torch/numpy speed "
          f"{g['torch_over_numpy']:.3f}")

    print("2. gemm float32 2048: opencl:pocl (variant cpu) vs numpy sgemm")
    flops = 2 * 2048**3
    cb, cp, _ = prepared("gemm", "opencl:pocl", m=2048, n=2048, k=2048, variant="cpu")
    nb, npp, _ = prepared("gemm", "numpy:cpu", m=2048, n=2048, k=2048)
    cl_t, np_t = [], []
    for _ in range(r):
        cl_t.append(bench_median(cb, cp.op, 2.0))
        np_t.append(bench_median(nb, npp.op, 2.0))
    ratios = [n / c for c, n in zip(cl_t, np_t, strict=True)]
    out["gemm2048_opencl_vs_numpy"] = {
        "opencl_gflops": flops / statistics.median(cl_t) / 1e9,
        "numpy_gflops": flops / statistics.median(np_t) / 1e9,
        "opencl_over_numpy": statistics.median(ratios), "ratios": ratios,
        "build_options": cp.info["build_options"], "tune": cp.info.get("tune")}
    g = out["gemm2048_opencl_vs_numpy"]
    print(f"   opencl:pocl {g['opencl_gflops']:.1f} GFLOP/s, numpy {g['numpy_gflops']:.1f} "
          f"GFLOP/s: {100 * g['opencl_over_numpy']:.1f}% (target >= 80%)  rounds {fmt(ratios)}")
    print(f"   {tune_line(cp.info)}")

    print("3. stream triad, n = 2^24 float64, every backend")
    n = 1 << 24
    ops = {spec: prepared("stream", spec, n=n, op="triad")
           for spec in ("numpy:cpu", "torch:cpu", "jax:cpu", "onnxruntime:cpu", "opencl:pocl")}
    per: dict[str, list[float]] = {spec: [] for spec in ops}
    for _ in range(r):
        for spec, (b, p, work) in ops.items():
            per[spec].append(work.bytes / bench_median(b, p.op, 1.0))
    best_each = {spec: statistics.median(v) for spec, v in per.items()}
    best = max(best_each.values())
    out["stream_triad"] = {"gbps": {k: v / 1e9 for k, v in best_each.items()},
                           "of_best": {k: v / best for k, v in best_each.items()},
                           "rounds_gbps": {k: [x / 1e9 for x in v] for k, v in per.items()},
                           "opencl_tune": ops["opencl:pocl"][1].info.get("tune")}
    for spec, v in best_each.items():
        mark = "  (target >= 80%)" if spec in ("torch:cpu", "opencl:pocl") else ""
        print(f"   {spec:16s} {v / 1e9:7.2f} GB/s  {100 * v / best:5.1f}% of best{mark}")
    print(f"   opencl:pocl {tune_line(ops['opencl:pocl'][1].info)}")

    print("4. harness overhead: bench median vs a bare loop around the same step")
    for name, spec, raw in [("cnn-train", "torch:cpu", {}), ("cnn-train", "jax:cpu", {}),
                            ("transformer-infer", "torch:cpu", {}),
                            ("transformer-infer", "onnxruntime:cpu", {})]:
        b, p, _ = prepared(name, spec, **raw)
        s = side_by_side(b, p.op, r, calls=30, budget=1.5)
        if p.close:
            p.close()
        out[f"overhead_{name}_{spec}"] = s
        print(f"   {name:18s} {spec:16s} bare {1e3 * s['bare_s']:8.3f} ms  bench "
              f"{1e3 * s['bench_s']:8.3f} ms  ratio {s['bench_over_bare']:.4f} (target < 1.02)"
              f"  rounds {fmt(s['ratios'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def tune_line(info: dict[str, Any]) -> str:
    tune = info.get("tune") or {}
    params = " ".join(f"{k}={v}" for k, v in (tune.get("params") or {}).items())
    return (f"kernel parameters {params or '-'} (from the tuning cache: "
            f"{tune.get('from_cache')}; source: {tune.get('source')})")


def tune_opencl(budget: float) -> dict[str, Any]:
    """A fresh search of each OpenCL kernel measured here, `budget` seconds each."""
    from kernels.array.opencl import gemm_tunable, stream_tunable
    from kernels.opencl.tune import tune_on
    from workloads.gemm import TOLERANCE

    b = parse_backend("opencl:pocl")
    b.setup()
    _backends.setdefault("opencl:pocl", b)
    b = _backends["opencl:pocl"]
    done = {}
    for name, tunable in (("gemm2048", lambda: gemm_tunable(b, 2048, 2048, 2048, "float32",
                                                            "cpu", TOLERANCE["float32"])),
                          ("stream_triad", lambda: stream_tunable(b, "triad", 1 << 24,
                                                                  "float64"))):
        t0 = time.perf_counter()
        res = tune_on(b, tunable(), budget, force=True)
        done[name] = {**res.info(), "wall_s": time.perf_counter() - t0}
        print(f"tuned opencl:pocl {name}: {res.info()['params']} ({res.strategy}, "
              f"{len(res.candidates)} candidates, {time.perf_counter() - t0:.1f} s)")
    return done


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
