"""The `bench` console script. Signals are handled from its first line: the imports before the
command runs take a fraction of a second on a quiet machine and seconds on a loaded one, and a
SIGINT or SIGTERM then must still end bench with one line and 128 + the signal, not with a
traceback or silently."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def main() -> None:
    from harness.exiting import ENV_EXIT_FILE, SIGNALS, Interrupted, interrupted_line

    got: list[int] = []

    def early(signum: int, _frame: FrameType | None) -> None:
        got.append(signum)
        raise Interrupted(signum)

    for sig in SIGNALS:
        signal.signal(sig, early)
    try:
        from harness.cli import main as cli_main

        if got:  # raised inside an import that swallowed it (a bare `except:`): still a stop
            raise Interrupted(got[0])
    except Interrupted as exc:
        from harness.placement import placement

        try:  # a rank other than 0, or one whose launching bench speaks for the job, is quiet
            speaks = not os.environ.get(ENV_EXIT_FILE) and placement().rank == 0
        except ValueError:  # a malformed rank variable: better a line too many than none
            speaks = True
        if speaks:
            sys.stderr.write(interrupted_line(exc.signum) + "\n")
        sys.exit(128 + exc.signum)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # cli_main's handling from here
    cli_main()
