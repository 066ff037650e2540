"""`jax`: XLA collectives (`psum`, `all_gather`, `psum_scatter`, `all_to_all` under
`shard_map`) across the devices of one process or of several, on the `jax:<device>` compute
backend.

On a CPU host, XLA shows several host devices when told to before JAX starts:
`XLA_FLAGS=--xla_force_host_platform_device_count=4 bench run -w allreduce -b jax:cpu`. Each
device is a participant (the n of the bus-bandwidth factors); arrays are immutable, so every
operation is out of place.

Several processes: `bench run -w allreduce -b jax:cpu --launcher local -n 2` (or mpirun, srun,
torchrun) joins the ranks' JAX processes with jax.distributed (harness.backends.jax: coordinator
at ``BENCH_JAX_COORDINATOR`` on rank 0's host; on a CPU, Gloo's cross-process collectives). The
mesh spans `jax.devices()`, every process's devices in process order, and a device's participant
index is its position there; each process feeds its own devices' rows
(`make_array_from_single_device_arrays`) and reads back and checks its own devices' outputs.
With two processes of two host devices each there are four participants. Between samples the
processes meet at a barrier made of the backend's own transport: a psum of one integer over every
device, waited for. Gloo prints a line on stdout when it first connects a device group; that first
call runs in `prepare`, with the C-level stdout sent to stderr, so `--json` stays clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from harness.errors import UserError
from kernels.collectives.base import Bound, Collectives, Supports

# what this backend can do (read by the workloads' validation and `bench list`): lax has no
# product across devices, psum_scatter only sums, every operation is out of place, and JAX
# computes in 32 bits unless jax_enable_x64 is set (a float64 buffer would silently shrink)
SUPPORTED = Supports(collectives=("allreduce", "allgather", "reduce-scatter", "alltoall"),
                     dtypes=("float32", "int32"), ops=("sum", "max", "min"), in_place=False,
                     sum_only=("reduce-scatter",))


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what C++ code writes on fd 1 to fd 2 for a while (Gloo's "[Gloo] Rank 0 is
    connected to 1 peer ranks" would otherwise land in the middle of `--json` output)."""
    try:
        out, err = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured streams (pytest): nothing to move
        yield
        return
    sys.stdout.flush()
    saved = os.dup(out)
    try:
        os.dup2(err, out)
        yield
    finally:
        os.dup2(saved, out)
        os.close(saved)


class JaxCollectives(Collectives):
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
        # Every process's devices (jax.distributed joined them in the backend's setup), in
        # process order; a participant's index is its device's position here.
        self.devices = jax.devices(kind)
        self.size = len(self.devices)
        self.processes = int(jax.process_count())
        me = jax.process_index()
        self.local = [i for i, d in enumerate(self.devices) if d.process_index == me]
        self.mesh = Mesh(np.array(self.devices), ("x",))
        self.sharding = NamedSharding(self.mesh, P("x"))
        self._barrier: Any = None
        if self.processes > 1:
            one = self._place([np.ones((1,), np.int32) for _ in self.local])
            meet = jax.jit(shard_map(lambda v: jax.lax.psum(v, "x"), mesh=self.mesh,
                                     in_specs=P("x"), out_specs=P("x")))
            self._barrier = lambda: meet(one).block_until_ready()
            with _stdout_to_stderr():
                self._barrier()  # compiles, and connects Gloo's group

    def _place(self, rows: list[np.ndarray]) -> Any:
        """The global (participants, ...) array whose local rows are `rows` (one per local
        participant, in `self.local`'s order)."""
        jax = self.jax
        shape = (self.size, *rows[0].shape)
        shards = [jax.device_put(row[None], self.devices[i])
                  for i, row in zip(self.local, rows, strict=True)]
        return jax.make_array_from_single_device_arrays(shape, self.sharding, shards)

    def barrier(self) -> None:
        """One process: nothing (each operation is waited for, block_until_ready). Several: a
        psum over every device of every process, waited for."""
        if self._barrier is not None:
            self._barrier()

    def describe(self) -> dict[str, Any]:
        return {"jax": self.jax.__version__, "devices": self.size,
                "processes": self.processes, "local_devices": len(self.local),
                "device_kind": getattr(self.devices[0], "device_kind", "")}

    def prepare(self, coll: str, inputs: list[np.ndarray], *, op: str, root: int,
                in_place: bool, mode: str, window: int = 1) -> Bound:
        jax, lax, P, n = self.jax, self.jax.lax, self.P, self.size
        why = SUPPORTED.refusal("jax", coll, {"op": op, "in_place": in_place,
                                              "dtype": str(inputs[0].dtype)})
        if why:
            raise UserError(why)
        reducers = {"sum": lax.psum, "max": lax.pmax, "min": lax.pmin}
        red = reducers[op]
        c = inputs[0].size // n

        def body(x: Any) -> Any:  # x: this device's row, shape (1, count)
            row = x[0]
            if coll == "allreduce":
                out = red(row, "x")
            elif coll == "allgather":
                out = lax.all_gather(row, "x", tiled=True)
            elif coll == "reduce-scatter":
                out = lax.psum_scatter(row, "x", tiled=True)
            else:
                out = lax.all_to_all(row.reshape(n, c), "x", 0, 0, tiled=True).reshape(-1)
            return out[None]

        fn = jax.jit(self.shard_map(body, mesh=self.mesh, in_specs=P("x"), out_specs=P("x")))
        x = self._place(inputs)
        last: list[Any] = []

        def run() -> Any:
            out = fn(x)
            last[:] = [out]
            return out

        if self.processes > 1:  # compile and connect now, every process together
            with _stdout_to_stderr():
                jax.block_until_ready(run())

        def results() -> list[np.ndarray]:
            out = last[0] if last else run()
            rows = {s.device: s.data for s in out.addressable_shards}
            return [np.asarray(rows[self.devices[i]])[0] for i in self.local]

        return Bound(run=run, results=results, reset=lambda: None,
                     info={"buffers": "device", "devices": n, "processes": self.processes,
                           "local_devices": len(self.local)})


IMPLEMENTATION = JaxCollectives  # what kernels.collectives.collectives_for makes
