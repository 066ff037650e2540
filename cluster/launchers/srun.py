"""`srun`: a Slurm job step inside an allocation.

A signal srun gets is not the ranks' signal: a first SIGINT only prints the step's status, and
SIGTERM cancels the step (SIGKILL after a wait). So a signal the launching `bench` gets goes to
the step's tasks through `scancel --signal`, the step found by the unique name it was given.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence

from cluster.launchers import Launcher, register


@register
class Srun(Launcher):
    name = "srun"
    mpi_world = True
    in_batch_job = True
    provides = "Slurm: apt-get install slurm-client, and run inside an allocation"
    rank_variables = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
    only_in_ranks = "SLURM_STEP_ID"
    ranks_on_allocation = True
    mpi_type_variable = "SLURM_MPI_TYPE"
    # what srun and slurmstepd say of a step whose rank 0 already reported: "srun: error: vm:
    # task 1: Killed", "srun: launch/slurm: _step_signal: Terminating StepId=...", "srun: Force
    # Terminated StepId=...", "slurmstepd: error: *** STEP 7.0 ON vm CANCELLED AT ... ***"
    # (slurmstepd names itself "slurmstepd-<node>:" too, as Slurm 22.05 does for its step)
    notices = (": task ", "_step_signal: Terminating StepId", "Force Terminated StepId",
               "Job step aborted", "*** STEP ")
    notice_prefixes = ("srun: ", "slurmstepd: ", "slurmstepd-")

    def __init__(self) -> None:
        super().__init__()
        self.step_name = f"bench-{secrets.token_hex(6)}"

    def command(self, n: int, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
        exe = shutil.which("srun")
        if exe is None:
            raise self.missing()
        # Pinned to the nodes $BENCH_NODES names (a step of `bench submit --each-node/--pairs`):
        # one rank per node there.
        nodes = [x for x in os.environ.get("BENCH_NODES", "").split(",") if x]
        pinned = ["-N", str(len(nodes)), "-w", ",".join(nodes)] if nodes else []
        return [exe, "-n", str(n), *pinned, f"--job-name={self.step_name}",
                "--kill-on-bad-exit=1", "--export=ALL", *self.harness(args)]

    def step(self) -> str | None:
        """JOBID.STEPID of the step this launcher started, once Slurm lists it."""
        job = os.environ.get("SLURM_JOB_ID")
        if not job or shutil.which("squeue") is None:
            return None
        try:
            out = subprocess.run(["squeue", "-h", "-s", "-j", job, "-o", "%i|%j"],
                                 capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return next((i for i, _, name in (ln.partition("|") for ln in out.splitlines())
                     if name.strip() == self.step_name), None)

    def deliver(self, proc: subprocess.Popen[bytes], signum: int) -> None:
        step = self.step()
        if step is None or shutil.which("scancel") is None:  # not listed yet: srun's own way
            super().deliver(proc, signum)
            return
        name = signal.Signals(signum).name.removeprefix("SIG")
        try:
            subprocess.run(["scancel", f"--signal={name}", step], capture_output=True,
                           timeout=10)
        except (OSError, subprocess.SubprocessError):
            super().deliver(proc, signum)
