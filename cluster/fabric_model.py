"""The alpha-beta (latency-bandwidth) model of a fabric: fitted from measured sweeps, used to
predict collective times, bus bandwidth and data-parallel scaling efficiency at node counts this
machine cannot reach.

A message of m bytes between two ranks takes  t = alpha + m / beta  (Hockney). Collective costs on
p ranks for a buffer of m bytes (Thakur, Rabenseifner and Gropp, 2005; the same conventions as
nccl-tests' sizes):

  collective      ring (bandwidth-optimal)        tree (latency-optimal), L = ceil(log2 p)
  allreduce       2(p-1) a + 2(p-1)/p m/b         2 L (a + m/b)          reduce + broadcast
  allgather       (p-1) a + (p-1)/p m/b           L a + (p-1)/p m/b      recursive doubling
  reduce-scatter  (p-1) a + (p-1)/p m/b           L a + (p-1)/p m/b      recursive halving
  broadcast       (p-1) a + m/b  (pipelined)      L (a + m/b)            binomial tree
  alltoall        (p-1) a + (p-1)/p m/b           (pairwise exchange for both)
  p2p             a + m/b

Every cost is linear in (alpha, 1/beta), so a fit from any of these sweeps is a weighted linear
least-squares problem (weights 1/t^2: relative error, so microsecond and second points count alike).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import UserError
from harness.files import not_a_file
from harness.workmodel import (
    COLLECTIVE_OPS,
    FABRIC_MODELLED,
    bus_factor,  # noqa: F401 (the one definition, re-exported here)
)

if TYPE_CHECKING:
    from results.stored import StoredMeasurement

COLLECTIVES = FABRIC_MODELLED
ALGORITHMS = ("ring", "tree")


@dataclass(frozen=True)
class Fabric:
    """alpha: seconds per message; beta: bytes per second per link direction."""

    name: str
    alpha_s: float
    beta_bytes_per_s: float
    source: str = "preset"
    description: str = ""
    fit: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# Nominal line rates and typical small-message MPI latencies: starting points, not measurements.
# Fit your own with `bench fabric-model fit RUN -o fabric.json`, then predict with
# --fabric fabric.json.
PRESETS = {
    "hdr": Fabric("hdr", 1.1e-6, 200e9 / 8, description="InfiniBand HDR 200 Gb/s (nominal)"),
    "ndr": Fabric("ndr", 1.0e-6, 400e9 / 8, description="InfiniBand NDR 400 Gb/s (nominal)"),
    "efa": Fabric("efa", 15e-6, 100e9 / 8,
                  description="AWS EFA, one 100 Gb/s device per node (nominal)"),
    "100gbe": Fabric("100gbe", 10e-6, 100e9 / 8,
                     description="100 Gb Ethernet with TCP (nominal)"),
}


def coefficients(collective: str, algorithm: str, p: int, m: float) -> tuple[float, float]:
    """(c_alpha, c_bytes) with time = c_alpha * alpha + c_bytes / beta (each operation's record
    holds its cost)."""
    op = COLLECTIVE_OPS.get(collective)
    found = op.coefficients(algorithm, p, m) if op is not None else None
    if found is None:
        raise UserError(f"no cost model for {collective!r}; known: {', '.join(COLLECTIVES)}")
    return found


def predict_time(fabric: Fabric, collective: str, algorithm: str, p: int, m: float) -> float:
    ca, cb = coefficients(collective, algorithm, p, m)
    return ca * fabric.alpha_s + cb / fabric.beta_bytes_per_s


def dp_efficiency(fabric: Fabric, p: int, gradient_bytes: float, step_s: float,
                  algorithm: str = "ring", overlap: float = 0.0) -> float:
    """Weak-scaling efficiency of data-parallel training: compute time over compute plus the
    part of the gradient allreduce that is not overlapped with it."""
    comm = predict_time(fabric, "allreduce", algorithm, p, gradient_bytes)
    return step_s / (step_s + (1 - overlap) * comm)


@dataclass
class Point:
    collective: str
    ranks: int
    size: float
    time_s: float
    run_id: str = ""


def fit(points: Sequence[Point], algorithm: str = "ring", name: str = "fitted") -> Fabric:
    """Weighted least squares for (alpha, 1/beta); errors reported on the same points."""
    usable = [p for p in points if p.time_s > 0 and (p.ranks >= 2 or p.collective == "p2p")]
    if len(usable) < 2:
        raise UserError("need at least two measured sizes (p2p or collective sweeps on 2+ ranks) "
                        "to fit alpha and beta; run e.g. `bench run -w p2p -b mpi "
                        "-p size=8B..16MiB*4 --launcher mpirun -n 2`")
    a = np.array([coefficients(p.collective, algorithm, p.ranks, p.size) for p in usable])
    t = np.array([p.time_s for p in usable])
    w = 1 / t
    sol, *_ = np.linalg.lstsq(a * w[:, None], t * w, rcond=None)
    alpha, inv_beta = float(sol[0]), float(sol[1])
    if inv_beta <= 0:
        raise UserError("the sweep shows no size dependence (fitted bandwidth is not positive); "
                        "include larger messages (MiB range)")
    fabric = Fabric(name, max(alpha, 0.0), 1 / inv_beta, source="fit")
    errors = relative_errors(fabric, usable, algorithm)
    return Fabric(fabric.name, fabric.alpha_s, fabric.beta_bytes_per_s, "fit",
                  f"fitted on {len(usable)} point(s), {algorithm} cost model",
                  {"points": len(usable), "algorithm": algorithm,
                   "median_abs_rel_error": float(np.median(np.abs(errors))),
                   "max_abs_rel_error": float(np.max(np.abs(errors))),
                   "negative_alpha_clamped": alpha < 0})


def relative_errors(fabric: Fabric, points: Iterable[Point], algorithm: str = "ring") -> np.ndarray:
    pts = list(points)
    predicted = np.array([predict_time(fabric, p.collective, algorithm, p.ranks, p.size)
                          for p in pts])
    measured = np.array([p.time_s for p in pts])
    return predicted / measured - 1


def points_from_measurements(rows: Iterable[StoredMeasurement]) -> list[Point]:
    """Collective and p2p (ping-pong) measurements of stored runs as fit points."""
    out = []
    for m in rows:
        metrics = m.metrics
        workload = m.workload
        params = m.params or {}
        if not m.ok or workload not in COLLECTIVES or "time_s" not in metrics:
            continue
        if workload == "p2p" and params.get("mode", "pingpong") != "pingpong":
            continue
        out.append(Point(workload, int(metrics.get("ranks", 2)),
                         float(metrics.get("size_bytes", params.get("size", 0))),
                         float(metrics["time_s"]), m.run_id))
    return out


def load_fabric(ref: str) -> Fabric:
    if ref in PRESETS:
        return PRESETS[ref]
    path = Path(ref)
    if not path.is_file():
        raise UserError(f"unknown fabric {ref!r}: not a preset ({', '.join(PRESETS)}) and "
                        f"{not_a_file(path)}; give a preset or a file written by "
                        "`bench fabric-model fit -o`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fabric = Fabric(**data)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a fabric file written by `bench fabric-model fit` (not "
                        "UTF-8 text)") from None
    except OSError as exc:
        raise UserError(f"cannot read fabric file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise UserError(f"{path}: not a fabric file written by `bench fabric-model fit` "
                        f"({' '.join(str(exc).split())})") from None
    alpha, beta = fabric.alpha_s, fabric.beta_bytes_per_s
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in (alpha, beta)) or alpha < 0 or beta <= 0:
        raise UserError(f"{path}: alpha_s must be a number >= 0 and beta_bytes_per_s a "
                        f"positive number, got {alpha!r} and {beta!r}; fit it again with "
                        "`bench fabric-model fit RUN -o FILE`")
    return fabric
