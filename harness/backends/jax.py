"""JAX/XLA on cpu, gpu or tpu; results are waited for with block_until_ready."""

from __future__ import annotations

from typing import Any

from harness.backends.base import Backend
from harness.errors import BackendUnavailable


class JaxBackend(Backend):
    model = "jax"
    package = "jax"
    extra = "jax"
    devices = ("cpu", "gpu", "tpu")
    description = "JAX/XLA (jit); waits with block_until_ready"

    def _setup(self) -> None:
        import jax

        self.jax = jax
        kind, _, index = self.device.partition(":")
        try:
            found = jax.devices(kind)
        except RuntimeError:
            found = []
        if not found:
            raise BackendUnavailable(
                f"jax:{self.device}: JAX sees no {kind} device (it has: "
                f"{', '.join(sorted({d.platform for d in jax.devices()}))})"
            )
        i = int(index or 0)
        if i >= len(found):
            raise BackendUnavailable(f"jax:{self.device}: only {len(found)} {kind} device(s)")
        self.jax_device = found[i]

    def synchronize(self, result: Any = None) -> None:
        if result is not None:
            self.jax.block_until_ready(result)

    def from_numpy(self, array: Any) -> Any:
        return self.jax.device_put(array, self.jax_device)

    def to_numpy(self, value: Any) -> Any:
        import numpy as np

        return np.asarray(value)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "jax": self.jax.__version__,
                "device_kind": getattr(self.jax_device, "device_kind", "")}
