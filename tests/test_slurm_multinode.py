"""A two-node Slurm on one machine: each node a network namespace with its own slurmd, the
controller on the bridge between them (cluster/local-slurm with BENCH_SLURM_NODES=2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL_SLURM = ROOT / "cluster" / "local-slurm"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("slurmd") is None or shutil.which("ip") is None
    or shutil.which("nsenter") is None,
    reason="needs root, Slurm (slurmctld slurmd slurm-client munge), iproute2 and nsenter")


@pytest.fixture(scope="module")
def two_nodes():
    folder = Path(tempfile.mkdtemp(prefix="bench-slurm2-"))
    env = {**os.environ, "BENCH_SLURM_NODES": "2", "BENCH_SLURMCTLD_PORT": "46917",
           "BENCH_SLURMD_PORT": "46918"}
    out = subprocess.run([str(LOCAL_SLURM), "start", str(folder)], env=env,
                         capture_output=True, text=True, timeout=120)
    try:
        assert out.returncode == 0, out.stderr
        yield {"SLURM_CONF": str(folder / "etc" / "slurm.conf"), "folder": folder}
    finally:
        subprocess.run([str(LOCAL_SLURM), "stop", str(folder)], timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "bnode" not in leftover  # the test removes the hosts it made


def test_a_two_node_job_runs_on_both_nodes(two_nodes):
    env = {**os.environ, "SLURM_CONF": two_nodes["SLURM_CONF"]}
    out_file = two_nodes["folder"] / "two.out"
    script = ('srun -N 2 -n 2 sh -c '
              '"echo \\$SLURMD_NODENAME \\$(ip -4 -o addr show bench0 | awk \'{print \\$4}\')"')
    job = subprocess.run(["sbatch", "--parsable", "-N", "2", "-n", "2", "-o", str(out_file),
                          "--wrap", script], env=env, capture_output=True, text=True,
                         timeout=30)
    assert job.returncode == 0, job.stderr
    job_id = job.stdout.strip()
    deadline = time.monotonic() + 60
    while True:
        state = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env,
                               capture_output=True, text=True, timeout=20).stdout
        if "JobState=COMPLETED" in state:
            break
        assert "JobState=FAILED" not in state and time.monotonic() < deadline, state
        time.sleep(0.3)
    lines = sorted(out_file.read_text().split("\n")[:2])
    names = [ln.split()[0] for ln in lines]
    addrs = [ln.split()[1] for ln in lines]
    assert names == ["bnode1", "bnode2"]
    assert len(set(addrs)) == 2 and all(a.startswith("10.234.") for a in addrs)


def test_bench_submit_across_two_nodes(two_nodes, bench, workdir):
    """gloo and gRPC p2p between ranks on two nodes: rank 0's control channel and the gRPC
    endpoints must use the nodes' own addresses, not loopback."""
    site = workdir / "two.toml"
    site.write_text('description = "two namespace nodes"\npartitions = ["debug"]\n'
                    'launcher = "srun"\nmpi = "none"\n')  # no GLOO_SOCKET_IFNAME: not needed
    env = {"SLURM_CONF": two_nodes["SLURM_CONF"]}
    r = bench("submit", "-w", "p2p", "-b", "gloo,grpc", "-p", "size=64KiB,1MiB", "--nodes", "2",
              "--ntasks-per-node", "1", "--site", str(site), "--budget", "0.3", "--json",
              env=env)
    assert r.rc == 0, r.stderr
    (job,) = [j["job_id"] for j in r.json()]
    deadline = time.monotonic() + 120
    while True:
        rows = bench("jobs", "--json", env=env).json()
        state = rows[0]["state"]
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)
    assert state == "COMPLETED", rows[0]
    assert bench("collect", env=env).stdout.strip() == "1 added"
    shown = bench("show", "latest", "--json").json()
    assert shown["tags"]["slurm_job"] == job
    assert shown["env"]["cluster"]["world_size"] == 2
    ms = shown["measurements"]
    assert sorted({m["backend"] for m in ms}) == ["gloo:cpu", "grpc:cpu"]
    assert all(m["status"] == "ok" and m["metrics"]["ranks"] == 2 for m in ms)
