"""Collectives, measured as nccl-tests and the OSU micro-benchmarks do: `allreduce`, `allgather`,
`reduce-scatter`, `broadcast`, `reduce`, `alltoall` and `p2p` (ping-pong latency, uni- and
bidirectional bandwidth) on any collective backend (`mpi`, `gloo`, `nccl`, `grpc`, `jax`).

One parameterised workload: `Collective.for_op(name)` makes each registered class.

- `size` is the byte size of the larger buffer, as in nccl-tests (allgather: the gathered output;
  reduce-scatter and alltoall: the input). Sweeps: `-p size=8B..64MiB*2` (x2 steps) or `+STEP`.
  Where a size does not split evenly over the ranks it is rounded down (recorded as `size_bytes`).
- Per sample: the backend's barrier, then each rank times its operation; the figure is the max
  across ranks (harness.timing.DistributedEngine).
- p2p bandwidth follows the OSU convention (osu_bw, osu_bibw): one timed call is one *window* of
  `window` messages in flight (default 64, OSU's window_size). `uni`: rank 0 posts `window`
  non-blocking sends and waits for them, rank 1 posts `window` receives and waits, then sends a
  small ack; `bi`: both ranks post `window` receives and `window` sends, then wait for all. The
  window amortises the per-message latency and the ack's round trip, so small messages report
  bandwidth rather than latency. A window's messages reuse one receive buffer, as OSU's do.
  `pingpong` has no `window` (one message each way per call; it is left out of its case key,
  and the metrics record window 1).
- p2p ping-pong: one timed call is a round trip, two one-way trips (`Work.units_per_call` 2), so
  its samples, median, latency and bandwidth are all one-way: half the round trip, as
  osu_latency reports, in the main table as in nccl-tests' (`timing.units_per_call` records it).
- Metrics: `time_s` (p2p ping-pong: one way; uni/bi: one window), `algbw_gbps` =
  bytes moved / `time_s` (size; p2p uni: size × window; bi: 2 × size × window, both
  directions), and `busbw_gbps = algbw × factor` with nccl-tests' factors: allreduce 2(n-1)/n;
  allgather, reduce-scatter, alltoall (n-1)/n; broadcast, reduce and p2p 1. Bus bandwidth is the
  figure to hold against a link's peak: it does not depend on n for a bandwidth-optimal algorithm.
- The check runs the operation once on known inputs and compares every local participant's output
  with the exact answer (inputs are small integers, so every reduction is exact); a wrong element
  fails the case and says where.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness import Backend, CheckFailed, Param, Prepared, UserError, Work, Workload
from harness.workmodel import COLLECTIVE_OPS, bus_factor
from kernels.collectives import collectives_for, transports
from kernels.collectives.base import DTYPES, P2P_MODES, REDUCE_OPS, Supports

TRANSPORTS = transports()  # backend model -> its kernels.collectives module
MODELS = tuple(TRANSPORTS)
FAULT_ENV = "BENCH_FAULT"  # test hook: corrupt:RANK makes that rank's result wrong before the check
SPLIT = tuple(c for c, op in COLLECTIVE_OPS.items() if op.split)  # buffer splits into n chunks
DEFAULT_WINDOW = 64  # OSU's window_size for osu_bw / osu_bibw
MAX_WINDOW = 4096


def supports(model: str) -> Supports | None:
    """What a collective backend model declares it can do (its module's SUPPORTED); None when
    the module cannot be imported here."""
    module = _kernel_module(model)
    return module.SUPPORTED if module is not None else None


def inputs_of(rank: int, count: int, dtype: str, op: str) -> np.ndarray:
    """Participant `rank`'s input: small integers, so sums and products are exact."""
    i = np.arange(count, dtype=np.int64)
    # prod: 1 or 2, so a product over n ranks is at most 2**n; else small integers around 0
    values = 1 + (i + rank) % 2 if op == "prod" else (i * 7 + rank * 13) % 17 - 8
    return values.astype(dtype)


def _reduce(op: str, arrays: Any) -> np.ndarray:
    fn = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}[op]
    acc = None
    for a in arrays:
        acc = a.copy() if acc is None else fn(acc, a, out=acc)
    assert acc is not None
    return acc


@dataclass(frozen=True)
class _KnownInputs:
    """The check's inputs (inputs_of) and numpy's array operations, for CollectiveOp.expected."""

    dtype: str
    op: str
    root: int
    mode: str

    def of(self, rank: int, count: int) -> np.ndarray:
        return inputs_of(rank, count, self.dtype, self.op)

    def reduce(self, arrays: Any) -> np.ndarray:
        return _reduce(self.op, arrays)

    def concat(self, arrays: Any) -> np.ndarray:
        return np.concatenate(list(arrays))


def expected(coll: str, rank: int, n: int, count: int, p: Mapping[str, Any]) -> np.ndarray | None:
    """What participant `rank` must hold after the operation (None: nothing defined)."""
    inputs = _KnownInputs(p["dtype"], p.get("op", "sum"), p.get("root", 0),
                          p.get("mode", "pingpong"))
    return COLLECTIVE_OPS[coll].expected(inputs, rank, n, count)


def p2p_window(coll: str, params: Mapping[str, Any]) -> int | None:
    """Messages per timed call of p2p uni/bi (None: not a windowed operation; pingpong)."""
    if coll != "p2p" or params.get("mode", "pingpong") == "pingpong":
        return None
    return int(params.get("window", DEFAULT_WINDOW))


def _corrupt_rank() -> int | None:
    kind, _, rank = os.environ.get(FAULT_ENV, "").partition(":")
    return int(rank) if kind == "corrupt" and rank.isdigit() else None


class Collective(Workload):
    """One collective operation; subclasses fix `coll` (see `for_op`)."""

    coll: ClassVar[str] = "allreduce"
    models = MODELS
    default_backend = "mpi:cpu"

    @classmethod
    def for_op(cls, coll: str) -> type[Collective]:
        spec = COLLECTIVE_OPS[coll]
        params: dict[str, Param] = {
            "size": Param("size", 1 << 20, "bytes of the larger buffer, as nccl-tests counts "
                          "(sweep: 8B..64MiB*2)", min=1, max=1 << 40),
            "dtype": Param("str", "float32", "element type", choices=DTYPES),
        }
        if spec.reduces:
            params["op"] = Param("str", "sum", "reduction", choices=REDUCE_OPS)
        if spec.in_place:
            params["in_place"] = Param("bool", False, "output buffer is the input buffer")
        if spec.rooted:
            params["root"] = Param("int", 0, "root rank", min=0)
        if coll == "p2p":
            params["mode"] = Param("str", "pingpong", "pingpong: latency (half a round trip); "
                                   "uni / bi: bandwidth one way / both ways", choices=P2P_MODES)
            params["window"] = Param("int", DEFAULT_WINDOW, "uni/bi: messages in flight per "
                                     "iteration, as OSU's window_size (not a pingpong "
                                     "parameter)", min=1, max=MAX_WINDOW,
                                     when=("mode", ("uni", "bi")))
        what = {"p2p": "point-to-point between ranks 0 and 1: ping-pong latency, uni/bi "
                       "bandwidth (OSU)"}.get(coll, f"{coll} across ranks (nccl-tests metrics)")
        # the backends that declare this operation (a module that cannot be imported here is
        # listed: running it says what to install)
        models = tuple(m for m in MODELS
                       if (s := supports(m)) is None or coll in s.collectives)
        return type(f"Collective_{coll.replace('-', '_')}", (cls,),
                    {"coll": coll, "name": coll, "params": params, "description": what,
                     "models": models})

    @classmethod
    def supports_by_model(cls) -> dict[str, dict[str, Any]]:
        """For `bench list`: what each backend listed for this operation declares."""
        return {m: (s.to_dict() if (s := supports(m)) is not None else None)
                for m in cls.models}

    def validate(self, params: Mapping[str, Any], backend: str) -> None:
        itemsize = np.dtype(params["dtype"]).itemsize
        if params["size"] % itemsize:
            raise UserError(f"{self.name}: size {params['size']} B is not a whole number of "
                            f"{params['dtype']} elements ({itemsize} B each); use a multiple "
                            f"of {itemsize}")
        model = backend.split(":", 1)[0]
        declared = supports(model)
        why = declared.refusal(model, self.coll, params) if declared is not None else None
        if why:
            raise UserError(why)

    def work(self, params: Mapping[str, Any]) -> Work:
        window = p2p_window(self.coll, params)
        if self.coll == "p2p" and window is None:  # one call: a message there and one back
            return Work(items=1, bytes=float(params["size"]), item_unit="messages",
                        units_per_call=2.0)
        if window is None:
            return Work(items=1, bytes=float(params["size"]), item_unit="ops")
        # uni/bi: one call is one window of messages (each way, for bi)
        ways = 2 if params["mode"] == "bi" else 1
        return Work(items=ways * window, bytes=float(ways * window * params["size"]),
                    item_unit="messages")

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        coll, p = self.coll, params
        comm = collectives_for(backend)
        n = comm.size
        itemsize = np.dtype(p["dtype"]).itemsize
        count = p["size"] // itemsize
        if coll in SPLIT:
            count -= count % n
        if count == 0:
            raise UserError(f"{coll}: size {p['size']} B is less than one {p['dtype']} element "
                            f"per rank for {n} ranks")
        if "root" in p and p["root"] >= n:
            raise UserError(f"{coll}: root {p['root']} is not a rank (ranks 0..{n - 1})")
        op = p.get("op", "sum")
        local_count = count // n if coll == "allgather" else count
        inputs = [inputs_of(r, local_count, p["dtype"], op) for r in comm.local]
        bound = comm.prepare(coll, inputs, op=op, root=p.get("root", 0),
                             in_place=p.get("in_place", False), mode=p.get("mode", "pingpong"),
                             window=p2p_window(coll, p) or 1)
        info: dict[str, Any] = {"ranks": n, "size_bytes": count * itemsize, "count": count,
                                **bound.info}
        if coll == "p2p":
            info["window"] = p2p_window(coll, p) or 1
        if count * itemsize != p["size"]:
            info["rounded_from"] = p["size"]

        def check() -> None:
            bound.reset()
            bound.run()
            backend.synchronize(None)
            got = bound.results()
            corrupt = _corrupt_rank()
            problems = []
            for r, out in zip(comm.local, got, strict=True):
                if corrupt == r:
                    out = out.copy()
                    out.flat[out.size // 2] += 1
                want = expected(coll, r, n, count, p)
                if want is None:
                    continue
                out = out[: want.size]
                bad = np.flatnonzero(out != want)
                if bad.size:
                    i = int(bad[0])
                    problems.append(f"participant {r}: {bad.size} of {want.size} elements wrong "
                                    f"(first at {i}: got {out[i]}, want {want[i]})")
            if problems:
                raise CheckFailed(f"{coll}: " + "; ".join(problems))
            info["wrong"] = 0
            bound.reset()

        return Prepared(op=bound.run, check=check, barrier=comm.barrier, info=info)

    def extra_metrics(self, params: Mapping[str, Any], median_s: float,
                      info: Mapping[str, Any]) -> dict[str, float]:
        n, size = info["ranks"], info["size_bytes"]
        t = median_s
        moved = size
        if self.coll == "p2p":
            window = p2p_window(self.coll, params)
            # pingpong: median_s is already one-way, half the round trip (Work.units_per_call)
            if window is not None:  # one call is one window, as osu_bw / osu_bibw count
                moved = size * window * (2 if params["mode"] == "bi" else 1)
        algbw = moved / t if t > 0 else 0.0
        out = {"time_s": t, "algbw_gbps": algbw / 1e9,
               "busbw_gbps": algbw * bus_factor(self.coll, n) / 1e9,
               "size_bytes": float(size), "count": float(info["count"]), "ranks": float(n)}
        if self.coll == "p2p":
            out["window"] = float(p2p_window(self.coll, params) or 1)
        if "wrong" in info:
            out["wrong"] = float(info["wrong"])
        return out


def _kernel_module(model: str) -> Any:
    """The kernels.collectives module of a backend model (None if it cannot be imported)."""
    import importlib

    if model not in TRANSPORTS:
        return None
    try:
        return importlib.import_module(TRANSPORTS[model])
    except ImportError:
        return None


AllReduce = Collective.for_op("allreduce")
AllGather = Collective.for_op("allgather")
ReduceScatter = Collective.for_op("reduce-scatter")
Broadcast = Collective.for_op("broadcast")
Reduce = Collective.for_op("reduce")
AllToAll = Collective.for_op("alltoall")
P2P = Collective.for_op("p2p")
