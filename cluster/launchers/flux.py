"""`flux`: the Flux framework's `flux run` (LLNL and other sites' resource manager)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from cluster.launchers import Launcher, register


@register
class Flux(Launcher):
    name = "flux"
    mpi_world = True
    provides = "Flux: apt-get install flux-core, and run inside a Flux instance"
    rank_variables = ("FLUX_TASK_RANK", "FLUX_JOB_SIZE", "FLUX_TASK_LOCAL_ID")

    def command(self, n: int, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
        exe = shutil.which("flux")
        if exe is None:
            raise self.missing()
        exports = [f"--env={k}" for k in env]  # flux run passes the environment; be explicit
        return [exe, "run", "-n", str(n), *exports, *self.harness(args)]
