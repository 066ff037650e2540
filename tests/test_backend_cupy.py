"""The cupy backend: one backend module, its kernels module and its entry point, nothing else.

No CUDA device exists here, so the runs use a stand-in `cupy` (tests/fixtures/fake_cupy: NumPy
underneath) put on PYTHONPATH; without it, `cupy:cuda` must say in one line what to install."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from harness.backends.base import registry as backends
from harness.workload import registry as workloads
from results.runfile import read_run_file

FAKE = Path(__file__).parent / "fixtures" / "fake_cupy"
ABSENT = "bench: error: backend 'cupy' needs the cupy package: pip install cupy-cuda12x " \
         "(a CUDA GPU node)"
real_cupy = pytest.mark.skipif(importlib.util.find_spec("cupy") is not None,
                               reason="cupy is installed here: the absent path cannot be shown")


def _with_fake() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(FAKE), os.environ.get("PYTHONPATH"))
                                          if p)}


def _only_run(workdir: Path):
    (path,) = (workdir / "bench-runs").glob("*.jsonl")
    return read_run_file(path).run


def test_cupy_registers_by_its_entry_point_and_declares_its_workloads():
    assert "cupy" in backends.names(), "the installed metadata is stale: pip install -e ."
    assert backends.get("cupy").workloads == ("gemm", "stream")
    assert workloads.get("gemm").runs_on("cupy") and workloads.get("stream").runs_on("cupy")
    assert not workloads.get("conv2d").runs_on("cupy")  # it has no conv2d kernel
    assert "cupy" in workloads.get("gemm").backend_models()


@real_cupy
def test_without_cupy_a_run_says_what_to_install_and_writes_nothing(bench, workdir):
    res = bench("run", "-w", "gemm", "-b", "cupy:cuda", "-p", "m=64")
    assert (res.rc, res.err_lines, res.stdout) == (2, [ABSENT], "")
    assert not (workdir / "bench-runs").exists() and not (workdir / "bench.db").exists()

    env = bench("env", "-b", "cupy:cuda")
    assert (env.rc, env.err_lines) == (2, [ABSENT])


@real_cupy
def test_bench_list_shows_cupy_not_usable_here_and_why(bench, workdir):
    res = bench("list", "backends", "--json", env={"BENCH_CACHE_DIR": str(workdir)})
    assert res.rc == 0, res.stderr
    (cupy,) = [b for b in res.json()["backends"] if b["backend"].startswith("cupy")]
    assert (cupy["backend"], cupy["usable"]) == ("cupy:cuda", False)
    assert cupy["reason"] == ABSENT.removeprefix("bench: error: ")


def test_gemm_on_cupy_runs_checked_with_device_time(bench, workdir):
    m, n, k = 64, 48, 32
    res = bench("run", "-w", "gemm", "-b", "cupy:cuda", "-p", f"m={m}", "-p", f"n={n}", "-p",
                f"k={k}", "--budget", "0.1", "-q", env=_with_fake())
    assert res.rc == 0, res.stderr
    run = _only_run(workdir)
    (meas,) = run.measurements
    assert meas.ok, meas.error  # the result check (against float64 NumPy) passed
    assert meas.case_key == f"gemm[cupy:cuda](dtype=float32,k={k},m={m},n={n})"
    assert meas.samples and meas.device_samples and \
        len(meas.device_samples) == len(meas.samples)
    # the stand-in's events read the host clock around the same calls: the two times agree
    device, host = meas.metrics["device_latency_s"], meas.metrics["latency_s"]
    assert 0.5 < device / host < 2, (device, host)
    assert meas.metrics["flops_per_s"] == pytest.approx(2 * m * n * k / host)
    (described,) = run.env["backends"]
    assert (described["backend"], described["device_name"]) == \
        ("cupy:cuda", "Fake CUDA device (numpy)")

    shown = bench("show", "latest", "--json")
    assert [x["case_key"] for x in shown.json()["measurements"]] == [meas.case_key]


def test_stream_on_cupy_runs_every_kernel_checked(bench, workdir):
    res = bench("run", "-w", "stream", "-b", "cupy:cuda", "-p", "n=4096", "-p",
                "op=copy,scale,add,triad", "-p", "dtype=float32", "--budget", "0.05", "-q",
                env=_with_fake())
    assert res.rc == 0, res.stderr
    run = _only_run(workdir)
    assert [m.params["op"] for m in run.measurements] == ["copy", "scale", "add", "triad"]
    for meas in run.measurements:
        assert meas.ok, meas.error
        assert meas.backend == "cupy:cuda" and meas.device_samples
        assert meas.metrics["bytes_per_s"] > 0


def test_a_missing_device_and_an_undeclared_workload_are_one_line(bench, workdir):
    res = bench("run", "-w", "gemm", "-b", "cupy:cuda:1", "-p", "m=64", env=_with_fake())
    assert (res.rc, res.err_lines) == \
        (2, ["bench: error: cupy:cuda:1: only 1 CUDA device(s) here"])
    conv = bench("run", "-w", "conv2d", "-b", "cupy:cuda", env=_with_fake())
    assert conv.rc == 2 and len(conv.err_lines) == 1
    assert "does not run on 'cupy:cuda'" in conv.stderr
    assert not (workdir / "bench-runs").exists()
