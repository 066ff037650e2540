"""Whether a backend works here, as `bench list` tells it: without importing any framework.

Knowing for sure means importing the framework and asking for the device (`unusable_reason`),
which costs seconds for torch and jax. So `bench list` says what it knows for free: a package
that is not installed (found without importing it), a backend whose check is cheap (numpy), and
what the last `bench list backends --probe` found, kept in a small cache that is used only while
nothing it depends on has changed (the interpreter, each package's files, the device nodes, the
environment variables that pick devices). Otherwise the answer is "not probed".
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, NamedTuple

from harness.backends.base import Backend, parse_backend

CACHE_ENV = "BENCH_CACHE_DIR"  # default: $XDG_CACHE_HOME/accelbench or ~/.cache/accelbench
CACHE_FILE = "backends.json"
CACHE_FORMAT = 1
# Variables that decide which devices a framework sees.
DEVICE_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
              "ROCR_VISIBLE_DEVICES", "JAX_PLATFORMS", "JAX_PLATFORM_NAME", "TPU_VISIBLE_CHIPS",
              "OCL_ICD_VENDORS", "OCL_ICD_FILENAMES", "POCL_DEVICES", "LD_LIBRARY_PATH")
DEVICE_NODES = ("nvidia", "kfd", "dri", "accel", "vfio", "neuron")
ICD_DIR = Path("/etc/OpenCL/vendors")


class Usability(NamedTuple):
    """usable: True, False, or None (not probed); reason: why not, or how to find out."""

    usable: bool | None
    reason: str | None


def cache_path() -> Path:
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base) / CACHE_FILE
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "accelbench" / CACHE_FILE


def _package_stamp(package: str) -> str:
    """Where the package's files are and when they last changed (a reinstall changes it)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return "absent"
    if spec is None or not spec.origin:
        return "absent"
    try:
        return f"{spec.origin}@{os.stat(spec.origin).st_mtime_ns}"
    except OSError:
        return spec.origin


def _machine_stamp() -> str:
    """What every backend's answer depends on besides its own package."""
    try:
        nodes = sorted(n for n in os.listdir("/dev") if n.startswith(DEVICE_NODES))
    except OSError:
        nodes = []
    try:
        icds = sorted(os.listdir(ICD_DIR))
    except OSError:
        icds = []
    data = {"python": sys.executable, "host": socket.gethostname(), "nodes": nodes,
            "icds": icds, "env": {k: os.environ.get(k) for k in DEVICE_ENV}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _key(cls: type[Backend], machine: str) -> str:
    return f"{machine}:{_package_stamp(cls.package)}"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def _write_cache(entries: dict[str, Any]) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": CACHE_FORMAT, "entries": entries}, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only means probing again next time


def probe_command() -> str:
    return "bench list backends --probe"


def usability(specs: list[tuple[str, type[Backend]]], probe: bool = False) -> list[Usability]:
    """For each (spec, backend class): whether it works here. With probe=False nothing is
    imported (cached or cheap answers, else "not probed"); with probe=True every installed
    backend is set up for real and the cache is refreshed."""
    machine = _machine_stamp()
    cache = _read_cache()
    out: list[Usability] = []
    changed = False
    for spec, cls in specs:
        if not cls.installed():
            out.append(Usability(False, cls.not_installed_message()))
            continue
        key = _key(cls, machine)
        if probe or cls.cheap_probe:
            reason = parse_backend(spec).unusable_reason()
            out.append(Usability(reason is None, reason))
            if probe:
                cache[spec] = {"key": key, "reason": reason}
                changed = True
            continue
        hit = cache.get(spec)
        if isinstance(hit, dict) and hit.get("key") == key:
            reason = hit.get("reason")
            out.append(Usability(reason is None, reason if isinstance(reason, str) else None))
            continue
        out.append(Usability(None, f"{cls.package} is installed; not probed yet: "
                                   f"`{probe_command()}`"))
    if changed:
        _write_cache(cache)
    return out
