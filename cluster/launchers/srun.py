"""`srun`: a Slurm job step inside an allocation."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from cluster.launchers import Launcher, register


@register
class Srun(Launcher):
    name = "srun"
    mpi_world = True
    provides = "Slurm: apt-get install slurm-client, and run inside an allocation"
    rank_variables = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")

    def command(self, n: int, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
        exe = shutil.which("srun")
        if exe is None:
            raise self.missing()
        return [exe, "-n", str(n), "--kill-on-bad-exit=1", "--export=ALL", *self.harness(args)]
