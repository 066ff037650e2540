"""accelbench's core: what a measurement is and how it is taken.

Public API for writing workloads (built-in or your own)::

    from harness import Param, Prepared, Work, Workload, workload
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.backends.base import Backend
    from harness.errors import BackendUnavailable, CheckFailed, UserError
    from harness.params import Param
    from harness.workload import WARNINGS, Case, Prepared, Workload, first_call, workload
    from harness.workmodel import Work

__version__ = "0.1.0"

# The public API is imported on first use (PEP 562), so that `import harness.<module>` costs
# nothing more: the `bench` script installs its signal handlers before anything heavy loads.
_PUBLIC = {
    "Backend": "harness.backends.base",
    "BackendUnavailable": "harness.errors",
    "CheckFailed": "harness.errors",
    "UserError": "harness.errors",
    "Param": "harness.params",
    "WARNINGS": "harness.workload",
    "Case": "harness.workload",
    "Prepared": "harness.workload",
    "Workload": "harness.workload",
    "first_call": "harness.workload",
    "workload": "harness.workload",
    "Work": "harness.workmodel",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


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
