"""How a `bench` process ends when a launching `bench` started it: its exit code left where the
launcher reads it. mpirun and srun exit with the status of the first rank that failed (137 for a
killed rank), not with rank 0's verdict (3: a rank died, and rank 0's message names it)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import NoReturn

ENV_EXIT_FILE = "BENCH_EXIT_FILE"  # set by cluster.launch for the ranks it starts


def report_exit(code: int) -> None:
    """In rank 0 of a job that a launching `bench` started: leave the exit code for it."""
    path = os.environ.get(ENV_EXIT_FILE)
    if not path:
        return
    from harness.placement import placement

    if placement().rank == 0:
        with contextlib.suppress(OSError):
            Path(path).write_text(f"{code}\n")


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's shutdown (where MPI_Finalize or a gRPC server could wait
    for a rank that is gone), after telling the launching `bench`."""
    sys.stdout.flush()
    sys.stderr.flush()
    report_exit(code)
    os._exit(code)
