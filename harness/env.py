"""The environment fingerprint: everything about the machine that can change a result."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Environment variables that change results; recorded with every run.
ENV_PREFIXES = (
    "OMP_", "OPENBLAS_", "MKL_", "GOMP_", "KMP_", "CUDA_", "NCCL_", "GLOO_", "FI_", "UCX_",
    "OMPI_MCA_", "XLA_", "JAX_", "MALLOC_", "TORCH_", "PYTORCH_", "POCL_", "NUMPY_", "SLURM_JOB_",
)
ENV_EXACT = ("XLA_FLAGS", "LD_PRELOAD", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
LIBRARIES = (
    "numpy", "scipy", "torch", "jax", "jaxlib", "onnxruntime", "onnxruntime-gpu", "pyopencl",
    "mpi4py", "grpcio", "nvidia-nccl-cu12", "accelbench",
)
# Never recorded: values of variables whose names suggest secrets.
_SECRET = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL)", re.IGNORECASE)


_URL_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^:/@\s]*:)[^@\s]*@")


def mask_secrets(text: str) -> str:
    """Hide passwords in URLs (scheme://user:password@host -> scheme://user:***@host)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_info() -> dict[str, Any]:
    text = _read("/proc/cpuinfo")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    cores: set[tuple[str, str]] = set()
    package = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            package = value.strip()
        elif key.strip() == "core id":
            cores.add((package, value.strip()))
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "flags": sorted(fields.get("flags", "").split()),
        "logical_cores": os.cpu_count() or 0,
        "physical_cores": len(cores) or None,
        "usable_cores": usable,
        "caches": cpu_caches(),
    }


_SIZE = re.compile(r"^(\d+)([KMG]?)$")
CACHE_DIR = "/sys/devices/system/cpu/cpu0/cache"


def cpu_caches(root: str = CACHE_DIR) -> list[dict[str, Any]]:
    """The data caches of CPU 0 (Linux sysfs): level, type, size_bytes, and how many CPUs share
    one instance. Empty where sysfs does not say."""
    caches = []
    for index in sorted(Path(root).glob("index*")):
        kind = _read(str(index / "type")).strip()
        m = _SIZE.match(_read(str(index / "size")).strip())
        level = _read(str(index / "level")).strip()
        if kind == "Instruction" or not m or not level.isdigit():
            continue
        size = int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]
        shared = 0
        for part in _read(str(index / "shared_cpu_list")).strip().split(","):
            lo, _, hi = part.partition("-")
            if lo.isdigit():
                shared += int(hi or lo) - int(lo) + 1
        caches.append({"level": int(level), "type": kind, "size_bytes": size,
                       "shared_cpus": max(1, shared)})
    return caches


def memory_bytes() -> int | None:
    m = re.search(r"MemTotal:\s+(\d+) kB", _read("/proc/meminfo"))
    return int(m.group(1)) * 1024 if m else None


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def relevant_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    return {
        k: v
        for k, v in sorted(environ.items())
        if (k.startswith(ENV_PREFIXES) or k in ENV_EXACT) and not _SECRET.search(k)
    }


def nvidia_gpus() -> list[dict[str, str]]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,pci.bus_id",
             "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, driver, mem, bus = (p.strip() for p in line.split(",", 3))
        gpus.append({"name": name, "driver": driver, "memory": mem, "pci_bus_id": bus})
    return gpus


def accelerators() -> dict[str, Any]:
    """Accelerators visible without importing any framework."""
    found: dict[str, Any] = {}
    gpus = nvidia_gpus()
    if gpus:
        found["nvidia"] = gpus
    if Path("/dev/kfd").exists():
        found["amd_kfd"] = True
    accel = sorted(p.name for p in Path("/dev").glob("accel*"))
    if accel:
        found["dev_accel"] = accel  # TPU and other accelerator character devices
    vendors = Path("/etc/OpenCL/vendors")
    if vendors.is_dir():
        found["opencl_icds"] = sorted(p.name for p in vendors.glob("*.icd"))
    return found


def git_revision(path: str | Path = ".") -> dict[str, Any] | None:
    if not shutil.which("git"):
        return None
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=path, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def fingerprint(backends: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The environment of this process. Volatile facts (free memory, load) are left out so that
    the same machine in the same configuration hashes the same."""
    uname = platform.uname()
    return {
        "host": socket.gethostname(),
        "os": {"system": uname.system, "release": uname.release, "version": uname.version,
               "machine": uname.machine},
        "cpu": cpu_info(),
        "memory_bytes": memory_bytes(),
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation()},
        "libraries": library_versions(),
        "accelerators": accelerators(),
        "backends": backends or [],
        "env": relevant_env(),
    }


def env_hash(env: dict[str, Any]) -> str:
    blob = json.dumps(env, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
