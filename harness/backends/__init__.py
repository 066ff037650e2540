"""Backends: a programming model on a device, written `model:device` (e.g. `torch:cuda:1`).

Each module here has the same shape: a `Backend` subclass that imports its framework lazily,
selects the device, synchronises it, and reads device-side time where the device has it.
"""

from __future__ import annotations

from harness.backends.base import Backend, DeviceTimer, parse_backend, registry

__all__ = ["Backend", "DeviceTimer", "parse_backend", "registry"]
