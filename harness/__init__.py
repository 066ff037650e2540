"""accelbench's core: what a measurement is and how it is taken.

Public API for writing workloads (built-in or your own)::

    from harness import Param, Prepared, Work, Workload, workload
"""

from __future__ import annotations

import os as _os
import sys as _sys

# A rank started by a launching bench runs `python -m harness`: Python loads this package before
# harness/__main__.py can handle a signal (sys.argv[0] is "-m" until then), and a signal in
# those ~40 ms printed a KeyboardInterrupt traceback.
if _sys.argv[:1] == ["-m"] and _os.environ.get("BENCH_EXIT_FILE"):
    from harness.exiting import quiet_while_loading

    quiet_while_loading()

from harness.backends.base import Backend
from harness.errors import BackendUnavailable, CheckFailed, UserError
from harness.params import Param
from harness.workload import WARNINGS, Case, Prepared, Workload, first_call, workload
from harness.workmodel import Work

__version__ = "0.1.0"

__all__ = [
    "WARNINGS",
    "Backend",
    "BackendUnavailable",
    "Case",
    "CheckFailed",
    "Param",
    "Prepared",
    "UserError",
    "Work",
    "Workload",
    "__version__",
    "first_call",
    "workload",
]
