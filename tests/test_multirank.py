"""Multi-rank runs with real processes: MPI ranks under mpirun, Gloo and gRPC ranks started by the
local launcher, a rank killed or stopped with a real signal, a corrupted result, bad input.

Every `bench` here runs with a timeout; a hung job fails the test instead of hanging it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from results.runfile import PART

HAVE_MPI = shutil.which("mpirun") is not None and importlib.util.find_spec("mpi4py") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_GRPC = (importlib.util.find_spec("grpc") is not None
             and importlib.util.find_spec("grpc_tools") is not None)
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="needs mpirun and mpi4py "
                               "(apt-get install openmpi-bin; pip install 'accelbench[mpi]')")
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="gloo needs torch: "
                                 "pip install 'accelbench[torch]'")
needs_grpc = pytest.mark.skipif(not HAVE_GRPC, reason="needs grpcio and grpcio-tools: "
                                "pip install 'accelbench[grpc]'")
FAST = ("--budget", "0.2", "--target-ci", "0.05")
COLLECTIVES = ["allreduce", "allgather", "reduce-scatter", "broadcast", "reduce", "alltoall",
               "p2p"]
FACTOR = {"allreduce": lambda n: 2 * (n - 1) / n, "allgather": lambda n: (n - 1) / n,
          "reduce-scatter": lambda n: (n - 1) / n, "alltoall": lambda n: (n - 1) / n,
          "broadcast": lambda n: 1.0, "reduce": lambda n: 1.0, "p2p": lambda n: 1.0}
SLOW_RANK_PLUGIN = '''
import os
import time
from harness import Param, Work, workload

def spin_for(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass

@workload("rankspin", params={"us": Param("float", 50.0, "microseconds on rank 0")},
          work=lambda p: Work(items=1))
def rankspin(backend, us):
    """Rank r spins (1 + 3r) x us: the slowest rank sets the figure."""
    seconds = us * 1e-6 * (1 + 3 * int(os.environ.get("RANK", "0")))
    return lambda: spin_for(seconds)
'''


def _json_out(stdout: str) -> dict:
    """The JSON document rank 0 printed (a launcher may add lines of its own around it)."""
    start = stdout.index("{\n")
    return json.loads(stdout[start:stdout.rindex("}") + 1])


def _check_sweep(data: dict, n: int) -> None:
    for m in data["measurements"]:
        assert m["status"] == "ok", m["error"]
        x, t = m["metrics"], m["timing"]
        assert x["wrong"] == 0 and x["ranks"] == n == t["ranks"]
        assert x["busbw_gbps"] == pytest.approx(x["algbw_gbps"] * FACTOR[m["workload"]](n))
        assert len(t["rank_medians_s"]) == n
        # The figure of each sample is the max across ranks, so its median is at least every
        # rank's own median, and the per-sample minimum's median is at most every rank's.
        assert m["summary"]["median"] >= max(t["rank_medians_s"]) * (1 - 1e-9)
        assert t["rank_min_median_s"] <= min(t["rank_medians_s"]) * (1 + 1e-9)


@pytest.fixture(scope="module")
def mpi_sweep(tmp_path_factory, bench_at):
    if not HAVE_MPI:
        pytest.skip("needs mpirun and mpi4py")
    cwd = tmp_path_factory.mktemp("mpi")
    res = bench_at(cwd, "run", "-w", ",".join(COLLECTIVES), "-b", "mpi",
                   "-p", "size=8B..32KiB*64", *FAST, "--launcher", "mpirun", "-n", "2",
                   "--json", "-q", timeout=180)
    assert res.rc == 0, res.stderr
    return cwd, _json_out(res.stdout)


@needs_mpi
def test_mpi_two_ranks_every_collective_checked(mpi_sweep):
    _, data = mpi_sweep
    assert data["status"] == "complete"
    got = {(m["workload"], m["params"]["size"]) for m in data["measurements"]}
    assert got == {(w, s) for w in COLLECTIVES for s in (8, 512, 32768)}
    _check_sweep(data, 2)


@needs_mpi
def test_mpi_run_records_launcher_and_mpi(mpi_sweep, bench_at):
    cwd, data = mpi_sweep
    run_file = Path(cwd, data["run_file"])
    header = json.loads(run_file.read_text().splitlines()[0])
    assert header["launcher"] == "mpirun" and header["world_size"] == 2
    cluster = header["env"]["cluster"]
    assert cluster["world_size"] == 2 and "Open MPI" in (cluster["mpi_implementation"] or "")
    assert header["env"]["env"]["OMP_NUM_THREADS"]  # transport/threads env is recorded
    mpi = next(b for b in header["env"]["backends"] if b["backend"] == "mpi:cpu")
    assert mpi["world_size"] == 2 and "cuda_aware" in mpi and mpi["mpi_library"]


@needs_mpi
def test_export_nccl_tests_format(mpi_sweep, bench_at):
    cwd, data = mpi_sweep
    res = bench_at(cwd, "export", data["run_id"], "--format", "nccl-tests", "-o", "out.txt")
    assert res.rc == 0, res.stderr
    text = (cwd / "out.txt").read_text()
    blocks = [ln for ln in text.splitlines() if ln.startswith("# allreduce on mpi:cpu")]
    assert len(blocks) == 1 and "nranks 2" in blocks[0]
    rows = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(rows) == 3 * len(COLLECTIVES) and all(len(r) == 13 for r in rows)
    allreduce = next(m for m in data["measurements"] if m["workload"] == "allreduce"
                     and m["params"]["size"] == 32768)
    row = next(r for r in rows if r[0] == "32768" and r[3] == "sum" and r[4] == "-1")
    assert float(row[7]) == pytest.approx(allreduce["metrics"]["busbw_gbps"], abs=0.006)
    res = bench_at(cwd, "show", data["run_id"])
    assert "busbw (GB/s)" in res.stdout and "#wrong" in res.stdout


@needs_mpi
def test_mpi_four_ranks_oversubscribed(workdir, bench):
    res = bench("run", "-w", "allreduce,alltoall", "-b", "mpi", "-p", "size=4KiB", *FAST,
                "--launcher", "mpirun", "-n", "4", "--json", "-q", timeout=180)
    assert res.rc == 0, res.stderr
    _check_sweep(_json_out(res.stdout), 4)


def test_max_across_ranks_is_the_slowest_rank(workdir, bench):
    plugin = workdir / "rankspin.py"
    plugin.write_text(SLOW_RANK_PLUGIN)
    res = bench("run", "--plugin", str(plugin), "-w", "rankspin", "-p", "us=100", *FAST,
                "-n", "2", "--json", "-q", timeout=120)
    assert res.rc == 0, res.stderr
    (m,) = _json_out(res.stdout)["measurements"]
    fast, slow = m["timing"]["rank_medians_s"]
    assert slow > fast  # rank 1 spins 4x as long as rank 0 (how much: a machine's figure)
    assert 100e-6 * 4 * 0.5 < slow < 100e-6 * 4 * 20  # an order of magnitude around 400 us
    # The figure is the max across ranks per sample (exactly: tests/test_engine_core.py), so
    # it is at least the slow rank's median; the per-sample min at most the fast rank's.
    assert m["summary"]["median"] >= slow * (1 - 1e-9)
    assert m["timing"]["rank_min_median_s"] <= fast * (1 + 1e-9)
    assert m["timing"]["rank_min_median_s"] <= m["timing"]["rank_mean_median_s"]
    assert m["metrics"]["world_size"] == 2


@needs_torch
def test_gloo_two_ranks(workdir, bench):
    res = bench("run", "-w", "allreduce,allgather,reduce-scatter,broadcast,alltoall,p2p",
                "-b", "gloo", "-p", "size=64B,64KiB", *FAST, "-n", "2", "--json", "-q",
                timeout=180)
    assert res.rc == 0, res.stderr
    data = _json_out(res.stdout)
    assert len(data["measurements"]) == 12
    _check_sweep(data, 2)


@needs_grpc
def test_grpc_ring_three_ranks(workdir, bench):
    # 3 ranks: segments of unequal size (1000 floats do not split in 3) and a real ring
    res = bench("run", "-w", "allreduce,allgather,reduce-scatter", "-b", "grpc",
                "-p", "size=4000B,1MiB", "-p", "dtype=float32", *FAST, "-n", "3",
                "--json", "-q", timeout=180)
    assert res.rc == 0, res.stderr
    data = _json_out(res.stdout)
    _check_sweep(data, 3)
    ag = next(m for m in data["measurements"] if m["workload"] == "allgather"
              and m["params"]["size"] == 4000)
    assert ag["metrics"]["size_bytes"] == 3996  # rounded down to whole elements per rank


@needs_grpc
def test_grpc_prod_and_max_are_exact(workdir, bench):
    res = bench("run", "-w", "allreduce", "-b", "grpc", "-p", "op=prod,max",
                "-p", "dtype=int64,float64", "-p", "size=2KiB", *FAST, "-n", "2", "--json",
                "-q", timeout=120)
    assert res.rc == 0, res.stderr
    _check_sweep(_json_out(res.stdout), 2)


# ---- faults


def _finished_cases(cwd: Path) -> tuple[list[dict], str]:
    """The measurements of the only run file in bench-runs/, and that file's name."""
    (path,) = list((cwd / "bench-runs").iterdir())
    lines = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return [r for r in lines if r.get("kind") == "measurement"], path.name


@pytest.mark.parametrize("launcher,backend", [
    pytest.param("mpirun", "mpi", marks=needs_mpi),
    pytest.param("local", "gloo", marks=needs_torch),
], ids=["mpirun-mpi", "local-gloo"])
def test_killed_rank_ends_the_job_naming_it(workdir, bench, launcher, backend):
    t0 = time.monotonic()
    res = bench("run", "-w", "allreduce", "-b", backend, "-p", "size=8B,64B,512B", *FAST,
                "--launcher", launcher, "-n", "2", "--timeout", "10", "-q", timeout=120,
                env={"BENCH_FAULT": "kill:1:1"})  # rank 1 sends itself SIGKILL at case 2
    # rank 0's verdict, under mpirun too (which itself exits 137: its first failed rank's status)
    assert res.rc == 3, res.stderr
    assert time.monotonic() - t0 < 60
    assert "rank 1 died" in res.stderr, res.stderr
    # rank 0 said it: mpirun's framed notices repeating it are held back
    assert "Primary job" not in res.stderr and "mpirun noticed" not in res.stderr, res.stderr
    done, name = _finished_cases(workdir)
    assert [m["params"]["size"] for m in done] == [8] and done[0]["status"] == "ok"
    assert not name.endswith(PART)  # rank 0 closed the run file: partial, with its end record
    runs = bench("runs", "--json").json()
    assert runs[0]["status"] == "partial" and runs[0]["n_measurements"] == 1


@needs_torch
@pytest.mark.parametrize("fault", ["kill:1:0", "hang:1:0"])
def test_a_rank_lost_at_the_first_case_leaves_a_partial_run_killed_or_hung(workdir, bench,
                                                                           fault):
    res = bench("run", "-w", "allreduce", "-b", "gloo", "-p", "size=8B,64B", *FAST, "-n", "2",
                "--timeout", "5", "-q", timeout=120, env={"BENCH_FAULT": fault})
    assert res.rc == 3, res.stderr
    assert "during case allreduce" in res.stderr or "case allreduce" in res.stderr, res.stderr
    runs = bench("runs", "--json").json()
    assert [(r["status"], r["n_measurements"]) for r in runs] == [("partial", 0)]


@needs_torch
def test_under_torchrun_a_dead_rank_is_one_line_and_a_killed_rank_0_its_signal(workdir, bench):
    args = ("run", "-w", "allreduce", "-b", "gloo", "-p", "size=8B,64B", *FAST,
            "--launcher", "torchrun", "-n", "2", "--timeout", "10", "-q")
    res = bench(*args, timeout=120, env={"BENCH_FAULT": "kill:1:1"})
    assert res.rc == 3, res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()], res.stderr  # no log lines
    assert "rank 1 died" in res.stderr
    res = bench(*args, timeout=120, env={"BENCH_FAULT": "kill:0:0"})
    assert res.rc == 128 + 9, res.stderr  # rank 0 cannot say: torchrun's report says it
    assert "Signal 9 (SIGKILL) received" in res.stderr, res.stderr


@needs_mpi
def test_mpiruns_notices_are_shown_when_rank_0_cannot_report(workdir, bench):
    res = bench("run", "-w", "allreduce", "-b", "mpi", "-p", "size=8B", *FAST,
                "--launcher", "mpirun", "-n", "2", "--timeout", "10", "-q", timeout=120,
                env={"BENCH_FAULT": "kill:0:0"})  # rank 0 itself is killed: mpirun says so
    assert res.rc == 128 + 9, res.stderr
    assert "mpirun noticed that process rank 0" in res.stderr, res.stderr


@needs_torch
def test_hung_rank_times_out_naming_it(workdir, bench):
    t0 = time.monotonic()
    res = bench("run", "-w", "allreduce", "-b", "gloo", "-p", "size=8B,64B", *FAST, "-n", "2",
                "--timeout", "3", "-q", timeout=120,
                env={"BENCH_FAULT": "hang:1:1"})  # rank 1 stops itself (SIGSTOP) at case 2
    elapsed = time.monotonic() - t0
    assert res.rc == 3, res.stderr
    assert "rank(s) 1 stopped responding" in res.stderr, res.stderr
    assert "--timeout 3" in res.stderr
    assert elapsed < 40
    done, _ = _finished_cases(workdir)
    assert len(done) == 1


def test_a_slow_start_is_not_cut_short_by_a_short_timeout(workdir, bench):
    # Loading backends takes seconds on a loaded machine: --timeout bounds a rank stuck waiting
    # on others, not start-up (before: "rank 1 did not arrive at the start of the run within
    # 2 s", exit 3).
    res = bench("run", "-w", "spin", "-p", "us=10", *FAST, "-n", "2", "--timeout", "2", "-q",
                timeout=120, env={"BENCH_FAULT": "slowstart:1:5"})
    assert res.rc == 0, res.stderr
    done, name = _finished_cases(workdir)
    assert len(done) == 1 and not name.endswith(PART)


def test_a_rank_that_does_not_start_in_time_is_one_line_and_exit_3(workdir, bench):
    res = bench("run", "-w", "spin", "-p", "us=10", *FAST, "-n", "2", "--timeout", "2", "-q",
                timeout=120, env={"BENCH_FAULT": "slowstart:1:30", "BENCH_STARTUP_TIMEOUT": "3"})
    assert res.rc == 3, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "rank(s) 1 did not arrive at the start of the run within 3 s" in lines[0]
    assert "BENCH_STARTUP_TIMEOUT" in lines[0]


@needs_mpi
def test_check_catches_a_corrupted_result_on_one_rank(workdir, bench):
    res = bench("run", "-w", "allreduce,broadcast", "-b", "mpi", "-p", "size=1KiB", *FAST,
                "--launcher", "mpirun", "-n", "2", "--json", "-q", timeout=120,
                env={"BENCH_FAULT": "corrupt:1"})
    assert res.rc == 1, res.stderr
    data = _json_out(res.stdout)
    assert data["status"] == "failed"
    for m in data["measurements"]:
        assert m["status"] == "failed"
        assert m["error"].startswith("rank 1: check failed")
        assert "participant 1: 1 of 256 elements wrong" in m["error"]
        assert "rank 0" not in m["error"]


@needs_mpi
def test_no_check_skips_verification(workdir, bench):
    res = bench("run", "-w", "allreduce", "-b", "mpi", "-p", "size=1KiB", *FAST,
                "--launcher", "mpirun", "-n", "2", "--no-check", "--json", "-q", timeout=120,
                env={"BENCH_FAULT": "corrupt:1"})
    assert res.rc == 0, res.stderr
    (m,) = _json_out(res.stdout)["measurements"]
    assert "wrong" not in m["metrics"]  # unchecked: the table says N/A, not 0


# ---- scaling


@needs_torch
def test_scaling_one_and_two_ranks(workdir, bench):
    res = bench("run", "-w", "dp-train", "-b", "gloo", "-p", "batch=8", "-p", "width=4",
                "--budget", "0.5", "--ranks", "1,2", "-q", timeout=240)
    assert res.rc == 0, res.stderr
    assert "scaling efficiency" in res.stdout
    runs = bench("runs", "--json").json()
    assert len(runs) == 2 and all(r["status"] == "complete" for r in runs)
    res = bench("report", "scaling", runs[1]["run_id"], runs[0]["run_id"], "-o", "s.json")
    assert res.rc == 0, res.stderr
    rows = json.loads((workdir / "s.json").read_text())
    assert [r["ranks"] for r in rows] == [1, 2]
    assert rows[0]["efficiency"] == pytest.approx(1.0)
    assert rows[1]["efficiency"] == pytest.approx(
        rows[1]["throughput"] / (2 * rows[0]["throughput"]))
    assert 0 <= rows[1]["comm_share"] <= 1
    show = bench("show", runs[0]["run_id"], "--json").json()
    (m,) = show["measurements"]
    assert m["metrics"]["world_size"] == 2 and m["metrics"]["global_batch"] == 16
    # stored with the run: efficiency against the 1-rank run of the same sweep
    assert m["metrics"]["scaling_efficiency"] == pytest.approx(rows[1]["efficiency"], rel=1e-6)
    res = bench("report", "scaling", runs[1]["run_id"], runs[0]["run_id"], "-o", "s.png")
    assert res.rc == 0 and (workdir / "s.png").read_bytes()[:4] == b"\x89PNG"


# ---- bad input: one line, exit 2, nothing launched


@pytest.mark.parametrize("args,match", [
    (("-w", "allreduce", "-b", "mpi", "-n", "2"), "needs MPI ranks: use --launcher mpirun"),
    (("-w", "allreduce", "-b", "gloo", "-p", "size=10", "-n", "2"),
     "not a whole number of float32 elements"),
    (("-w", "broadcast", "-b", "grpc", "-n", "2"),
     "workload 'broadcast' does not run on 'grpc:cpu'"),
    (("-w", "allreduce", "-b", "gloo", "-p", "size=8B..1KiB*1", "-n", "2"), "never ends"),
    (("-w", "allreduce", "-b", "gloo", "--ranks", "1,x"), "not a list of positive"),
    (("-w", "allreduce", "-b", "gloo", "--ranks", "1,2", "-n", "2"), "either -n N or --ranks"),
])
def test_bad_multirank_input(bench, args, match):
    res = bench("run", *args, timeout=60)
    assert res.rc == 2, res.stderr
    assert len(res.err_lines) == 1 and match in res.stderr, res.stderr
    assert not (Path.cwd() / "bench-runs").exists()


@needs_torch
def test_nccl_without_gpus_is_one_line(bench):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: nccl would run")
    res = bench("run", "-w", "allreduce", "-b", "nccl", "-n", "2", timeout=60)
    assert res.rc == 2 and len(res.err_lines) == 1
    assert "nccl: no CUDA device is visible" in res.stderr and "gloo" in res.stderr


def test_missing_launcher_names_its_package(bench, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    res = bench("run", "-w", "allreduce", "-b", "mpi", "--launcher", "mpirun", "-n", "2",
                timeout=60, env={"PATH": str(bin_dir)})
    assert res.rc == 2, res.stderr
    assert "mpirun is not installed" in res.stderr and "openmpi-bin" in res.stderr


@needs_mpi
def test_mismatched_ranks(workdir):
    import subprocess

    proc = subprocess.run(
        ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", sys.executable, "-m",
         "harness", "run", "-w", "allreduce", "-b", "mpi", "-n", "3", "-q"],
        cwd=workdir, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "3 rank(s) were asked for but the launcher started 2" in proc.stderr
    assert not (workdir / "bench-runs").exists()


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed: pip install 'accelbench[jax]'")
def test_jax_host_devices(workdir, bench):
    res = bench("run", "-w", "allreduce,allgather,reduce-scatter,alltoall", "-b", "jax:cpu",
                "-p", "size=4KiB", *FAST, "--json", "-q", timeout=120,
                env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert res.rc == 0, res.stderr
    data = _json_out(res.stdout)
    for m in data["measurements"]:  # one process, four devices: four participants
        assert m["status"] == "ok", m["error"]
        assert m["metrics"]["ranks"] == 4 and m["metrics"]["wrong"] == 0
        assert m["metrics"]["busbw_gbps"] == pytest.approx(
            m["metrics"]["algbw_gbps"] * FACTOR[m["workload"]](4))
    res = bench("run", "-w", "allreduce", "-b", "jax:cpu", "-p", "op=prod", timeout=60)
    assert res.rc == 2 and "backend 'jax' has no prod reduction" in res.stderr


@needs_torch
def test_torchrun_launcher(workdir, bench):
    res = bench("run", "-w", "allreduce", "-b", "gloo", "-p", "size=1KiB", *FAST,
                "--launcher", "torchrun", "-n", "2", "--json", "-q", timeout=120)
    assert res.rc == 0, res.stderr
    data = _json_out(res.stdout)
    _check_sweep(data, 2)
    header = json.loads(Path(workdir, data["run_file"]).read_text().splitlines()[0])
    assert header["launcher"] == "torchrun" and header["world_size"] == 2


@needs_mpi
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="binding two ranks needs 2 CPUs")
def test_each_ranks_cpu_binding_is_recorded(workdir, bench):
    def binding(**env: str) -> list[str]:
        res = bench("run", "-w", "allreduce", "-b", "mpi", "-p", "size=8B", *FAST,
                    "--launcher", "mpirun", "-n", "2", "-q", "--json", timeout=120, env=env)
        assert res.rc == 0, res.stderr
        shown = bench("show", res.json()["run_id"], "--json").json()
        return shown["env"]["cluster"]["cpu_binding"]

    unbound = binding()  # bench's default under mpirun: no binding, every CPU for each rank
    assert len(unbound) == 2 and unbound[0] == unbound[1]
    bound = binding(OMPI_MCA_hwloc_base_binding_policy="core")  # Open MPI's own default
    assert len(bound) == 2 and bound[0] != bound[1] and all("-" not in b for b in bound)
