"""`srun`: a Slurm job step inside an allocation."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from cluster.launchers import Launcher, register


@register
class Srun(Launcher):
    name = "srun"
    provides = "Slurm: apt-get install slurm-client, and run inside an allocation"
    rank_variables = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")

    def command(self, n: int, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
        exe = shutil.which("srun")
        if exe is None:
            raise self.missing()
        # Pinned to the nodes $BENCH_NODES names (a step of `bench submit --each-node/--pairs`):
        # one rank per node there.
        nodes = [x for x in os.environ.get("BENCH_NODES", "").split(",") if x]
        pinned = ["-N", str(len(nodes)), "-w", ",".join(nodes)] if nodes else []
        return [exe, "-n", str(n), *pinned, "--kill-on-bad-exit=1", "--export=ALL",
                *self.harness(args)]
