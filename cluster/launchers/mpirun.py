"""`mpirun`: Open MPI's mpirun, or MPICH's Hydra mpiexec."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from cluster.launchers import Launcher, register


@register
class Mpirun(Launcher):
    name = "mpirun"
    mpi_world = True
    in_batch_job = True
    notices = ("Primary job  terminated normally", "Primary job terminated normally",
               "mpirun noticed that process rank", "mpirun has exited due to process rank",
               "mpirun detected that one or more processes exited with non-zero status")
    provides = "Open MPI: apt-get install openmpi-bin (or MPICH: apt-get install mpich)"
    rank_variables = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                      "OMPI_COMM_WORLD_LOCAL_RANK")

    def command(self, n: int, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
        from cluster.launch import mpi_implementation

        exe = shutil.which("mpirun") or shutil.which("mpiexec")
        if exe is None:
            raise self.missing()
        impl = mpi_implementation() or ""
        if "Open MPI" in impl or "OpenRTE" in impl:
            extra = ["--oversubscribe"]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                extra.append("--allow-run-as-root")
            # Open MPI binds 1-2 ranks to one core each: a 1-rank baseline would then run its
            # threads on one core. Unbound unless the user chose (recorded via OMPI_MCA_*).
            bind = "OMPI_MCA_hwloc_base_binding_policy"
            env.setdefault(bind, os.environ.get(bind, "none"))
            # mpirun hands its ranks SIGTERM for any signal and SIGKILLs them a second later:
            # the launching bench signals the ranks on this host itself (mpirun then ends).
            self.signal_ranks = True
            exports = [a for k in env for a in ("-x", k)]
            return [exe, *extra, "-np", str(n), *exports, *self.harness(args)]
        return [exe, "-n", str(n), "-genvlist", ",".join(env), *self.harness(args)]  # Hydra
