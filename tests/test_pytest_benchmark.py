"""pytest-benchmark JSON files become runs: raw data as samples, ingest idempotent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BENCH_FILE = '''
import time

def test_sleepy(benchmark):
    benchmark(time.sleep, 0.0005)

def test_sorting(benchmark):
    data = list(range(2000, 0, -1))
    benchmark(sorted, data)
'''


def _pytest_benchmark(workdir, name: str, *extra: str) -> dict:
    (workdir / "bench_me.py").write_text(BENCH_FILE)
    out = workdir / name
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "bench_me.py", "-q", "-p", "no:cacheprovider",
         f"--benchmark-json={out}", "--benchmark-min-rounds=20", "--benchmark-max-time=0.2",
         "--benchmark-disable-gc", *extra],
        cwd=workdir, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.fixture
def saved(workdir):
    return _pytest_benchmark(workdir, "pb.json", "--benchmark-save-data")


def test_import_with_raw_data(bench, saved, workdir):
    r = bench("ingest", "pb.json")
    assert r.rc == 0 and r.stdout.strip() == "1 added", r.stdout + r.stderr
    assert bench("ingest", "pb.json").stdout.strip() == "1 unchanged"
    shown = bench("show", "latest", "--json").json()
    by_name = {m["workload"].split("::")[-1]: m for m in shown["measurements"]}
    assert set(by_name) == {"test_sleepy", "test_sorting"}
    for b in saved["benchmarks"]:
        m = by_name[b["name"]]
        assert m["backend"] == "python:host"
        assert m["summary"]["n"] == b["stats"]["rounds"] == len(b["stats"]["data"])
        assert m["summary"]["median"] == pytest.approx(b["stats"]["median"], rel=1e-9)
    assert by_name["test_sleepy"]["summary"]["median"] > 0.0005
    runs = bench("runs", "--json").json()
    assert runs[0]["tags"] == {"source": "pytest-benchmark"}


def test_two_imports_compare(bench, saved, workdir):
    _pytest_benchmark(workdir, "pb2.json", "--benchmark-save-data")
    assert bench("ingest", "pb.json", "pb2.json").stdout.strip() == "2 added"
    cmp = bench("compare", "latest~1", "latest", "--format", "json")
    assert cmp.rc == 0, cmp.stderr
    assert len(cmp.json()["cases"]) == 2


def test_import_without_raw_data_keeps_the_summary(bench, saved, workdir):
    data = saved
    for b in data["benchmarks"]:  # as older pytest-benchmark versions wrote it
        del b["stats"]["data"]
    (workdir / "nodata.json").write_text(json.dumps(data))
    assert bench("ingest", "nodata.json").rc == 0
    m = bench("show", "latest", "--json").json()["measurements"][0]
    stats = next(b["stats"] for b in data["benchmarks"] if m["workload"].endswith(b["name"]))
    assert m["summary"]["median"] == pytest.approx(stats["median"])
    assert m["summary"]["n"] == stats["rounds"]


def test_not_a_pytest_benchmark_file(bench, workdir):
    (workdir / "other.json").write_text('{"hello": 1}')
    r = bench("ingest", "other.json")
    assert r.rc == 2 and "not a pytest-benchmark JSON file" in r.stderr
    (workdir / "broken.json").write_text("{nope")
    assert bench("ingest", "broken.json").rc == 2


def test_an_unversioned_import_has_no_git_revision(tmp_path):
    from results.pytest_benchmark import to_run_record

    data = {"machine_info": {"node": "h"}, "commit_info": {"id": "unversioned", "dirty": False},
            "benchmarks": [{"name": "t", "fullname": "t", "stats": {"data": [1.0, 2.0, 3.0]}}],
            "datetime": "2026-12-02T00:00:00", "version": "5"}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    assert to_run_record(path).header["git"] is None
    data["commit_info"]["id"] = "0123abcd" * 5
    path.write_text(json.dumps(data))
    assert to_run_record(path).header["git"]["revision"] == "0123abcd" * 5
