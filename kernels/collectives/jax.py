"""`jax`: XLA collectives across the devices of one process (`psum`, `all_gather`,
`psum_scatter`, `all_to_all` under `shard_map`), on the `jax:<device>` compute backend.

On a CPU host, XLA shows several host devices when told to before JAX starts:
`XLA_FLAGS=--xla_force_host_platform_device_count=4 bench run -w allreduce -b jax:cpu`. Each
device is a participant (the n of the bus-bandwidth factors); arrays are immutable, so every
operation is out of place. Multi-process JAX (jax.distributed) is not wired in yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.errors import UserError
from kernels.collectives.base import Bound, Collectives

SUPPORTED = ("allreduce", "allgather", "reduce-scatter", "alltoall")
OPS = ("sum", "max", "min")  # lax has no product across devices
IMMUTABLE = True  # every operation is out of place


class JaxCollectives(Collectives):
    supported = SUPPORTED

    def __init__(self, backend: Any) -> None:
        import jax
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as P

        try:
            from jax import shard_map
        except ImportError:  # older JAX
            from jax.experimental.shard_map import shard_map  # type: ignore[no-redef]
        self.jax, self.shard_map, self.P = jax, shard_map, P
        kind = backend.device.split(":", 1)[0]
        self.devices = jax.devices(kind)
        self.size = len(self.devices)
        self.local = list(range(self.size))
        self.mesh = Mesh(np.array(self.devices), ("x",))
        self.sharding = NamedSharding(self.mesh, P("x"))

    def barrier(self) -> None:
        return None  # one process: each operation is waited for (block_until_ready)

    def describe(self) -> dict[str, Any]:
        return {"jax": self.jax.__version__, "devices": self.size,
                "device_kind": getattr(self.devices[0], "device_kind", "")}

    def prepare(self, coll: str, inputs: list[np.ndarray], *, op: str, root: int,
                in_place: bool, mode: str, window: int = 1) -> Bound:
        jax, lax, P, n = self.jax, self.jax.lax, self.P, self.size
        if coll not in SUPPORTED:
            raise UserError(f"jax has no {coll}; it has: {', '.join(SUPPORTED)}")
        if in_place:
            raise UserError("jax arrays are immutable: use in_place=false")
        reducers = {"sum": lax.psum, "max": lax.pmax, "min": lax.pmin}
        if op not in reducers:
            raise UserError(f"jax has no {op} reduction across devices; use sum, max or min")
        red = reducers[op]
        c = inputs[0].size // n

        def body(x: Any) -> Any:  # x: this device's row, shape (1, count)
            row = x[0]
            if coll == "allreduce":
                out = red(row, "x")
            elif coll == "allgather":
                out = lax.all_gather(row, "x", tiled=True)
            elif coll == "reduce-scatter":
                if op != "sum":
                    raise UserError("jax's reduce-scatter (psum_scatter) only sums")
                out = lax.psum_scatter(row, "x", tiled=True)
            else:
                out = lax.all_to_all(row.reshape(n, c), "x", 0, 0, tiled=True).reshape(-1)
            return out[None]

        fn = jax.jit(self.shard_map(body, mesh=self.mesh, in_specs=P("x"), out_specs=P("x")))
        x = jax.device_put(np.stack(inputs), self.sharding)
        last: list[Any] = []

        def run() -> Any:
            out = fn(x)
            last[:] = [out]
            return out

        def results() -> list[np.ndarray]:
            out = np.asarray(last[0] if last else run())
            return [out[i] for i in range(n)]

        return Bound(run=run, results=results, reset=lambda: None,
                     info={"buffers": "device", "devices": n})


IMPLEMENTATION = JaxCollectives  # what kernels.collectives.collectives_for makes
