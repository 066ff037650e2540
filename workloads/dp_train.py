"""`dp-train`: one data-parallel training step of a small CNN (torch on the CPU), its gradients
all-reduced through a collective backend (`mpi`, `gloo`, `grpc`) the way DDP does it: every
gradient copied into one flat bucket, one allreduce, averaged, then the optimiser step.

Run it at several world sizes (`bench run -w dp-train -b gloo --ranks 1,2`) and `bench report
scaling` turns the runs into scaling efficiency:

- weak scaling (`scaling=weak`, `batch` per rank): E(n) = throughput(n) / (n × throughput(1));
- strong scaling (`scaling=strong`, `batch` global, split over the ranks): E(n) = T(1) / (n × T(n)).

Both equal samples/s at n over n × samples/s at 1. Each measurement stores `world_size`,
`samples_per_s`, `comm_s` (allreduce time per step on rank 0, waiting for slower ranks included)
and `comm_share` (comm_s / step time); under `--ranks` the later runs also store
`scaling_efficiency` against the first run's throughput.

(This is a self-contained model; the `cnn-train` workload of the compute suite is the richer one.)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness import Backend, CheckFailed, Param, Prepared, UserError, Work, Workload
from kernels.collectives import collectives_for

BASELINE_ENV = "BENCH_SCALING_BASELINE"  # JSON file: case key -> samples/s at the first size


def _model(torch: Any, width: int) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 8 * 8, 10),
    )


class DataParallelTrain(Workload):
    name = "dp-train"
    description = ("data-parallel CNN training step (torch CPU), gradients all-reduced over a "
                   "collective backend; for scaling efficiency")
    params = {
        "batch": Param("int", 32, "images per rank (weak) or in all (strong)", min=1),
        "scaling": Param("str", "weak", "weak: batch per rank; strong: global batch split",
                         choices=("weak", "strong")),
        "width": Param("int", 16, "channels of the first convolution", min=1, max=512),
    }
    models = ("mpi", "gloo", "grpc")
    default_backend = "gloo:cpu"

    def work(self, params: Mapping[str, Any]) -> Work:
        return Work(items=params["batch"], item_unit="samples")

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        import torch

        comm = collectives_for(backend)
        n, rank = comm.size, comm.local[0]
        batch = params["batch"]
        local = batch if params["scaling"] == "weak" else batch // n
        if local < 1:
            raise UserError(f"dp-train: strong scaling of batch {batch} over {n} ranks leaves "
                            "no sample per rank")
        torch.manual_seed(0)  # the same initial weights on every rank, as DDP broadcasts them
        model = _model(torch, params["width"])
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        gen = torch.Generator().manual_seed(1000 + rank)
        x = torch.randn(local, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (local,), generator=gen)
        grads = [p for p in model.parameters()]
        flat = torch.zeros(sum(p.numel() for p in grads))
        bucket = flat.numpy()  # shares memory with `flat`
        loss_fn = torch.nn.CrossEntropyLoss()
        stats = {"comm_s": 0.0, "steps": 0}

        def step() -> None:
            opt.zero_grad(set_to_none=False)
            loss_fn(model(x), y).backward()
            torch.cat([p.grad.reshape(-1) for p in grads], out=flat)
            t0 = time.perf_counter()
            comm.allreduce_inplace(bucket)
            stats["comm_s"] += time.perf_counter() - t0
            stats["steps"] += 1
            flat.div_(n)
            offset = 0
            for p in grads:
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
            opt.step()

        def check() -> None:
            # Every rank must hold the same averaged gradient after the allreduce.
            probe = np.full(8, float(rank + 1), np.float32)
            comm.allreduce_inplace(probe)
            want = n * (n + 1) / 2
            if not np.all(probe == want):
                raise CheckFailed(f"dp-train: gradient allreduce gave {probe[0]}, want {want}")

        info = {"ranks": n, "per_rank_batch": local, "global_batch": local * n,
                "parameters": int(flat.numel()), "gradient_bytes": int(flat.numel()) * 4,
                "stats": stats}
        return Prepared(op=step, check=check, barrier=comm.barrier, info=info)

    def extra_metrics(self, params: Mapping[str, Any], median_s: float,
                      info: Mapping[str, Any]) -> dict[str, float]:
        stats = info["stats"]
        comm_s = stats["comm_s"] / max(1, stats["steps"])
        thr = info["global_batch"] / median_s if median_s > 0 else 0.0
        out = {"step_s": median_s, "samples_per_s": thr, "world_size": float(info["ranks"]),
               "global_batch": float(info["global_batch"]), "comm_s": comm_s,
               "comm_share": min(1.0, comm_s / median_s) if median_s > 0 else 0.0}
        base = _baseline(self.name, params)
        if base:
            out["scaling_efficiency"] = thr / (info["ranks"] * base)
        return out


def _baseline(name: str, params: Mapping[str, Any]) -> float | None:
    path = os.environ.get(BASELINE_ENV)
    if not path:
        return None
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    key = json.dumps([name, sorted(params.items())])
    value = table.get(key)
    return float(value) if value else None
