"""Who launched us: rank, world size and local rank from mpirun/srun/torchrun variables."""

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


@dataclass(frozen=True)
class Placement:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "local"


def placement(environ: dict[str, str] | None = None) -> Placement:
    env = os.environ if environ is None else environ
    for launcher, (r, w, lr) in _LAUNCHERS.items():
        if r in env and w in env:
            return Placement(int(env[r]), int(env[w]), int(env.get(lr, "0")), launcher)
    return Placement()
