"""Where this process is: rank, world size and local rank from whatever launched it (mpirun,
srun, torchrun, or a launching `bench`), read from their environment variables.

In the core because ranks need it to measure (collective backends, exit codes); starting ranks
is cluster.launch's job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# (rank, world size, local rank) variables, in the order launchers are recognised, and the
# variable that only the launcher's ranks have, where others have the three too (a Slurm batch
# script has SLURM_PROCID, but it is not a rank of a step: SLURM_STEP_ID says it is).
_LAUNCHERS: dict[str, tuple[tuple[str, str, str], str | None]] = {
    "torchrun": (("RANK", "WORLD_SIZE", "LOCAL_RANK"), None),
    "mpirun": (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
               None),
    "mpiexec": (("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"), None),
    "srun": (("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"), "SLURM_STEP_ID"),
}
UNLAUNCHED = "local"  # the launcher of a process no launcher started (and of `bench`'s own ranks)


def register_rank_variables(launcher: str, variables: tuple[str, str, str],
                            only_in_ranks: str | None = None) -> None:
    """A launcher's (rank, world size, local rank) variables and the variable only its ranks
    have (cluster.launchers registers its own); recognised in the order registered."""
    _LAUNCHERS.setdefault(launcher, (variables, only_in_ranks))


ENV_LAUNCHED = "BENCH_LAUNCHED"  # set in the ranks that a launching `bench` started
ENV_WORLD = "BENCH_WORLD_SIZE"  # the world size the launching `bench` asked for
ENV_RUN_ID = "BENCH_RUN_ID"


@dataclass(frozen=True)
class Placement:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = UNLAUNCHED

    @property
    def launched(self) -> bool:
        """Started as a rank by a launcher (rank variables found, or a launching `bench`'s
        launcher named)."""
        return self.launcher != UNLAUNCHED


def placement(environ: dict[str, str] | None = None) -> Placement:
    env = os.environ if environ is None else environ
    for launcher, ((r, w, lr), only_in_ranks) in _LAUNCHERS.items():
        if only_in_ranks is not None and only_in_ranks not in env:
            continue
        if r in env and w in env:
            name = env.get(ENV_LAUNCHED) or launcher
            return Placement(int(env[r]), int(env[w]), int(env.get(lr, "0")), name)
    return Placement()
