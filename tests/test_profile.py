"""Profiling: `bench run --profile` on real torch, jax, onnxruntime, OpenCL and 2-rank MPI cases,
the Chrome traces it keeps, `bench profile summarize/diff`, and bad input."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from results import profile as prof

PLUGINS = Path(__file__).parent / "fixtures" / "plugins"
FAST = ("--budget", "0.2", "--target-ci", "0.05", "-q")
GEMM = ("-w", "gemm", "-p", "m=64", "-p", "n=64", "-p", "k=64")


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _opencl_device() -> bool:
    if not _have("pyopencl"):
        return False
    import pyopencl as cl

    try:
        return any(p.get_devices() for p in cl.get_platforms())
    except cl.Error:
        return False


def _run(bench, *args: str, timeout: float = 180, env: dict | None = None) -> dict:
    res = bench("run", *args, *FAST, "--profile", "--json", timeout=timeout, env=env)
    assert res.rc == 0, res.stderr
    return json.loads(res.stdout)


def _trace(m: dict) -> tuple[Path, list[dict], dict]:
    entry = m["timing"]["profile"]
    assert "error" not in entry, entry
    path = Path(entry["path"])
    assert path.is_file() and path.name.endswith(f".{entry['kind']}.json.gz")
    assert path.parent.name == "traces"
    assert entry["bytes"] == path.stat().st_size > 0
    data = json.loads(gzip.decompress(path.read_bytes()))  # gzipped, valid JSON
    events = data["traceEvents"]
    assert isinstance(events, list) and events
    for e in events:  # Chrome trace event format: every event has a phase and a process
        assert "ph" in e and "pid" in e, e
        if e["ph"] == "X":
            assert float(e["dur"]) >= 0 and "ts" in e and isinstance(e["name"], str)
    return path, events, data["otherData"]["accelbench"]


def _names(events: list[dict]) -> set[str]:
    return {e["name"] for e in events if e.get("ph") == "X"}


@pytest.mark.skipif(not _have("torch"), reason="torch is not installed")
def test_torch_trace_and_summary_hot_spot(bench):
    data = _run(bench, "--plugin", str(PLUGINS / "hotspot.py"), "-w", "hotspot",
                "-b", "torch:cpu", "--profile-iters", "3", env={"OMP_NUM_THREADS": "1"})
    m = data["measurements"][0]
    assert m["status"] == "ok"
    _, events, meta = _trace(m)
    assert m["timing"]["profile"]["kind"] == meta["kind"] == "torch"
    assert meta["iterations"] == 3 and meta["case_key"] == m["case_key"]
    names = _names(events)
    assert {"aten::mm", "aten::add", "accelbench.iteration"} <= names
    assert sum(e["name"] == "accelbench.iteration" for e in events) == 3
    # record_shapes: the matmul's input shapes are in the trace
    mm = next(e for e in events if e.get("name") == "aten::mm")
    assert [768, 768] in mm["args"]["Input Dims"]
    # no GPU here: the run says so instead of recording zeros
    assert m["timing"]["gpu_counters"].startswith("none:")
    assert not any(k.startswith("gpu_") or k.startswith("energy") for k in m["metrics"])

    res = bench("profile", "summarize", data["run_id"], "--format", "json")
    assert res.rc == 0, res.stderr
    [s] = json.loads(res.stdout)
    assert s["case_key"] == m["case_key"] and s["steps"] == 3 and s["basis"] == "host"
    ops = {o["name"]: o for o in s["ops"]}
    assert s["ops"][0]["name"] == "aten::mm"
    assert ops["aten::mm"]["self_s"] > 10 * ops["aten::add"]["self_s"]
    assert ops["aten::mm"]["count"] == ops["aten::add"]["count"] == 3
    assert 0 < ops["aten::mm"]["share"] <= 1
    md = bench("profile", "summarize", data["run_id"], "hotspot", "--format", "markdown")
    assert md.rc == 0 and "| aten::mm |" in md.stdout
    table = bench("profile", "summarize", data["run_id"])
    assert table.rc == 0 and "aten::mm" in table.stdout and "[torch:cpu]" in table.stdout
    show = bench("show", data["run_id"])  # the run links its traces
    assert show.rc == 0 and "1 profile trace(s) in " in show.stdout
    assert str(Path(m["timing"]["profile"]["path"]).parent) in show.stdout.replace("\n", "")


@pytest.mark.skipif(not _have("torch"), reason="torch is not installed")
def test_diff_names_the_operator_that_got_slower(bench):
    args = ("--plugin", str(PLUGINS / "hotspot.py"), "-w", "hotspot", "-b", "torch:cpu")
    # One thread: a 2-thread BLAS on this shared 2-vCPU host sometimes waits milliseconds for
    # a descheduled thread; 1024^3 against 32^3 multiply-adds dwarfs any such glitch.
    one = {"OMP_NUM_THREADS": "1"}
    a = _run(bench, *args, "--profile-iters", "10", env={**one, "HOTSPOT_N": "32"})
    b = _run(bench, *args, "--profile-iters", "10", env={**one, "HOTSPOT_N": "1024"})
    res = bench("profile", "diff", a["run_id"], b["run_id"], "--format", "json")
    assert res.rc == 0, res.stderr
    [d] = json.loads(res.stdout)
    top = d["ops"][0]
    assert top["name"] == "aten::mm"  # by far the largest change
    assert top["delta_s"] > 0 and top["ratio"] > 5
    add = next(o for o in d["ops"] if o["name"] == "aten::add")
    assert abs(add["delta_s"]) < top["delta_s"] / 10
    assert d["b_step_s"] > d["a_step_s"]
    md = bench("profile", "diff", a["run_id"], b["run_id"], "--format", "markdown")
    assert md.rc == 0 and "| aten::mm |" in md.stdout


@pytest.mark.skipif(not _have("jax"), reason="jax is not installed")
def test_jax_trace(bench):
    data = _run(bench, *GEMM, "-b", "jax:cpu")
    m = data["measurements"][0]
    _, events, meta = _trace(m)
    assert meta["kind"] == "jax" and meta["iterations"] == 5
    names = _names(events)
    assert "accelbench.iteration" in names
    assert any(n.startswith("PjitFunction(") for n in names)  # the jitted call
    res = bench("profile", "summarize", data["run_id"], "--format", "json")
    [s] = json.loads(res.stdout)
    assert s["steps"] == 5 and s["ops"], s  # XLA's executor-thread ops on a CPU
    assert s["basis"] in ("xla-executor", "device", "host")


@pytest.mark.skipif(not _have("onnxruntime"), reason="onnxruntime is not installed")
def test_onnxruntime_trace(bench):
    data = _run(bench, *GEMM, "-b", "onnxruntime:cpu", "--profile-iters", "4")
    m = data["measurements"][0]
    _, events, meta = _trace(m)
    assert meta["kind"] == "onnxruntime"
    nodes = [e for e in events if e.get("cat") == "Node"]
    assert nodes and all(e["args"]["op_name"] == "MatMul" for e in nodes)
    runs = [e for e in events if e.get("name") == "model_run"]
    assert len(runs) == 5  # the fresh session's first call, then the 4 profiled iterations
    res = bench("profile", "summarize", data["run_id"], "--format", "json")
    [s] = json.loads(res.stdout)
    assert s["steps"] == 4 and s["ops"][0]["name"].startswith("MatMul")
    assert s["ops"][0]["count"] == 4


@pytest.mark.skipif(not _have("onnxruntime"), reason="onnxruntime is not installed")
def test_onnxruntime_trace_marks_each_iteration(bench):
    """The iteration marks are taken on ONNX Runtime's clock: each spans one of its runs (the
    session's first, unprofiled-step run lies outside every mark)."""
    data = _run(bench, "-w", "stream", "-p", "op=triad", "-p", "n=4096",
                "-b", "onnxruntime:cpu", "--profile-iters", "3")
    [m] = data["measurements"]
    _, events, _ = _trace(m)
    marks = sorted((e for e in events if e.get("name") == "accelbench.iteration"),
                   key=lambda e: e["ts"])
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    assert [e["args"]["iteration"] for e in marks] == [0, 1, 2] and len(runs) == 4

    def inside(run: dict, mark: dict) -> bool:
        return mark["ts"] <= run["ts"] and run["ts"] + run["dur"] <= mark["ts"] + mark["dur"]

    assert not any(inside(runs[0], k) for k in marks)
    assert all(inside(r, k) for r, k in zip(runs[1:], marks, strict=True))
    assert all(k["pid"] == runs[0]["pid"] for k in marks)
    res = bench("profile", "summarize", data["run_id"], "--format", "json")
    [s] = json.loads(res.stdout)
    assert s["steps"] == 3 and {o["name"].split(" ")[0] for o in s["ops"]} >= {"Mul", "Add"}
    assert all(o["count"] == 3 for o in s["ops"])
    table = bench("profile", "summarize", data["run_id"], env={"COLUMNS": "60"}).stdout
    assert m["case_key"] in table.splitlines()  # the case key whole, on its own line


@pytest.mark.skipif(not _opencl_device(), reason="no OpenCL device (install pocl-opencl-icd)")
def test_opencl_trace(bench):
    data = _run(bench, *GEMM, "-b", "opencl:0", "--profile-iters", "3")
    m = data["measurements"][0]
    _, events, meta = _trace(m)
    assert meta["kind"] == "opencl"
    kernels = [e for e in events if e.get("cat") == "kernel"]
    assert kernels and {e["name"] for e in kernels} & {"gemm_cpu", "gemm_tiled", "gemm_naive"}
    for e in kernels:  # queued <= submit <= start <= end, from the profiling events
        a = e["args"]
        assert a["queued_ns"] <= a["submit_ns"] <= a["start_ns"] <= a["end_ns"]
    res = bench("profile", "summarize", data["run_id"], "--format", "json")
    [s] = json.loads(res.stdout)
    assert s["basis"] == "device" and s["steps"] == 3
    # the heaviest kernel is one gemm runs; which one (packing or the product) is the device's
    assert s["ops"][0]["name"] in {"gemm_cpu", "gemm_tiled", "gemm_naive", "pack_b"}


def test_numpy_trace_is_labelled_python_level(bench):
    data = _run(bench, *GEMM, "-b", "numpy:cpu", "--profile-iters", "2")
    m = data["measurements"][0]
    _, events, meta = _trace(m)
    assert meta["kind"] == m["timing"]["profile"]["kind"] == "python"
    assert "numpy has no profiler" in meta["note"]
    assert sum(e["name"] == "accelbench.iteration" for e in events) == 2
    assert not any("runner.py" in e["name"] or "profiling.py" in e["name"] for e in events)


HAVE_MPI = shutil.which("mpirun") is not None and _have("mpi4py")


@pytest.mark.skipif(not HAVE_MPI, reason="needs mpirun and mpi4py")
def test_mpi_two_ranks_trace_has_a_track_per_rank(bench):
    data = _run(bench, "-w", "allreduce", "-b", "mpi", "-p", "size=1KiB,256KiB",
                "--launcher", "mpirun", "-n", "2", "--profile-iters", "4")
    assert data["status"] == "complete" and len(data["measurements"]) == 2
    for m in data["measurements"]:
        _, events, meta = _trace(m)
        assert meta["kind"] == "ranks" and meta["ranks"] == 2
        procs = {e["pid"]: e["args"]["name"] for e in events if e.get("name") == "process_name"}
        assert procs == {0: "rank 0", 1: "rank 1"}
        for rank in (0, 1):
            mine = [e for e in events if e.get("pid") == rank and e.get("ph") == "X"]
            assert sum(e["name"] == "allreduce" for e in mine) == 4
            assert sum(e["name"] == "wait" for e in mine) == 4
    res = bench("profile", "summarize", data["run_id"], "size=262144", "--format", "json")
    assert res.rc == 0, res.stderr
    [s] = json.loads(res.stdout)
    assert [r["rank"] for r in s["ranks"]] == [0, 1]
    for r in s["ranks"]:
        assert r["op_s"] > 0 and 0 <= r["wait_share"] < 1
        assert r["wait_share"] == pytest.approx(r["wait_s"] / (r["wait_s"] + r["op_s"]))
    assert {o["name"] for o in s["ops"]} == {"allreduce", "wait"}


# --- the parser on its own ----------------------------------------------------------------


def test_self_time_and_share_from_a_hand_made_trace():
    ev = [
        {"ph": "X", "name": "accelbench.iteration", "cat": "accelbench", "pid": 1, "tid": 1,
         "ts": 0, "dur": 100},
        {"ph": "X", "name": "outer", "pid": 1, "tid": 1, "ts": 10, "dur": 60},
        {"ph": "X", "name": "inner", "pid": 1, "tid": 1, "ts": 20, "dur": 40},
        {"ph": "X", "name": "outside", "pid": 1, "tid": 1, "ts": 200, "dur": 500},
    ]
    s = prof.summarize(ev, {"iterations": 1})
    ops = {o.name: o for o in s.ops}
    assert set(ops) == {"outer", "inner"}  # "outside" lies outside the step
    assert ops["inner"].self_s == pytest.approx(40e-6)
    assert ops["outer"].self_s == pytest.approx(20e-6)
    assert ops["inner"].share == pytest.approx(0.4) and s.step_s == pytest.approx(100e-6)
    d = prof.diff(s, prof.summarize([*ev[:2], {**ev[2], "dur": 10}], {"iterations": 1}))
    deltas = {o.name: o.delta_s for o in d.ops}  # inner's 30 us moved to outer's self time
    assert deltas == pytest.approx({"inner": -30e-6, "outer": 30e-6})


def test_iteration_marks_win_over_model_run():
    """Where a trace has both (ONNX Runtime's now), the steps are the marks, not both kinds;
    a trace with only model_run (written before the marks) still counts its runs."""
    mark = {"ph": "X", "name": "accelbench.iteration", "cat": "accelbench", "pid": 1, "tid": 1}
    run = {"ph": "X", "name": "model_run", "cat": "Session", "pid": 1, "tid": 1}
    op = {"ph": "X", "name": "MatMul", "cat": "Node", "pid": 1, "tid": 1}
    ev = [{**run, "ts": 0, "dur": 50}, {**op, "ts": 10, "dur": 30}]  # the session's first run
    for t in (100, 200):
        ev += [{**mark, "ts": t, "dur": 40}, {**run, "ts": t + 1, "dur": 30},
               {**op, "ts": t + 2, "dur": 20}]
    s = prof.summarize(ev, {"iterations": 2})
    assert s.steps == 2 and s.step_s == pytest.approx(40e-6)
    assert [(o.name, o.count) for o in s.ops] == [("MatMul", 2)]
    old = prof.summarize([e for e in ev if e["name"] != "accelbench.iteration"],
                         {"iterations": 2})
    assert old.steps == 2 and old.step_s == pytest.approx(30e-6)


def test_device_time_is_preferred_where_present():
    ev = [
        {"ph": "X", "name": "accelbench.iteration", "cat": "accelbench", "pid": 1, "tid": 1,
         "ts": 0, "dur": 100},
        {"ph": "X", "name": "aten::mm", "cat": "cpu_op", "pid": 1, "tid": 1, "ts": 1, "dur": 90},
        {"ph": "X", "name": "sgemm_kernel", "cat": "kernel", "pid": 0, "tid": 7, "ts": 5,
         "dur": 70},
    ]
    s = prof.summarize(ev)
    assert s.basis == "device" and [o.name for o in s.ops] == ["sgemm_kernel"]


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("iters", ["0", "101"])
def test_profile_iters_out_of_range(bench_inproc, iters):
    res = bench_inproc("run", "-w", "spin", "--profile", "--profile-iters", iters)
    assert res.rc == 2 and len(res.err_lines) == 1
    assert "--profile-iters must be between 1 and 100" in res.stderr
    assert not Path("bench-runs").exists()


def test_profile_iters_needs_profile(bench_inproc):
    res = bench_inproc("run", "-w", "spin", "--profile-iters", "3")
    assert res.rc == 2 and "need --profile" in res.stderr and len(res.err_lines) == 1


def test_summarize_a_run_without_traces(bench_inproc):
    assert bench_inproc("run", "-w", "spin", "-p", "us=1", *FAST).rc == 0
    res = bench_inproc("profile", "summarize", "latest")
    assert res.rc == 2 and len(res.err_lines) == 1
    assert "has no profile traces" in res.stderr and "bench run --profile" in res.stderr


def test_trace_too_large_is_not_kept_and_its_size_reported(bench_inproc):
    res = bench_inproc("run", "-w", "spin", "-p", "us=1", *FAST, "--profile",
                       "--profile-max-mb", "0.0001", "--json")
    assert res.rc == 0, res.stderr
    entry = json.loads(res.stdout)["measurements"][0]["timing"]["profile"]
    assert "path" not in entry and entry["raw_bytes"] > 0.0001 * 2**20
    assert "MiB exceeds the limit of 0.0 MiB" in entry["error"]
    assert not list(Path("bench-runs").rglob("*.json.gz"))
    assert "bench: warning:" in res.stderr and "exceeds the limit" in res.stderr
    res = bench_inproc("profile", "summarize", "latest")
    assert res.rc == 2 and "exceeds the limit" in res.stderr and len(res.err_lines) == 1


def test_backend_whose_profiler_is_missing(bench_inproc, monkeypatch):
    from harness.backends.numpy import NumpyBackend

    monkeypatch.setattr(NumpyBackend, "profiler_missing",
                        lambda self: "numpy:cpu: its profiler needs pip install frobnicate")
    res = bench_inproc("run", "-w", "spin", "--profile")
    assert res.rc == 2 and len(res.err_lines) == 1
    assert "pip install frobnicate" in res.stderr
    assert not Path("bench-runs").exists()


# --- NVML ---------------------------------------------------------------------------------


class _FakeNvml:
    """pynvml's calls as used by NvmlSampler, with fixed readings (no GPU here)."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

    class NVMLError(Exception):
        pass

    def nvmlInit(self):
        return None

    def nvmlShutdown(self):
        return None

    def __init__(self, names=("Fake GPU",), uuids=()):
        self.names, self.uuids = list(names), list(uuids)

    def nvmlDeviceGetCount(self):
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, i):
        if not 0 <= i < len(self.names):
            raise self.NVMLError("Invalid Argument")
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if uuid not in self.uuids:
            raise self.NVMLError("Not Found")
        return self.uuids.index(uuid)

    def nvmlDeviceGetName(self, h):
        return self.names[h]

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("U", (), {"gpu": 80, "memory": 30})()

    def nvmlDeviceGetMemoryInfo(self, h):
        return type("M", (), {"used": 2 << 30})()

    def nvmlDeviceGetPowerUsage(self, h):
        return 250_000  # milliwatts

    def nvmlDeviceGetClockInfo(self, h, which):
        return 1980 if which == 1 else 2619


def test_nvml_metrics_and_energy_per_iteration(monkeypatch):
    import sys
    import time

    from harness.profiling import NvmlSampler

    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml())
    with NvmlSampler(0, period=0.01) as s:
        time.sleep(0.05)
    assert s.available and len(s.samples) >= 2
    m = s.metrics(median_s=0.002)
    assert m["gpu_power_w"] == 250.0 and m["gpu_util_pct"] == 80.0
    assert m["gpu_mem_used_bytes"] == 2 << 30 and m["gpu_sm_clock_mhz"] == 1980.0
    assert m["energy_per_iter_j"] == pytest.approx(250.0 * 0.002)  # power x time
    assert s.record().startswith("nvml: Fake GPU")


@pytest.mark.skipif(not _have("torch"), reason="torch is not installed")
def test_html_report_has_the_profile_summary(bench, workdir):
    data = _run(bench, "--plugin", str(PLUGINS / "hotspot.py"), "-w", "hotspot",
                "-b", "torch:cpu", "--profile-iters", "3", env={"OMP_NUM_THREADS": "1"})
    assert bench("report", "latest", "-o", "r.html").rc == 0
    page = (workdir / "r.html").read_text()
    section = page[page.index(f"Profiles, run {data['run_id'][:8]}"):]
    assert "hotspot[torch:cpu]" in section and "torch trace, 3 step(s)" in section
    rows = re.findall(r"<tr><td>([^<]+)</td>", section)
    assert rows[0] == "aten::mm"  # the hot spot tops the table
    assert "aten::add" in rows
    # the run folder moved: found under --run-dir; gone: the report says so and still renders
    trace = Path(data["measurements"][0]["timing"]["profile"]["path"])
    moved = workdir / "elsewhere"
    (moved / data["run_id"] / "traces").mkdir(parents=True)
    trace.rename(moved / data["run_id"] / "traces" / trace.name)
    assert bench("report", "latest", "-o", "r2.html", "--run-dir", str(moved)).rc == 0
    assert "aten::mm" in (workdir / "r2.html").read_text()
    assert bench("report", "latest", "-o", "r3.html").rc == 0
    assert "trace missing" in (workdir / "r3.html").read_text()


@pytest.mark.parametrize("visible,order,cuda_index,uuid,expect", [
    (None, None, 1, None, 1),  # alike GPUs: CUDA's order is NVML's
    ("2,3", None, 1, None, 3),  # CUDA device 1 is the second listed: physical GPU 3
    ("3,0", "PCI_BUS_ID", 0, None, 3),
    ("GPU-c,GPU-a", None, 0, None, 2),  # by UUID
    (None, None, 0, "GPU-b", 1),  # the framework's UUID wins
    ("0,1", None, 0, "d", 3),  # torch's UUIDs come without the GPU- prefix
])
def test_nvml_reads_the_gpu_cuda_uses(monkeypatch, visible, order, cuda_index, uuid, expect):
    import sys

    from harness.profiling import NvmlSampler

    fake = _FakeNvml(names=["H200"] * 4, uuids=["GPU-a", "GPU-b", "GPU-c", "GPU-d"])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    for var, value in (("CUDA_VISIBLE_DEVICES", visible), ("CUDA_DEVICE_ORDER", order)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    s = NvmlSampler(cuda_index, uuid=uuid)
    assert s.available, s.reason
    assert s.handle == expect


@pytest.mark.parametrize("visible,order,names,fragment", [
    ("0", None, ["H200"] * 2, "lists no device 1"),
    ("0,oops", None, ["H200"] * 2, "neither an index nor"),
    (None, None, ["H200", "A100"], "CUDA_DEVICE_ORDER=PCI_BUS_ID"),
    ("GPU-a,GPU-zz", None, ["H200"] * 2, "Not Found"),
])
def test_nvml_refuses_to_guess_the_gpu(monkeypatch, visible, order, names, fragment):
    import sys

    from harness.profiling import NvmlSampler

    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml(names=names, uuids=["GPU-a", "GPU-b"]))
    for var, value in (("CUDA_VISIBLE_DEVICES", visible), ("CUDA_DEVICE_ORDER", order)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    s = NvmlSampler(1)
    assert not s.available
    assert s.reason.startswith("cannot read the counters of CUDA device 1: ")
    assert fragment in s.reason


def test_nvml_without_a_gpu_says_so(monkeypatch):
    import sys

    from harness.profiling import NvmlSampler, gpu_counters

    fake = _FakeNvml()

    def no_gpu():
        raise fake.NVMLError("NVML Shared Library Not Found")

    fake.nvmlInit = no_gpu
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    s = NvmlSampler(0)
    assert not s.available and "no NVIDIA GPU" in s.reason
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert "pip install 'accelbench[nvml]'" in NvmlSampler(0).reason
    from harness.backends.base import parse_backend

    cpu = parse_backend("torch:cpu")
    none = gpu_counters(cpu)
    assert none.metrics(1.0) == {} and none.record() == "none: torch:cpu runs on no NVIDIA GPU"


def test_diff_of_runs_without_a_common_profiled_case(bench_inproc):
    for us in ("1", "2"):
        assert bench_inproc("run", "-w", "spin", "-p", f"us={us}", *FAST, "--profile").rc == 0
    res = bench_inproc("profile", "diff", "latest~1", "latest")
    assert res.rc == 2 and len(res.err_lines) == 1
    assert "share no profiled case" in res.stderr
    same = bench_inproc("profile", "diff", "latest", "latest", "--format", "json")
    assert same.rc == 0, same.stderr
    [d] = json.loads(same.stdout)
    assert all(o["delta_s"] == 0 for o in d["ops"])  # a run against itself changes nothing


def test_rounds_profile_the_last_round_only(bench_inproc):
    res = bench_inproc("run", "-w", "spin", "-p", "us=1", *FAST, "--rounds", "2", "--profile",
                       "--json")
    assert res.rc == 0, res.stderr
    m = json.loads(res.stdout)["measurements"][0]
    assert m["timing"]["rounds"] == 2 and Path(m["timing"]["profile"]["path"]).is_file()
    assert len(list(Path("bench-runs").rglob("*.json.gz"))) == 1


def test_merged_rounds_keep_the_gpu_metrics():
    from harness.config import PlannedCase
    from harness.measurement import Measurement
    from harness.runner import merge_rounds
    from harness.stats import summarize
    from harness.timing import TimingPolicy
    from harness.workload import make_case

    case = make_case("spin", None, {"us": "1"}, "test")
    rec = {"case_key": case.key, "workload": "spin", "backend": "numpy:cpu",
           "params": case.param_dict, "status": "ok", "info": {},
           "started_at": "t", "device_samples": None,
           "timing": {"stop_reason": "ci_target"}}
    first = {**rec, "samples": [1e-6] * 10, "metrics": {},
             "summary": summarize([1e-6] * 10).to_dict()}
    last = {**rec, "samples": [3e-6] * 10, "summary": summarize([3e-6] * 10).to_dict(),
            "metrics": {"gpu_power_w": 100.0, "gpu_util_pct": 50.0,
                        "energy_per_iter_j": 3e-4}}
    m = merge_rounds([Measurement.from_dict(first), Measurement.from_dict(last)],
                     PlannedCase(case, TimingPolicy(rounds=2))).to_dict()
    assert m["metrics"]["gpu_util_pct"] == 50.0
    median = m["summary"]["median"]
    assert m["metrics"]["energy_per_iter_j"] == pytest.approx(100.0 * median)


@pytest.mark.parametrize("width", [60, 200])
def test_summarize_keeps_case_keys_whole(width):
    """Rich wraps a table's title at the table's width (40-odd columns here), splitting a case
    key mid-word: the key gets a line of its own, whole; the rest wraps only between words."""
    import os

    from rich.console import Console

    from harness.cli.profile import print_diffs, print_summaries

    keys = ["gemm[onnxruntime:cpu](dtype=float32,k=64,m=64,n=64)",
            "transformer-infer[torch:cpu](batch=8,d_model=256,heads=4,layers=2,seq=64)"]
    op = prof.OpStat("MatMul", "Node", 3.7e-5, 4, 0.685, 9.25e-6)
    summaries = [prof.ProfileSummary(k, "onnxruntime", "host", 4, 1.35e-5, [op]) for k in keys]
    for render, items, words in (
            (print_summaries, summaries, ("onnxruntime", "trace,", "step(s)", "self", "time")),
            (print_diffs, [prof.diff(s, s) for s in summaries], ("step", "(host", "per"))):
        with open(os.devnull, "w") as sink:
            out = Console(width=width, record=True, file=sink)
            render(out, items)
        text = out.export_text()
        lines = [ln.rstrip() for ln in text.splitlines()]
        for key in keys:
            assert key in lines, text
        tokens = set(text.replace("│", " ").split())
        assert set(words) <= tokens, text
        assert not any(ln.startswith(("=", ",")) or ln.endswith(("[", "=")) for ln in lines)
