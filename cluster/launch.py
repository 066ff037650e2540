"""Who launched us (rank, world size and local rank from mpirun/srun/torchrun variables), and
starting the ranks ourselves: `bench run --launcher local|mpirun|srun|torchrun -n N ...`.

The launching `bench` starts N copies of the same command line with ``BENCH_LAUNCHED`` set (so
they measure instead of launching again), the address of rank 0's control channel and a random
token for it (harness.distributed), ``MASTER_ADDR``/``MASTER_PORT`` for torch.distributed, and
``BENCH_JAX_COORDINATOR`` (host:port; the host is MASTER_ADDR's, the port a free one of its own,
never MASTER_PORT, which torchrun's store holds) for jax.distributed's coordinator on rank 0. A
``BENCH_JAX_COORDINATOR`` already set where `bench` is started is kept (e.g. a port a firewall
lets through).
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cluster.notices import NoticeFilter
from harness import exiting
from harness.backends.jax import ENV_JAX_COORDINATOR
from harness.distributed import ENV_ADDR, ENV_TIMEOUT, ENV_TOKEN, free_port
from harness.exiting import ENV_EXIT_FILE
from harness.placement import (  # noqa: F401  (the launcher's own names, kept here too)
    ENV_LAUNCHED,
    ENV_RUN_ID,
    ENV_WORLD,
    Placement,
    placement,
)


@functools.lru_cache(maxsize=1)
def mpi_implementation() -> str | None:
    """First line of `mpirun --version` (e.g. 'mpirun (Open MPI) 4.1.4'), if there is one."""
    exe = shutil.which("mpirun") or shutil.which("mpiexec")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln.strip() for ln in (out.stdout or out.stderr).splitlines() if ln.strip()]
    if not lines:
        return None
    if lines[0].startswith("HYDRA"):  # MPICH's mpiexec: the version is on a later line
        version = next((ln for ln in lines if ln.startswith("Version:")), "")
        return f"MPICH Hydra {version.partition(':')[2].strip()}".strip()
    return lines[0]


def cluster_record(where: Placement, world_size: int) -> dict[str, Any]:
    """The run's place in a job: launcher, world size, MPI implementation (environment record)."""
    return {**asdict(where), "world_size": world_size, "mpi_implementation": mpi_implementation(),
            "slurm_nodelist": os.environ.get("SLURM_JOB_NODELIST"),
            # the node(s) of this run: a pinned step's ($BENCH_NODES), else the node Slurm
            # ran rank 0 on (namespaced nodes share one host name)
            "nodes": os.environ.get("BENCH_NODES") or os.environ.get("SLURMD_NODENAME")}


def rank0_host(launcher: str) -> str:
    """Where rank 0 will run: this host, or under srun the allocation's first node."""
    from cluster import launchers

    nodes = os.environ.get("BENCH_NODES") or os.environ.get("SLURM_JOB_NODELIST")
    if not (nodes and launchers.get(launcher).ranks_on_allocation and shutil.which("scontrol")):
        return "127.0.0.1"
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True,
                             text=True, timeout=10)
        first = out.stdout.split()[0] if out.returncode == 0 and out.stdout.split() else ""
        if first and first != socket.gethostname():
            try:
                socket.gethostbyname(first)
                return first
            except OSError:  # a node name DNS does not know: Slurm's NodeAddr for it
                node = subprocess.run(["scontrol", "-o", "show", "node", first],
                                      capture_output=True, text=True, timeout=10).stdout
                for token in node.split():
                    if token.startswith("NodeAddr=") and token != "NodeAddr=":
                        return token.split("=", 1)[1]
    except (OSError, subprocess.SubprocessError):
        pass
    return "127.0.0.1"


def rank_env(launcher: str, n: int, timeout: float) -> dict[str, str]:
    """Variables every rank gets from the launching `bench`."""
    # Launchers give ranks a pseudo-terminal (Open MPI) or a pipe: the ranks style their output
    # for what the launching `bench` writes to (rich reads these variables).
    tty = {k: os.environ.get(k) or ("1" if stream.isatty() else "0")
           for k, stream in (("TTY_COMPATIBLE", sys.stdout), ("TTY_INTERACTIVE", sys.stderr))}
    if sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        tty["COLUMNS"] = str(shutil.get_terminal_size().columns)
    # Like torchrun: ranks sharing a node share its cores, or their thread pools spin against
    # each other (a 2-rank CPU training step ran 40x slower). Recorded in the environment.
    # Its ports are picked here: free on this host, likely there. BENCH_CONTROL_HOST overrides
    # where the other ranks reach rank 0 (e.g. mpirun across hosts).
    host = os.environ.get("BENCH_CONTROL_HOST") or rank0_host(launcher)
    threads = {} if "OMP_NUM_THREADS" in os.environ else {
        "OMP_NUM_THREADS": str(max(1, len(os.sched_getaffinity(0)) // n))}
    control, master = free_port(), free_port()
    jax_port = free_port()
    while jax_port in (control, master):
        jax_port = free_port()
    return {
        **tty,
        **threads,
        ENV_LAUNCHED: launcher,
        ENV_WORLD: str(n),
        ENV_ADDR: f"{host}:{control}",
        ENV_TOKEN: secrets.token_hex(16),
        ENV_TIMEOUT: f"{timeout:g}",
        "MASTER_ADDR": host,
        "MASTER_PORT": str(master),
        ENV_JAX_COORDINATOR: os.environ.get(ENV_JAX_COORDINATOR) or f"{host}:{jax_port}",
    }


def launch_command(launcher: str, n: int, args: Sequence[str],
                   env: dict[str, str]) -> list[str] | None:
    """The command that starts `n` ranks of `python -m harness ARGS` (None for `local`)."""
    from cluster import launchers

    return launchers.get(launcher).command(n, args, env)


def launch(launcher: str, n: int, args: Sequence[str], timeout: float,
           extra_env: dict[str, str] | None = None) -> int:
    """Start `n` ranks of `bench ARGS`, wait for them, return rank 0's exit code (3 when rank 0
    succeeded and another rank failed). A rank that exits with an error gives the others a grace
    period, then they are ended: the job never outlives its ranks' own timeouts by much.

    A signal to this process goes on to the ranks. Once rank 0 has stored its run, the code is
    that run's verdict (a signal after it earns one line); before, it is 128 + the signal this
    process got, whatever the ranks made of it (mpirun ends its ranks with SIGTERM whichever
    signal it got, and a rank whose peer went first fails in a collective): scripts test for
    130 and 143."""
    env = {**rank_env(launcher, n, timeout), **(extra_env or {})}
    from cluster import launchers

    starter = launchers.get(launcher)
    cmd = starter.command(n, args, env)
    early: list[int] = []  # a signal while the ranks are being started: passed on once they are
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda signum, _frame: early.append(signum))
    with tempfile.TemporaryDirectory(prefix="bench-exit-") as folder:
        exit_file = Path(folder) / "rank0"
        base = {**os.environ, **env, ENV_EXIT_FILE: str(exit_file)}
        procs: list[subprocess.Popen[bytes]] = []
        if cmd is None:
            for r in range(n):
                rank_vars = {"RANK": str(r), "WORLD_SIZE": str(n), "LOCAL_RANK": str(r),
                             "LOCAL_WORLD_SIZE": str(n)}
                procs.append(subprocess.Popen([sys.executable, "-m", "harness", *args],
                                              env={**base, **rank_vars},
                                              stdout=None if r == 0 else subprocess.DEVNULL))
        else:
            procs.append(subprocess.Popen(cmd, env=base,
                                          stderr=subprocess.PIPE if starter.notices else None))
        notices = (NoticeFilter(procs[0].stderr, _binary(sys.stderr), starter.notices,
                                starter.notice_prefixes)
                   if procs[0].stderr is not None else None)
        code, signum = _wait(procs, grace=min(timeout, 10) + 5, deliver=starter.deliver,
                             early=early)
        told = exit_file.read_text().strip() if exit_file.is_file() else ""
    signum = signum if signum is not None else exiting.noted()
    said = told.split()
    rank0 = int(said[0]) if said and said[0].lstrip("-").isdigit() else None  # None: never said
    kept = "stored" in said[1:]
    if notices is not None:  # the launcher's notices repeat what rank 0 said, if it did
        notices.finish(show_held=rank0 is None)
    if signum is None:
        if rank0 is None:
            return code  # killed, or never started: the launcher's code
        return 3 if rank0 == 0 and code != 0 else rank0
    if rank0 is not None and rank0 < 128:  # its run was stored before the signal stopped it
        return rank0  # (the note is the caller's: a signal may still come before it exits)
    # rank 0 leaves this line to the launching bench (a rank's signal may be a rank death's
    # echo, which rank 0 reports instead); before it kept a run, there is none to name
    run_id = (extra_env or {}).get(ENV_RUN_ID) if kept else None
    sys.stderr.write(exiting.interrupted_line(signum, run_id) + "\n")
    return 128 + signum


def _binary(stream: Any) -> Any:
    """`stream`'s bytes interface (a text-only stream, as tests capture, gets an adapter)."""
    if hasattr(stream, "buffer"):
        return stream.buffer

    class Text:
        def write(self, data: bytes) -> None:
            stream.write(data.decode(errors="replace"))

        def flush(self) -> None:
            stream.flush()

    return Text()


def _wait(procs: list[subprocess.Popen[bytes]], grace: float,
          deliver: Any = None, early: list[int] | None = None) -> tuple[int, int | None]:
    """(rank 0's or the launcher's exit code, the first signal forwarded to them)."""
    forwarded: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        forwarded.append(signum)
        exiting.hold(signum, None)
        for p in procs:
            if p.poll() is None:
                if deliver is not None:
                    deliver(p, signum)
                else:
                    p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    if early:
        forward(early[0], None)
    try:
        failed_at = None
        while any(p.poll() is None for p in procs):
            codes = [p.returncode for p in procs if p.returncode is not None]
            if failed_at is None and (any(c != 0 for c in codes) or forwarded):
                failed_at = time.monotonic()
            if len(procs) > 1 and procs[0].returncode is not None and grace > 3.0:
                failed_at, grace = time.monotonic(), 3.0  # rank 0 is done: the rest follow
            if failed_at is not None and time.monotonic() - failed_at > grace:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.05)
    finally:  # the ranks are done: a signal from now on is only noted (this process exits soon)
        for s in previous:
            signal.signal(s, exiting.hold)
    signum = forwarded[0] if forwarded else exiting.noted()
    code = procs[0].returncode
    if code < 0:  # rank 0 (or the launcher) ended by a signal
        return 128 - code, signum
    if code == 0 and any(p.returncode != 0 for p in procs):
        return 3, signum
    return code, signum
