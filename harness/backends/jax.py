"""JAX/XLA on cpu, gpu or tpu; results are waited for with block_until_ready."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
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

    @contextlib.contextmanager
    def profile(self, trace_dir: Path) -> Iterator[Any]:
        """jax.profiler.trace with a Perfetto trace (Chrome trace JSON, gzipped); no TensorBoard."""
        from harness.errors import UserError
        from harness.profiling import ITERATION, Trace

        profiler = self.jax.profiler
        trace = Trace(kind="jax", note=f"jax.profiler.trace on {self.device}",
                      iteration=lambda: profiler.TraceAnnotation(ITERATION))
        with profiler.trace(str(trace_dir), create_perfetto_trace=True):
            yield trace
        found = sorted(trace_dir.rglob("*.trace.json.gz"))
        if not found:
            raise UserError(f"jax:{self.device}: jax.profiler.trace wrote no *.trace.json.gz "
                            f"(jax {self.jax.__version__}); upgrade jax (pip install -U jax)")
        trace.path = found[-1]

    def from_numpy(self, array: Any) -> Any:
        return self.jax.device_put(array, self.jax_device)

    def to_numpy(self, value: Any) -> Any:
        import numpy as np

        return np.asarray(value)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "jax": self.jax.__version__,
                "device_kind": getattr(self.jax_device, "device_kind", "")}
