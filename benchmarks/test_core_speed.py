"""The core's own speed under pytest-benchmark (run on demand, not in CI):

    pytest benchmarks/test_core_speed.py --benchmark-json=core.json --benchmark-save-data
    bench ingest core.json        # pytest-benchmark results become runs like any other
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from harness.stats import summarize
from results.compare import compare
from results.runfile import RunRecord
from results.store import Store


@pytest.fixture(scope="module")
def thousand_cases() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    base = {f"case{i}": rng.lognormal(0, 0.05, 1000) for i in range(1000)}
    head = {f"case{i}": rng.lognormal(0, 0.05, 1000) for i in range(1000)}
    return base, head


def test_summarize_10k_samples(benchmark):
    x = np.random.default_rng(1).lognormal(0, 0.3, 10_000)
    s = benchmark(summarize, x)
    assert s.ci_low < s.median < s.ci_high


def test_compare_1000_cases_of_1000_samples(benchmark, thousand_cases):
    base, head = thousand_cases
    result = benchmark(compare, base, head)
    assert len(result.cases) == 1000


def test_ingest_1m_samples(benchmark, tmp_path):
    rng = np.random.default_rng(2)
    measurements = [
        {"case_key": f"spin[numpy:cpu](us={i})", "workload": "spin", "backend": "numpy:cpu",
         "params": {"us": i}, "status": "ok", "summary": {"n": 1000, "median": 1.0},
         "metrics": {}, "work": {}, "timing": {}, "samples": rng.random(1000).tolist()}
        for i in range(1000)
    ]

    def ingest_fresh() -> str:
        header = {"run_id": str(uuid.uuid4()), "started_at": "2026-01-01T00:00:00+00:00",
                  "env_hash": "bench", "env": {}}
        store = Store(str(tmp_path / f"{uuid.uuid4()}.db"))
        return store.ingest(RunRecord.from_records(header, measurements, "complete"))

    assert benchmark.pedantic(ingest_fresh, rounds=3, iterations=1) == "added"
