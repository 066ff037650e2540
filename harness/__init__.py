"""accelbench's core: what a measurement is and how it is taken.

Public API for writing workloads (built-in or your own)::

    from harness import Param, Prepared, Work, Workload, workload
"""

from __future__ import annotations

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
