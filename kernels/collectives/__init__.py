"""Collective backends, one module each with the same shape (see base.py):

- `mpi.py`        mpi4py on numpy buffers (GPU buffers when the MPI is CUDA-aware)
- `torch_dist.py` torch.distributed: `gloo` (CPU) and `nccl` (GPU)
- `grpc.py`       a ring over grpcio streams (collective.proto)
- `jax.py`        XLA collectives (psum & co.) across the devices of one process or of
                  several (jax.distributed)

Each module defines a `Collectives` subclass; mpi, torch_dist and grpc also register a backend
(`mpi:cpu`, `gloo:cpu`, `nccl:cuda`, `grpc:cpu`) whose `collectives()` returns it. For `jax:*`
the compute backend is reused and `collectives_for` wraps it.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from harness.errors import UserError
from kernels.collectives.base import Bound, CollectiveBackend, Collectives

__all__ = ["Bound", "CollectiveBackend", "Collectives", "collectives_for"]


def collectives_for(backend: Any) -> Collectives:
    """The communicator and collective ops of a backend (created once, on first use)."""
    if isinstance(backend, CollectiveBackend):
        return backend.collectives()
    module = importlib.import_module(f"kernels.collectives.{backend.model}")
    cached = getattr(backend, "_collectives", None)
    if cached is None:
        cached = module.IMPLEMENTATION(backend)
        backend._collectives = cached
    return cached


def transports() -> dict[str, str]:
    """Every registered backend model that runs collectives -> its module here: a
    CollectiveBackend's own module (gloo, nccl: torch_dist), or `kernels.collectives.<model>`
    for a compute backend that has one (jax). A new transport is picked up by registering it."""
    from harness.backends import registry

    found: dict[str, str] = {}
    for model in registry.names():
        try:
            cls = registry.get(model)
        except UserError:  # a plugin that cannot be loaded here is no transport of ours
            continue
        if isinstance(cls, type) and issubclass(cls, CollectiveBackend):
            found[model] = cls.__module__
        elif importlib.util.find_spec(f"{__name__}.{model}") is not None:
            found[model] = f"{__name__}.{model}"
    return found
