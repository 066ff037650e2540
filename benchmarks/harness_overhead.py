"""The harness's own cost and accuracy, measured side by side in one run.

    python benchmarks/harness_overhead.py [--rounds 5] [--json out.json]

1. Per-sample overhead: wall time per sample of the engine timing an empty operation, against a
   bare `perf_counter_ns` loop timing the same operation.
2. A 64x64 float32 torch matmul: the median from torch.utils.benchmark's blocked_autorange and
   the median from our engine, alternating, several rounds; their ratio.
3. The spin workload: measured median against the requested time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from harness.backends.numpy import NumpyBackend
from harness.backends.torch import TorchBackend
from harness.timing import Engine, TimingPolicy
from workloads.spin import Spin


def bare_loop_ns(op, n: int) -> float:
    clock = time.perf_counter_ns
    samples = []
    start = clock()
    for _ in range(n):
        t0 = clock()
        op()
        samples.append(clock() - t0)
    return (clock() - start) / n


def engine_loop_ns(backend, op, n: int) -> tuple[float, int]:
    # overhead_frac=1 and no steady-state check keep block=1: one call per sample, as in the
    # bare loop
    policy = TimingPolicy(target_ci=1e-12, budget=1e9, min_samples=n, max_samples=n,
                          warmup_budget=0.01, overhead_frac=1.0, min_block_time=0.0)
    engine = Engine(backend, policy)
    start = time.perf_counter_ns()
    timing = engine.measure(op)
    elapsed = time.perf_counter_ns() - start
    return elapsed / len(timing.samples), timing.block


def matmul_side_by_side(rounds: int) -> dict[str, float]:
    import torch
    from torch.utils.benchmark import Timer

    backend = TorchBackend("cpu")
    backend.setup()
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    policy = TimingPolicy(budget=1.0, target_ci=0.005)
    ours, theirs, bare, blocks, singles = [], [], [], [], []
    for _ in range(rounds):
        # the arbiter: back-to-back calls in a bare perf_counter_ns loop, blocks of 100
        per_block = []
        for _ in range(200):
            t0 = time.perf_counter_ns()
            for _ in range(100):
                torch.mm(a, b)
            per_block.append((time.perf_counter_ns() - t0) / 100 * 1e-9)
        bare.append(statistics.median(per_block))
        # Timer runs with 1 thread unless told otherwise: give it the threads our engine has.
        m = Timer(stmt="torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b},
                  num_threads=torch.get_num_threads())
        theirs.append(m.blocked_autorange(min_run_time=1.0).median)
        t = Engine(backend, policy).measure(lambda: torch.mm(a, b))
        ours.append(float(np.median(t.samples)))
        blocks.append(t.block)
        singles.append(t.single_call_s)
    o, th, ba = statistics.median(ours), statistics.median(theirs), statistics.median(bare)
    return {"ours_median_s": o, "torch_blocked_autorange_median_s": th, "ratio": o / th,
            "bare_loop_median_s": ba, "ratio_to_bare": o / ba, "bare_rounds_s": bare,
            "ours_rounds_s": ours, "torch_rounds_s": theirs, "our_blocks": blocks,
            "our_rule": t.block_rule, "single_call_rounds_s": singles,
            "torch_threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args()

    cpu = NumpyBackend("cpu")
    cpu.setup()

    def noop() -> None:
        return None

    bare, ours = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop_ns(noop, args.samples))
        ours.append(engine_loop_ns(cpu, noop, args.samples)[0])
    engine = Engine(cpu, TimingPolicy())
    overhead = {
        "bare_loop_ns_per_sample": statistics.median(bare),
        "engine_ns_per_sample": statistics.median(ours),
        "engine_extra_ns_per_sample": statistics.median(ours) - statistics.median(bare),
        "engine_calibrated_overhead_ns": engine.overhead * 1e9,
        "overhead_rule_min_sample_us": engine.block_for(1e-9) * 1e-9 * 1e6,
    }
    print("1. per-sample cost, empty operation (median of rounds)")
    for k, v in overhead.items():
        print(f"   {k:32s} {v:10.1f}")

    mm = matmul_side_by_side(args.rounds)
    print("2. 64x64 float32 torch.mm, median per call")
    print(f"   torch blocked_autorange  {mm['torch_blocked_autorange_median_s'] * 1e6:8.3f} us")
    print(f"   accelbench engine        {mm['ours_median_s'] * 1e6:8.3f} us  "
          f"(blocks {min(mm['our_blocks'])}-{max(mm['our_blocks'])}, rule {mm['our_rule']})")
    single = statistics.median(mm["single_call_rounds_s"])
    print(f"   engine, calls timed singly {single * 1e6:6.3f} us  (its check after warm-up)")
    print(f"   bare loop, blocks of 100 {mm['bare_loop_median_s'] * 1e6:8.3f} us")
    print(f"   ratio ours/torch         {mm['ratio']:8.4f}")
    print(f"   ratio ours/bare          {mm['ratio_to_bare']:8.4f}")

    spin_rows = []
    print("3. spin: requested vs measured median")
    for us in (1.0, 10.0, 100.0, 1000.0):
        prepared = Spin().prepare(cpu, {"us": us})
        t = Engine(cpu, TimingPolicy(budget=1.0)).measure(prepared.op)
        med = float(np.median(t.samples))
        row = {"us": us, "median_us": med * 1e6, "error_pct": (med * 1e6 / us - 1) * 100,
               "block": t.block, "block_rule": t.block_rule,
               "spin_self_cost_ns": prepared.info["self_cost_s"] * 1e9}
        spin_rows.append(row)
        print(f"   {us:7.1f} us -> {row['median_us']:10.3f} us  ({row['error_pct']:+.2f}%)  "
              f"block {t.block} ({t.block_rule}), "
              f"spin's own call cost {row['spin_self_cost_ns']:.0f} ns")
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump({"overhead": overhead, "matmul": mm, "spin": spin_rows}, fh, indent=1)


if __name__ == "__main__":
    main()
