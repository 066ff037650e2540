"""ONNX Runtime with an execution provider: cpu (CPUExecutionProvider) or cuda."""

from __future__ import annotations

from typing import Any

from harness.backends.base import Backend
from harness.errors import BackendUnavailable

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRuntimeBackend(Backend):
    model = "onnxruntime"
    package = "onnxruntime"
    extra = "onnx"
    devices = ("cpu", "cuda")
    description = "ONNX Runtime sessions (execution provider per device)"

    def _setup(self) -> None:
        import onnxruntime as ort

        self.ort = ort
        self.provider = PROVIDERS[self.device.split(":")[0]]
        if self.provider not in ort.get_available_providers():
            raise BackendUnavailable(
                f"onnxruntime:{self.device}: {self.provider} is not available "
                f"(have {', '.join(ort.get_available_providers())}); "
                "on a GPU node install onnxruntime-gpu"
            )

    def session(self, model: bytes) -> Any:
        """An InferenceSession of a serialized model on this backend's execution provider."""
        options = self.ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        return self.ort.InferenceSession(model, sess_options=options, providers=[self.provider])

    def ortvalue(self, array: Any) -> Any:
        """A numpy array as an OrtValue on this backend's device."""
        kind, _, index = self.device.partition(":")
        return self.ort.OrtValue.ortvalue_from_numpy(array, kind, int(index or 0))

    def from_numpy(self, array: Any) -> Any:
        return self.ortvalue(array)

    def to_numpy(self, value: Any) -> Any:
        return value.numpy()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "onnxruntime": self.ort.__version__,
                "provider": self.provider}
