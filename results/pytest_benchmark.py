"""Importing pytest-benchmark JSON (`pytest --benchmark-json=FILE`) as runs.

Each benchmark becomes a measurement of workload `pytest:<fullname>` on backend `python:host`.
Its raw per-iteration times become samples when the file has them (`--benchmark-save-data`);
without them only pytest-benchmark's own summary is kept, and `bench compare` cannot use it.
The run id is derived from the file's content, so importing a file twice stores it once.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from harness.env import env_hash
from harness.stats import summarize
from results.runfile import BadRunFile, RunRecord

BACKEND = "python:host"


_REVISION = re.compile(r"[0-9a-f]{7,40}")


def looks_like(data: Any) -> bool:
    return isinstance(data, dict) and "benchmarks" in data and "machine_info" in data


def _summary_from_stats(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": stats.get("rounds"), "min": stats.get("min"), "max": stats.get("max"),
        "mean": stats.get("mean"), "stdev": stats.get("stddev"), "median": stats.get("median"),
        "p25": stats.get("q1"), "p75": stats.get("q3"), "iqr": stats.get("iqr"),
        "p5": None, "p95": None, "p99": None, "ci_low": None, "ci_high": None,
        "ci_level": None, "outliers": None,
    }


def to_run_record(path: Path) -> RunRecord:
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRunFile(path, f"not JSON ({exc})") from None
    if not looks_like(data):
        raise BadRunFile(path, "not a pytest-benchmark JSON file (no 'benchmarks' and "
                         "'machine_info'); write one with pytest --benchmark-json=FILE")
    machine = data.get("machine_info") or {}
    env = {
        "host": machine.get("node"),
        "cpu": {"model": (machine.get("cpu") or {}).get("brand_raw"),
                "logical_cores": (machine.get("cpu") or {}).get("count")},
        "python": {"version": machine.get("python_version"),
                   "implementation": machine.get("python_implementation")},
        "source": "pytest-benchmark",
        "machine_info": machine,
    }
    commit = data.get("commit_info") or {}
    run_id = str(uuid.uuid5(uuid.NAMESPACE_URL,
                            "pytest-benchmark:" + hashlib.sha256(raw).hexdigest()))
    measurements = []
    for b in data["benchmarks"]:
        stats = b.get("stats") or {}
        samples = stats.get("data") or []
        params = b.get("params") or {}
        workload = f"pytest:{b.get('fullname') or b.get('name')}"
        inner = ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                         for k, v in sorted(params.items()))
        summary = summarize(samples).to_dict() if samples else _summary_from_stats(stats)
        median = summary.get("median")
        measurements.append({
            "case_key": f"{workload}[{BACKEND}]({inner})", "workload": workload,
            "backend": BACKEND, "params": params, "status": "ok", "error": None,
            "summary": summary,
            "metrics": {"latency_s": median, "items_per_s": 1 / median} if median else {},
            "work": {"items": 1, "item_unit": "calls"},
            "timing": {"stop_reason": "pytest-benchmark", "block": stats.get("iterations", 1),
                       "group": b.get("group"), "options": b.get("options"),
                       "extra_info": b.get("extra_info")},
            "samples": samples or None,
        })
    started = data.get("datetime") or ""
    header = {
        "run_id": run_id, "started_at": started, "command": f"pytest-benchmark import {path.name}",
        "suite": None, "tags": {"source": "pytest-benchmark"},
        # pytest-benchmark writes "unversioned" (or a branch name) when it found no commit
        "git": ({"revision": commit.get("id"), "dirty": commit.get("dirty")}
                if commit and _REVISION.fullmatch(str(commit.get("id") or "")) else None),
        "host": machine.get("node"), "harness_version": f"pytest-benchmark {data.get('version')}",
        "env_hash": env_hash(env), "env": env,
    }
    return RunRecord.from_records(header, measurements, "complete", started, path)
