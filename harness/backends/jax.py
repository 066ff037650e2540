"""JAX/XLA on cpu, gpu or tpu; results are waited for with block_until_ready.

In a job of several ranks (`bench run --launcher local|mpirun|srun|torchrun -n N`), setting up
the backend first joins the ranks' JAX processes with `jax.distributed.initialize` — before any
JAX computation, as JAX requires — so that `jax.devices()` lists every process's devices and the
`jax` collectives (kernels.collectives.jax) run across processes. The coordinator listens on rank
0's host at ``BENCH_JAX_COORDINATOR`` (host:port, set by the launching `bench`: MASTER_ADDR's host
and a free port of its own, never MASTER_PORT; without it, MASTER_ADDR:MASTER_PORT+1). On a CPU the
cross-process collectives are Gloo's (`jax_cpu_collectives_implementation`; a
``JAX_CPU_COLLECTIVES_IMPLEMENTATION`` set by the user, e.g. `mpi`, is kept). What cannot work
(a JAX without multi-process CPU collectives, no coordinator address, its port taken) is agreed
on the control channel: rank 0 says it in one line naming the rank, and every rank exits 2. A
coordinator that cannot be reached is left to the ranks' watchdog (`--timeout`), whose message
names the phase; JAX's own timeouts are set longer, so its abort never comes first.

Compute workloads (gemm, ...) use this process's own devices (`jax.local_devices`), so
`jax:cpu:0` is each rank's first device whether or not the processes are joined.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.backends.base import Backend
from harness.errors import BackendUnavailable, UserError

ENV_JAX_COORDINATOR = "BENCH_JAX_COORDINATOR"  # host:port of jax.distributed's coordinator
CPU_COLLECTIVES = ("gloo", "mpi")


class JaxBackend(Backend):
    model = "jax"
    package = "jax"
    extra = "jax"
    devices = ("cpu", "gpu", "tpu")
    description = "JAX/XLA (jit); waits with block_until_ready"
    processes = 1  # JAX processes joined by jax.distributed (1: this one alone)

    def _setup(self) -> None:
        import jax

        self.jax = jax
        kind, _, index = self.device.partition(":")
        self.processes = join_processes(jax, kind)
        try:
            found = jax.local_devices(backend=kind)
        except RuntimeError:
            found = []
        if not found:
            raise BackendUnavailable(
                f"jax:{self.device}: JAX sees no {kind} device (it has: "
                f"{', '.join(sorted({d.platform for d in jax.local_devices()}))})"
            )
        i = int(index or 0)
        if i >= len(found):
            raise BackendUnavailable(f"jax:{self.device}: only {len(found)} {kind} device(s)")
        self.jax_device = found[i]

    def synchronize(self, result: Any = None) -> None:
        if result is not None:
            self.jax.block_until_ready(result)

    @contextlib.contextmanager
    def profile(self, trace_dir: Path) -> Iterator[Any]:
        """jax.profiler.trace with a Perfetto trace (Chrome trace JSON, gzipped); no TensorBoard."""
        from harness.profiling import ITERATION, Trace

        profiler = self.jax.profiler
        trace = Trace(kind="jax", note=f"jax.profiler.trace on {self.device}",
                      iteration=lambda: profiler.TraceAnnotation(ITERATION))
        with profiler.trace(str(trace_dir), create_perfetto_trace=True):
            yield trace
        found = sorted(trace_dir.rglob("*.trace.json.gz"))
        if not found:
            raise UserError(f"jax:{self.device}: jax.profiler.trace wrote no *.trace.json.gz "
                            f"(jax {self.jax.__version__}); upgrade jax (pip install -U jax)")
        trace.path = found[-1]

    def from_numpy(self, array: Any) -> Any:
        return self.jax.device_put(array, self.jax_device)

    def to_numpy(self, value: Any) -> Any:
        import numpy as np

        return np.asarray(value)

    def describe(self) -> dict[str, Any]:
        d = {"backend": self.name, "jax": self.jax.__version__,
             "device_kind": getattr(self.jax_device, "device_kind", "")}
        if self.processes > 1:
            d["jax_processes"] = self.processes
            d["jax_devices"] = len(self.jax.devices())
            if self.device.startswith("cpu"):
                d["cpu_collectives"] = self.jax.config.jax_cpu_collectives_implementation
        return d


def coordinator_address() -> str | None:
    """Where jax.distributed's coordinator listens (rank 0's host), or None if nothing says."""
    addr = os.environ.get(ENV_JAX_COORDINATOR)
    if addr:
        return addr
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT", "")
    if host and port.isdigit():  # ranks started by hand, torch-style: the next port
        return f"{host}:{int(port) + 1}"
    return None


def _port_taken(port: int) -> str | None:
    """Why the coordinator could not listen on `port` of every address (None: it can).

    JAX's coordinator binds [::]:port and crashes the process (SIGSEGV) when it cannot."""
    for family, host in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            with socket.socket(family) as s:
                s.bind((host, port))
            return None
        except OSError as exc:
            no_ipv6 = exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
            if family == socket.AF_INET6 and no_ipv6:  # try IPv4
                continue
            return exc.strerror or str(exc)
    return None


def _problem(jax: Any, kind: str, rank: int) -> str | None:
    """Why this process cannot join a multi-process JAX job (None: it can)."""
    from jax import distributed

    if not hasattr(distributed, "is_initialized"):
        return (f"jax {jax.__version__} is too old for multi-process collectives "
                "(jax.distributed.is_initialized is missing); pip install -U jax")
    if distributed.is_initialized():
        return None
    if kind == "cpu":
        if not hasattr(jax.config, "jax_cpu_collectives_implementation"):
            return (f"jax {jax.__version__} has no cross-process CPU collectives "
                    "(jax_cpu_collectives_implementation); pip install -U jax")
        chosen = os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION", "gloo").lower()
        if chosen not in CPU_COLLECTIVES:
            return (f"JAX_CPU_COLLECTIVES_IMPLEMENTATION={chosen!r}: multi-process CPU "
                    f"collectives need one of {', '.join(CPU_COLLECTIVES)}")
    try:
        from jax._src import xla_bridge

        used = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        used = False
    if used:
        return ("JAX was used before jax.distributed could join the ranks' processes; "
                "run the jax backend in its own `bench run`")
    addr = coordinator_address()
    if addr is None:
        return (f"no address for jax.distributed's coordinator: set {ENV_JAX_COORDINATOR}="
                "host:port (rank 0's host), or start the ranks with `bench run --launcher "
                "local|mpirun|srun|torchrun -n N`")
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"{ENV_JAX_COORDINATOR}={addr!r} is not host:port"
    if rank == 0:
        why = _port_taken(int(port))
        if why:
            return (f"jax.distributed's coordinator cannot listen on port {port} on rank 0's "
                    f"host ({why}); set {ENV_JAX_COORDINATOR}=host:port to a free port")
    return None


def join_processes(jax: Any, kind: str) -> int:
    """Join this rank's JAX to the other ranks' (jax.distributed.initialize) in a job of several
    ranks; the number of JAX processes (1 for a job of one rank)."""
    from harness.distributed import ControlChannel, current
    from harness.exiting import exit_now

    comm = current()
    if comm.size <= 1 or not isinstance(comm, ControlChannel):
        return 1
    phase = comm.phase
    comm.phase = "checking that JAX can join the ranks"
    answers = comm.allgather({"jax_problem": _problem(jax, kind, comm.rank)})
    bad = [(r, a.get("jax_problem") if isinstance(a, dict) else None)
           for r, a in enumerate(answers)
           if not isinstance(a, dict) or "jax_problem" not in a or a["jax_problem"]]
    if bad:
        r, why = bad[0]
        comm.close()  # part in good order: rank 0 says this one line; every rank exits 2
        if comm.rank != 0:
            exit_now(UserError.exit_code)
        raise UserError(f"jax: rank {r}: {why or 'the ranks were given different commands'}")
    if jax.distributed.is_initialized():  # a second jax backend of the same run
        comm.phase = phase
        return int(jax.process_count())
    addr = coordinator_address()
    assert addr is not None
    if kind == "cpu":
        impl = os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION", "gloo").lower()
        jax.config.update("jax_cpu_collectives_implementation", impl)
    # The watchdog (--timeout) ends a job that cannot reach the coordinator, with a message that
    # names this phase; JAX's own limits are longer, so its abort (SIGABRT) never comes first.
    limit = int(comm.timeout) + 60
    wanted = {"initialization_timeout": limit, "heartbeat_timeout_seconds": limit,
              "shutdown_timeout_seconds": limit}
    accepted = inspect.signature(jax.distributed.initialize).parameters
    comm.phase = f"jax.distributed.initialize (coordinator {addr}, {comm.size} processes)"
    try:
        jax.distributed.initialize(coordinator_address=addr, num_processes=comm.size,
                                   process_id=comm.rank,
                                   **{k: v for k, v in wanted.items() if k in accepted})
        got = int(jax.process_count())
    except Exception as exc:  # any failure here ends the job, with its reason
        comm.fail(f"jax.distributed.initialize failed: {type(exc).__name__}: {exc}")
        raise  # not reached: fail() ends the job
    if got != comm.size:
        comm.fail(f"jax.distributed joined {got} processes, not {comm.size}")
    comm.phase = phase
    return got
