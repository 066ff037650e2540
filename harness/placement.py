"""Where this process is: rank, world size and local rank from whatever launched it (mpirun,
srun, torchrun, or a launching `bench`), read from their environment variables.

In the core because ranks need it to measure (collective backends, exit codes); starting ranks
is cluster.launch's job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# (rank, world size, local rank) variables, in the order launchers are recognised.
_LAUNCHERS = {
    "torchrun": ("RANK", "WORLD_SIZE", "LOCAL_RANK"),
    "mpirun": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    "mpiexec": ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    "srun": ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
}


def register_rank_variables(launcher: str, variables: tuple[str, str, str]) -> None:
    """A launcher's (rank, world size, local rank) variables (cluster.launchers registers its
    own); recognised in the order registered."""
    _LAUNCHERS.setdefault(launcher, variables)


ENV_LAUNCHED = "BENCH_LAUNCHED"  # set in the ranks that a launching `bench` started
ENV_WORLD = "BENCH_WORLD_SIZE"  # the world size the launching `bench` asked for
ENV_RUN_ID = "BENCH_RUN_ID"


@dataclass(frozen=True)
class Placement:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "local"


def placement(environ: dict[str, str] | None = None) -> Placement:
    env = os.environ if environ is None else environ
    for launcher, (r, w, lr) in _LAUNCHERS.items():
        if launcher == "srun" and "SLURM_STEP_ID" not in env:
            continue  # a batch script has SLURM_PROCID too, but it is not a rank of a step
        if r in env and w in env:
            name = env.get(ENV_LAUNCHED) or launcher
            return Placement(int(env[r]), int(env[w]), int(env.get(lr, "0")), name)
    return Placement()
