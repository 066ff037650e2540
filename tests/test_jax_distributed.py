"""Multi-process JAX collectives with real processes: `bench run -b jax:cpu -n 2 --launcher
local` joins the ranks' JAX with jax.distributed (Gloo's CPU collectives), checks every
participant's output, and counts every process's devices as participants.

Every `bench` here runs with a timeout; a hung job fails the test instead of hanging it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import time

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax is not installed: pip install 'accelbench[jax]'")

FAST = ("--budget", "0.2", "--target-ci", "0.05")
FACTOR = {"allreduce": lambda n: 2 * (n - 1) / n, "allgather": lambda n: (n - 1) / n}
ONE_DEVICE = {"XLA_FLAGS": ""}
TWO_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def _check(data: dict, processes: int, per_process: int) -> None:
    n = processes * per_process
    assert data["status"] == "complete"
    assert len(data["measurements"]) == 4  # allreduce, allgather x 4 KiB, 1 MiB
    for m in data["measurements"]:
        assert m["status"] == "ok", m["error"]
        x, info, t = m["metrics"], m["info"], m["timing"]
        assert x["wrong"] == 0 and info["wrong"] == 0  # the check ran and passed
        assert info["processes"] == processes and info["local_devices"] == per_process
        assert info["devices"] == n and x["ranks"] == n  # participants: every process's devices
        assert x["world_size"] == processes and t["ranks"] == processes
        assert len(t["rank_medians_s"]) == processes  # the figure is the max across processes
        assert x["busbw_gbps"] == pytest.approx(x["algbw_gbps"] * FACTOR[m["workload"]](n))
        assert x["algbw_gbps"] == pytest.approx(x["size_bytes"] / x["time_s"] / 1e9)


def _run(bench, env: dict[str, str], launcher: str = "local"):
    return bench("run", "-w", "allreduce,allgather", "-b", "jax:cpu", "-p", "size=4KiB,1MiB",
                 *FAST, "-n", "2", "--launcher", launcher, "--json", "-q", timeout=120, env=env)


def test_two_processes(bench, workdir):
    res = _run(bench, ONE_DEVICE)
    assert res.rc == 0, res.stderr
    data = res.json()  # stdout is the JSON document alone: Gloo's banner went to stderr
    _check(data, processes=2, per_process=1)
    header = json.loads((workdir / data["run_file"]).read_text().splitlines()[0])
    (jax,) = header["env"]["backends"]
    assert jax["jax_processes"] == 2 and jax["jax_devices"] == 2
    assert jax["cpu_collectives"] == "gloo" and header["world_size"] == 2


def test_two_processes_two_devices_each(bench):
    res = _run(bench, TWO_DEVICES)
    assert res.rc == 0, res.stderr
    _check(res.json(), processes=2, per_process=2)
    # participant 3 lives in process 1: its wrong element fails the case, and says where
    res = bench("run", "-w", "allreduce", "-b", "jax:cpu", "-p", "size=4KiB", *FAST, "-n", "2",
                "--launcher", "local", "--json", "-q", timeout=120,
                env={**TWO_DEVICES, "BENCH_FAULT": "corrupt:3"})
    assert res.rc == 1, res.stderr
    (m,) = res.json()["measurements"]
    assert m["status"] == "failed"
    assert "rank 1: check failed: allreduce: participant 3: 1 of 1024 elements wrong" in m["error"]


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (openmpi-bin)")
def test_under_mpirun(bench):
    res = _run(bench, ONE_DEVICE, "mpirun")
    assert res.rc == 0, res.stderr
    text = res.stdout  # a launcher may add lines of its own around the document
    _check(json.loads(text[text.index("{\n"):text.rindex("}") + 1]), processes=2, per_process=1)


def test_coordinator_port_taken(bench, workdir):
    with socket.socket(socket.AF_INET6) as busy:
        busy.bind(("::", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = bench("run", "-w", "allreduce", "-b", "jax:cpu", "-n", "2", "--launcher", "local",
                    "--timeout", "10", timeout=60,
                    env={**ONE_DEVICE, "BENCH_JAX_COORDINATOR": f"127.0.0.1:{port}"})
    assert res.rc == 2, res.stderr
    assert res.err_lines == [
        f"bench: error: jax: rank 0: jax.distributed's coordinator cannot listen on port {port} "
        "on rank 0's host (Address already in use); set BENCH_JAX_COORDINATOR=host:port to a "
        "free port"]
    assert not (workdir / "bench-runs").exists()
    res = bench("run", "-w", "allreduce", "-b", "jax:cpu", "-n", "2", "--launcher", "local",
                timeout=60, env={**ONE_DEVICE, "BENCH_JAX_COORDINATOR": "rank0"})
    assert res.rc == 2 and res.err_lines == [
        "bench: error: jax: rank 0: BENCH_JAX_COORDINATOR='rank0' is not host:port"]


def test_coordinator_unreachable_ends_with_the_watchdog(bench, workdir):
    # 192.0.2.1 (TEST-NET-1) routes nowhere: no process reaches the coordinator, none hangs
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    res = bench("run", "-w", "allreduce", "-b", "jax:cpu", "-n", "2", "--launcher", "local",
                "--timeout", "10", timeout=90,  # (a loaded machine takes seconds to start)
                env={**ONE_DEVICE, "BENCH_JAX_COORDINATOR": f"192.0.2.1:{port}"})
    assert res.rc == 3, res.stderr
    assert time.monotonic() - start < 60
    assert (f"bench: error: no rank made progress: jax.distributed.initialize (coordinator "
            f"192.0.2.1:{port}, 2 processes) made no progress for 10 s (--timeout 10)"
            in res.stderr)
    assert not (workdir / "bench-runs").exists()
