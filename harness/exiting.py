"""How a `bench` process ends: its exit code, and what a SIGINT or SIGTERM does to it.

When a launching `bench` started this process, rank 0 leaves its exit code where the launcher
reads it: mpirun and srun exit with the status of the first rank that failed (137 for a killed
rank), not with rank 0's verdict (3: a rank died, and rank 0's message names it).

Until a run is stored, a signal stops it (`Interrupted`: the finished cases are kept, the code is
128 + the signal). Once it is stored, the code is the stored run's verdict, told to a launching
`bench` at once; a signal from then on only earns a note (`late_note`): a job ended by a time
limit just after its run was stored is not reported as cut short.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

ENV_EXIT_FILE = "BENCH_EXIT_FILE"  # set by cluster.launch for the ranks it starts
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_verdict: list[int] = []  # the stored run's exit code, once it is stored
_late: list[int] = []  # signals that came while the run was being stored, or after


class Interrupted(BaseException):
    """A SIGINT or SIGTERM, raised in the main thread so that what is finished can be kept."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupted_by(exc: BaseException) -> int | None:
    """The signal whose `Interrupted` (or KeyboardInterrupt) `exc` is, or was raised while
    handling. A handler's exception raised inside library code can make that code fail with an
    error of its own, chained from it (a `queue.get` whose lock was left half-released:
    "release unlocked lock"); that is still the signal, not a failure."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, Interrupted):
            return e.signum
        if isinstance(e, KeyboardInterrupt):
            return int(signal.SIGINT)
        seen.add(id(e))
        e = e.__context__
    return None


def reraise_interruption(exc: BaseException) -> None:
    """Raise the `Interrupted` behind `exc`, if a signal is what it came from."""
    signum = interrupted_by(exc)
    if signum is not None:
        raise Interrupted(signum) from exc


def stop(signum: int, _frame: FrameType | None) -> None:
    """The handler `bench run` starts with: a signal before the run is stored stops it; after,
    it is only noted."""
    if not _verdict:
        raise Interrupted(signum)
    _late.append(signum)


def hold(signum: int, _frame: FrameType | None) -> None:
    """The handler while a run is being saved: nothing may interrupt that; the signal is noted."""
    _late.append(signum)


def interrupted_line(signum: int, run_id: str | None = None) -> str:
    """The one line for a signal that stopped bench: with the run it kept, if it kept one."""
    name = signal.Signals(signum).name
    if run_id is None:
        return f"bench: interrupted ({name})"
    return f"bench: interrupted ({name}); finished cases kept (run {run_id}, partial)"


def noted() -> int | None:
    """The first signal `hold` noted, if any."""
    return _late[0] if _late else None


def quiet_while_loading() -> None:
    """In a rank that a launching `bench` started (`python -m harness`), before anything else
    loads: a signal ends it at once, without a traceback, until `harness.entry` takes over (the
    launching bench says the one line for the job)."""
    def end(signum: int, _frame: FrameType | None) -> None:
        os._exit(128 + signum)

    for sig in SIGNALS:
        signal.signal(sig, end)


def install() -> None:
    """`stop` for SIGINT and SIGTERM (the measuring `bench run`, not the launching one)."""
    for sig in SIGNALS:
        signal.signal(sig, stop)


def run_stored(code: int) -> None:
    """The run is stored (or its file written) and `code` is its verdict: rank 0 tells a
    launching `bench` now, before printing, so a signal from here on cannot change it. The
    first verdict holds (a rank failure found by the watchdog, then the main thread's)."""
    if not _verdict:
        _verdict.append(code)
        report_exit(code)


def late_note(run_id: str, status: str) -> str | None:
    """The line for a signal that came too late to stop a run that ended on its own."""
    if not _late or not _verdict or _verdict[0] >= 128:
        return None  # no signal, or the run was cut short by the first one
    name = signal.Signals(_late[0]).name
    return (f"bench: {name} came as the run ended; run {run_id} is stored {status}, exit code "
            f"{_verdict[0]}")


def report_exit(code: int) -> None:
    """In rank 0 of a job that a launching `bench` started: leave the exit code for it."""
    path = os.environ.get(ENV_EXIT_FILE)
    if not path:
        return
    from harness.placement import placement

    if placement().rank == 0:  # "stored": a run was kept (the launching bench names it)
        with contextlib.suppress(OSError):
            Path(path).write_text(f"{code}{' stored' if _verdict else ''}\n")


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's shutdown (where MPI_Finalize or a gRPC server could wait
    for a rank that is gone), after telling the launching `bench`."""
    sys.stdout.flush()
    sys.stderr.flush()
    report_exit(code)
    os._exit(code)
