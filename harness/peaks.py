"""Peak throughput: a catalogue of accelerators' datasheet peaks, and attainable peaks measured
on the local CPU. Compute measurements get `pct_peak` from them (see `peak_metrics`).

- The catalogue is `harness/peaks.toml` plus the user's own file (`BENCH_PEAKS=path.toml`, same
  format, for FPGAs, CPUs and anything else): entries match the device name a backend reports.
- The attainable CPU peaks are what a tuned library reaches here: the best of NumPy's and
  PyTorch's float32/float64 GEMM (PyTorch's for bfloat16) and a one-pass STREAM add, measured
  once per host (a few seconds) and cached for a day in `BENCH_CACHE_DIR` (default
  ~/.cache/accelbench). They are what this host reached when measured: a busy host gives low
  figures, and a measurement can exceed them (pct_attainable > 100).

`pct_peak` is relative to the catalogue peak where the device is in the catalogue, else to the
measured attainable peak; `pct_attainable` is always relative to the measured one where there is
one. The roof is the roofline's: peak FLOP/s of the element type for work above the ridge point,
peak memory bandwidth for work below it (STREAM) or without FLOPs. The memory peak is DRAM's: a
working set that fits in the CPU's caches (from sysfs, in the environment fingerprint) exceeds it,
and its measurement says so (`cache_level`, see `cache_fit`).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import units
from harness.errors import UserError
from harness.workmodel import Work

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CATALOGUE = Path(__file__).resolve().parent / "peaks.toml"
USER_ENV = "BENCH_PEAKS"
CACHE_ENV = "BENCH_CACHE_DIR"
CACHE_MAX_AGE_S = 24 * 3600  # measure again after a day: hosts change, and so does their load
# A calibration made while the 1-minute load per usable core was above this is used for the run
# that made it (its load recorded with it) but not cached for a day.
BUSY_LOAD_PER_CORE = 0.5


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read the peaks file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    devices = data.get("devices", {})
    for key, entry in devices.items():
        where = f"{path}: [devices.{key}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), list):
            raise UserError(f"{where} needs match = [\"substring of the device name\", ...]")
        for name, value in {**entry.get("tflops", {}),
                            "memory_gbps": entry.get("memory_gbps", 0)}.items():
            if not isinstance(value, (int, float)) or value < 0:
                raise UserError(f"{where}: {name} must be a non-negative number, got {value!r}")
    return devices


def catalogue() -> dict[str, dict[str, Any]]:
    """Built-in entries, then the user's (which add to or replace them by key)."""
    devices = _load(CATALOGUE)
    user = os.environ.get(USER_ENV)
    if user:
        devices.update(_load(Path(user).expanduser()))
    return devices


def lookup(device_name: str) -> tuple[str, dict[str, Any]] | None:
    """The catalogue entry whose longest `match` substring is in the device name."""
    best: tuple[int, str, dict[str, Any]] | None = None
    low = device_name.lower()
    for key, entry in catalogue().items():
        for pattern in entry["match"]:
            if pattern.lower() in low and (best is None or len(pattern) > best[0]):
                best = (len(pattern), key, entry)
    return (best[1], best[2]) if best else None


# -- measured attainable peaks of the host CPU -----------------------------------------------------


def _best_of(fn: Any, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_cpu(size: int = 1536, stream_n: int = 1 << 23) -> dict[str, Any]:
    """Best GEMM FLOP/s (float32, float64; bfloat16 with PyTorch) and STREAM-add bandwidth of
    NumPy and PyTorch here."""
    import numpy as np

    rng = np.random.default_rng(0)
    flops: dict[str, float] = {}
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((size, size)).astype(dtype)
        b = rng.standard_normal((size, size)).astype(dtype)
        out = np.empty_like(a)
        rates = [2 * size**3 / _best_of(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), 3)]
        try:
            import torch

            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            tout = torch.empty_like(ta)
            rates.append(2 * size**3 / _best_of(
                lambda ta=ta, tb=tb, tout=tout: torch.matmul(ta, tb, out=tout), 3))
        except ImportError:
            pass
        flops[dtype] = max(rates)
    try:  # bfloat16: NumPy has none; PyTorch's CPU kernels use AVX-512 BF16/AMX where present
        import torch

        ta = torch.from_numpy(rng.standard_normal((size, size))).to(torch.bfloat16)
        tout = torch.empty_like(ta)
        flops["bfloat16"] = 2 * size**3 / _best_of(lambda: torch.matmul(ta, ta, out=tout), 3)
    except ImportError:
        pass
    x, y = rng.standard_normal(stream_n), rng.standard_normal(stream_n)
    z = np.empty_like(x)
    bandwidth = 3 * x.nbytes / _best_of(lambda: np.add(x, y, out=z), 5)
    return {"flops_per_s": flops, "bytes_per_s": bandwidth, "measured_at": time.time(),
            "method": f"best of numpy/torch gemm {size}, numpy add over {stream_n} float64"}


def _load_per_core() -> float:
    try:
        return os.getloadavg()[0] / max(1, len(os.sched_getaffinity(0)))
    except (OSError, AttributeError):
        return 0.0


def _host_key() -> str:
    from harness.env import cpu_info

    cpu = cpu_info()
    text = f"{socket.gethostname()}|{cpu['model']}|{cpu['usable_cores']}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_attainable: dict[str, Any] | None = None


def attainable_cpu() -> dict[str, Any]:
    """The host CPU's measured attainable peaks, measured once per host and cached on disk."""
    global _attainable
    if _attainable is not None:
        return _attainable
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "accelbench")
    path = folder / f"attainable-{_host_key()}.json"
    try:
        cached = json.loads(path.read_text())
        if time.time() - float(cached["measured_at"]) < CACHE_MAX_AGE_S:
            _attainable = cached
            return cached
    except (OSError, ValueError, KeyError, TypeError):
        pass
    load = _load_per_core()
    _attainable = {**measure_cpu(), "load_per_core": load}
    if load > BUSY_LOAD_PER_CORE:
        return _attainable  # others' work lowered these figures: measure again next time
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(_attainable))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: measure again next time
    return _attainable


# -- what a measurement is compared with -------------------------------------------------------


def for_backend(backend: Any, dtype: str) -> dict[str, Any]:
    """The peaks a measurement on this backend at this element type is compared with:
    {"device", "source", "flops_per_s", "bytes_per_s", "attainable_flops_per_s",
    "attainable_bytes_per_s"}; missing figures are None. Stored in the measurement's info."""
    name, host = backend.catalogue_device()
    peak: dict[str, Any] = {"device": name or backend.name, "source": None,
                            "flops_per_s": None, "bytes_per_s": None,
                            "attainable_flops_per_s": None, "attainable_bytes_per_s": None}
    if host:
        from harness.env import cpu_info

        cpu = cpu_info()
        peak["device"] = cpu["model"]
        name = peak["device"]
        # what a working set that fits stays in (and so beats DRAM bandwidth): see cache_fit
        peak["caches"] = [{**c, "usable_bytes": c["size_bytes"] * max(
            1, -(-int(cpu["usable_cores"] or 1) // int(c["shared_cpus"])))} for c in cpu["caches"]]
    found = lookup(name) if name else None
    if found:
        key, entry = found
        tflops = entry.get("tflops", {}).get(dtype)
        peak.update(source=f"catalogue:{key}",
                    flops_per_s=tflops * 1e12 if tflops else None,
                    bytes_per_s=entry.get("memory_gbps", 0) * 1e9 or None)
    if host:
        measured = attainable_cpu()
        peak.update(attainable_flops_per_s=measured["flops_per_s"].get(dtype),
                    attainable_bytes_per_s=measured["bytes_per_s"],
                    attainable_measured_at=measured.get("measured_at"),
                    attainable_load_per_core=measured.get("load_per_core"))
        if not found:
            peak.update(source="measured", flops_per_s=peak["attainable_flops_per_s"],
                        bytes_per_s=peak["attainable_bytes_per_s"])
    return peak


def cache_fit(working_set: float, peak: Mapping[str, Any]) -> dict[str, Any] | None:
    """The smallest cache level of the peak's device that holds the working set (all its
    instances this process may use), or None: a memory-bound figure with a working set in
    cache measures cache bandwidth, and may exceed the DRAM peak."""
    fits = [c for c in peak.get("caches") or [] if working_set <= c.get("usable_bytes", 0)]
    return min(fits, key=lambda c: c["level"]) if fits and working_set > 0 else None


def peak_metrics(work: Work, median_s: float, peak: Mapping[str, Any] | None) -> dict[str, float]:
    """`pct_peak` and `pct_attainable` (percent) of one measurement against its roof.

    The roof is the roofline's at the work's arithmetic intensity: peak FLOP/s above the ridge
    (peak FLOP/s / peak bandwidth), peak memory bandwidth below it (and for work without FLOPs);
    `roof_is_memory` says which, and `peak_flops_per_s` / `peak_bytes_per_s` keep the roofs.
    Work moved against the memory roof whose bytes fit in a cache of the device gets
    `working_set_bytes` and `cache_level`: its figure is cache, not DRAM, bandwidth."""
    if not peak or median_s <= 0 or not (work.flops or work.bytes):
        return {}
    flops_peak, bytes_peak = peak.get("flops_per_s"), peak.get("bytes_per_s")
    if work.flops and work.bytes and flops_peak and bytes_peak:
        memory = work.flops / work.bytes < flops_peak / bytes_peak
    else:
        memory = not work.flops
    kind = "bytes_per_s" if memory else "flops_per_s"
    rate = (work.bytes if memory else work.flops) / median_s
    out: dict[str, float] = {}
    if peak.get(kind):
        out["pct_peak"] = 100.0 * rate / peak[kind]
    if peak.get(f"attainable_{kind}"):
        out["pct_attainable"] = 100.0 * rate / peak[f"attainable_{kind}"]
    if not out:
        return out
    out["roof_is_memory"] = float(memory)
    out.update({f"peak_{k}": float(peak[k]) for k in ("flops_per_s", "bytes_per_s") if peak.get(k)})
    if memory and (fit := cache_fit(work.bytes, peak)) is not None:
        out.update(working_set_bytes=float(work.bytes), cache_level=float(fit["level"]),
                   cache_bytes=float(fit["usable_bytes"]))
    return out


def peak_note(metrics: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> str | None:
    """Why a measurement's % of peak is what it is, where a reader would doubt it: a working
    set in cache (its figure is cache bandwidth, held against DRAM's: it may pass 100%), or a
    figure above the peak it is held against; None otherwise. One text for `bench show`, the
    HTML report and `bench serve`."""
    pct, level = metrics.get("pct_peak"), metrics.get("cache_level")
    if pct is None:
        return None
    pct = float(pct)
    roof = "peak memory bandwidth" if metrics.get("roof_is_memory") else "peak FLOP/s"
    if level is not None:
        return (f"{pct:.0f}% of {roof} (DRAM's), but the working set "
                f"{units.rate(float(metrics['working_set_bytes']), 'B')} fits in the "
                f"L{int(level)} cache ({units.rate(float(metrics['cache_bytes']), 'B')}): "
                "a cache figure, which may exceed the DRAM peak")
    if pct > 100:
        source = ((info or {}).get("peak") or {}).get("source") or "unknown source"
        return f"{pct:.0f}% of {roof}: above the peak it is held against ({source})"
    return None


class PeakMetrics:
    """Mixin for compute workloads: `extra_metrics` adds pct_peak from `info["peak"]`, which the
    workload's prepare sets with `for_backend(backend, dtype)`."""

    def extra_metrics(self, params: Mapping[str, Any], median_s: float,
                      info: Mapping[str, Any]) -> dict[str, float]:
        return peak_metrics(self.work(params), median_s, info.get("peak"))  # type: ignore[attr-defined]
