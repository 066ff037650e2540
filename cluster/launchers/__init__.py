"""Launchers that start the ranks of `bench run --launcher NAME -n N`: one module each.

A launcher is a class with a `name`, the package that provides it (for the "not installed"
message), the variables that tell its ranks who they are (registered with harness.placement,
so a rank knows its place), and `command(n, args, env)`: the command line that starts `n`
ranks of `python -m harness ARGS` with `env` exported (None: this process starts them itself).
A new launcher is a new module here plus its name in BUILTIN.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from harness.errors import UserError
from harness.placement import register_rank_variables

BUILTIN = ("local", "mpirun", "srun", "torchrun", "flux")

_registry: dict[str, type[Launcher]] = {}


class Launcher:
    name: ClassVar[str]
    provides: ClassVar[str] = ""  # "Open MPI: apt-get install openmpi-bin"
    # (rank, world size, local rank) variables its ranks see; empty: set by `bench` itself
    rank_variables: ClassVar[tuple[str, str, str] | tuple[()]] = ()
    mpi_world: ClassVar[bool] = False  # its ranks find each other in MPI_Init (PMI/PMIx)
    # A variable only its ranks have, where other processes have `rank_variables` too
    # (srun: SLURM_STEP_ID; a batch script has SLURM_PROCID but is not a rank of a step).
    only_in_ranks: ClassVar[str | None] = None
    # Its ranks run on the nodes of the job's allocation, rank 0 on the first (srun): the
    # other ranks reach rank 0 there, not on the launching host.
    ranks_on_allocation: ClassVar[bool] = False
    # The variable that tells it which MPI plugin to use (srun: SLURM_MPI_TYPE), set from a
    # site's `mpi` in the scripts `bench submit` writes; None: it takes none.
    mpi_type_variable: ClassVar[str | None] = None
    # It starts the ranks across the allocation of a Slurm batch job (`bench submit`'s script
    # runs `bench run --launcher NAME -n $SLURM_NTASKS`): a site may name it.
    in_batch_job: ClassVar[bool] = False
    # Texts of the launcher's own framed notices that repeat what rank 0 reports (kept back
    # unless rank 0 never reported; see cluster/notices.py).
    notices: ClassVar[tuple[str, ...]] = ()
    # Starts of the launcher's single-line notices (srun's "srun: "): such a line holding one of
    # `notices` is held back the same way.
    notice_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.signal_ranks = False  # a signal goes to the launcher's children, not to it

    def deliver(self, proc: subprocess.Popen[bytes], signum: int) -> None:
        """Pass a signal the launching `bench` got on to the ranks `proc` started (or is)."""
        ranks = _children(proc.pid) if self.signal_ranks else []
        for pid in ranks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        if not ranks:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    def command(self, n: int, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
        raise NotImplementedError

    def missing(self) -> UserError:
        return UserError(f"launcher {self.name!r}: {self.name} is not installed here; "
                         f"it comes with {self.provides}")

    @staticmethod
    def harness(args: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "harness", *args]


def _children(pid: int) -> list[int]:
    """The processes `pid` started (Linux; none elsewhere)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def register(cls: type[Launcher]) -> type[Launcher]:
    _registry[cls.name] = cls
    if cls.rank_variables:
        register_rank_variables(cls.name, cls.rank_variables,  # type: ignore[arg-type]
                                cls.only_in_ranks)
    return cls


def _load() -> None:
    for name in BUILTIN:
        if name not in _registry:
            importlib.import_module(f"{__name__}.{name}")


def names() -> list[str]:
    _load()
    return list(_registry)


def get(name: str) -> Launcher:
    _load()
    if name not in _registry:
        raise UserError(f"unknown launcher {name!r}; known: {', '.join(_registry)}")
    return _registry[name]()
