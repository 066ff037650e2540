"""`python -m cluster.launchers.torchrun_agent ARGS`: torchrun, leaving how the job ended to bench.

torchrun ends with a traceback when it is signalled or a worker fails, and logs each worker it
closes; rank 0's one line already says what happened. torchrun's own report is printed only where
rank 0 never left its exit code (harness.exiting), which is when it is the only explanation."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("LOGLEVEL", "CRITICAL")  # torch.distributed.elastic's loggers
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    from harness.exiting import ENV_EXIT_FILE

    # Some of its modules log through plain `logging` loggers, which LOGLEVEL does not reach.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)

    exit_file = Path(os.environ.get(ENV_EXIT_FILE, "") or os.devnull)
    try:
        torchrun(sys.argv[1:])
    except SignalException as exc:
        sys.exit(128 + int(exc.sigval))
    except ChildFailedError as exc:
        if not exit_file.is_file() or not exit_file.read_text().strip():
            sys.stderr.write(exc.format_msg() + "\n")
        code = exc.get_first_failure()[1].exitcode
        sys.exit(128 - code if code < 0 else 1)  # killed by a signal: as mpirun and srun say


if __name__ == "__main__":
    main()
