"""Two hosts on one machine: network namespaces joined by a veth pair whose link is shaped with
tc tbf to a known rate. Collectives between ranks in the two namespaces must measure that rate,
and `bench fabric-model fit` must recover it as its bandwidth term.

The truth: tbf at RATE on each end of a veth with MTU 9000; TCP payload is 8948 of every 9014
bytes on the wire, so the goodput limit is 0.993 x RATE."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

RATE_MBIT = 200
RATE_BYTES = RATE_MBIT * 1e6 / 8
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None,
    reason="network namespaces need root and iproute2 (ip, tc)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def hosts():
    tag = f"{os.getpid() % 100000}"
    ns = [f"bn{tag}a", f"bn{tag}b"]
    veth = [f"bv{tag}a", f"bv{tag}b"]
    subnet = f"10.231.{os.getpid() % 250}"
    addrs = [f"{subnet}.1", f"{subnet}.2"]
    try:
        for n in ns:
            _ip("netns", "add", n)
        _ip("link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
        for n, v, a in zip(ns, veth, addrs, strict=True):
            _ip("link", "set", v, "netns", n)
            _ip("-n", n, "addr", "add", f"{a}/24", "dev", v)
            _ip("-n", n, "link", "set", v, "mtu", "9000", "up")
            _ip("-n", n, "link", "set", "lo", "up")
            subprocess.run(["tc", "-n", n, "qdisc", "add", "dev", v, "root", "tbf", "rate",
                            f"{RATE_MBIT}mbit", "burst", "128kb", "latency", "50ms"],
                           check=True, capture_output=True, timeout=30)
    except subprocess.CalledProcessError as exc:
        for n in ns:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        pytest.skip(f"cannot build test hosts here: {exc.stderr.decode().strip()}")
    try:
        yield {"ns": ns, "veth": veth, "addrs": addrs}
    finally:
        for n in ns:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=30)


def _pair(hosts, workdir, backend: str, *args: str, port: int, ifname: bool = True) -> dict:
    """Rank 1 in the second namespace, rank 0 (which writes the run) in the first; `ifname`:
    GLOO_SOCKET_IFNAME set by hand to each rank's veth."""
    bench = [sys.executable, "-m", "harness", "run", "-b", backend, *args, "--budget", "1",
             "-q"]
    common = {"BENCH_LAUNCHED": "local", "BENCH_WORLD_SIZE": "2", "WORLD_SIZE": "2",
              "LOCAL_WORLD_SIZE": "1", "LOCAL_RANK": "0", "BENCH_RANK_TIMEOUT": "60",
              "BENCH_CONTROL_ADDR": f"{hosts['addrs'][0]}:{port}", "BENCH_CONTROL_TOKEN": "t",
              "MASTER_ADDR": hosts["addrs"][0], "MASTER_PORT": str(port + 1)}

    def env(rank: int) -> list[str]:
        own = {**common, "RANK": str(rank), "BENCH_GRPC_HOST": hosts["addrs"][rank],
               **({"GLOO_SOCKET_IFNAME": hosts["veth"][rank]} if ifname else {})}
        return ["env", "-u", "GLOO_SOCKET_IFNAME", *(f"{k}={v}" for k, v in own.items())]

    peer = subprocess.Popen(["ip", "netns", "exec", hosts["ns"][1], *env(1), *bench,
                             "--no-store", "--run-dir", str(workdir / "rank1")],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        root = subprocess.run(["ip", "netns", "exec", hosts["ns"][0], *env(0), *bench,
                               "--json"], cwd=workdir, capture_output=True, text=True,
                              timeout=240)
    finally:
        peer.wait(timeout=60)
    assert root.returncode == 0, root.stderr[-3000:]
    return json.loads(root.stdout)


def _fit(workdir, run_id: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "harness", "model", "fit", run_id, "--json"],
                       cwd=workdir, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("backend,port", [("gloo", 29610), ("grpc", 29620)])
def test_p2p_recovers_the_link_rate(hosts, workdir, backend, port):
    run = _pair(hosts, workdir, backend, "-w", "p2p", "-p", "size=1MiB..4MiB*2",
                "-p", "mode=pingpong", port=port)
    largest = max(run["measurements"], key=lambda m: m["metrics"]["size_bytes"])
    measured = largest["metrics"]["algbw_gbps"] * 1e9
    assert measured == pytest.approx(RATE_BYTES, rel=0.10)
    beta = _fit(workdir, run["run_id"])["beta_gbps"] * 1e9
    assert beta == pytest.approx(RATE_BYTES, rel=0.10)


@pytest.mark.parametrize("backend,port", [("gloo", 29630), ("grpc", 29640)])
def test_allreduce_busbw_and_fit(hosts, workdir, backend, port):
    run = _pair(hosts, workdir, backend, "-w", "allreduce", "-p", "size=1MiB..4MiB*2",
                port=port)
    largest = max(run["measurements"], key=lambda m: m["metrics"]["size_bytes"])
    # Two ranks on a full-duplex link: each sends the whole buffer once (reduce-scatter then
    # allgather, half each), so bus bandwidth approaches the link rate; the reduction itself
    # and both phases' handshakes cost a few percent on this 2-core machine.
    assert largest["metrics"]["busbw_gbps"] * 1e9 == pytest.approx(RATE_BYTES, rel=0.15)
    beta = _fit(workdir, run["run_id"])["beta_gbps"] * 1e9
    assert beta == pytest.approx(RATE_BYTES, rel=0.15)


def test_gloo_finds_the_interface_to_rank_0_by_itself(hosts, workdir):
    """No GLOO_SOCKET_IFNAME: the host name resolves to loopback here, which is what Gloo would
    bind to and tell the other rank; each rank picks the veth its route to rank 0 leaves by."""
    run = _pair(hosts, workdir, "gloo", "-w", "p2p", "-p", "size=64KiB", "-p", "mode=pingpong",
                port=29650, ifname=False)
    assert [m["status"] for m in run["measurements"]] == ["ok"]
    shown = subprocess.run([sys.executable, "-m", "harness", "show", run["run_id"], "--json"],
                           cwd=workdir, capture_output=True, text=True, timeout=60)
    [gloo] = [b for b in json.loads(shown.stdout)["env"]["backends"] if b["backend"] == "gloo:cpu"]
    assert gloo["gloo_socket_ifname"] == hosts["veth"][0]
    assert hosts["addrs"][0] in gloo["gloo_socket_ifname_from"]


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="Open MPI is not installed")
def test_mpi_over_tcp_between_namespaces(hosts, workdir):
    """mpirun in the first namespace starts the second rank in the other one through an
    rsh agent that runs `ip netns exec`; Open MPI's TCP transport carries the messages."""
    hostfile = workdir / "hosts"
    hostfile.write_text("".join(f"{a} slots=1\n" for a in hosts["addrs"]))
    agent = workdir / "netns-agent"
    cases = "".join(f"  {a}) ns={n} ;;\n" for a, n in zip(hosts["addrs"], hosts["ns"],
                                                            strict=True))
    agent.write_text("#!/bin/sh\nhost=$1; shift\ncase \"$host\" in\n" + cases
                     + "  *) echo \"unknown host $host\" >&2; exit 1 ;;\nesac\n"
                     + "exec ip netns exec \"$ns\" sh -c \"$*\"\n")
    agent.chmod(0o755)
    subnet = hosts["addrs"][0].rsplit(".", 1)[0] + ".0/24"
    env = {"OMPI_MCA_orte_default_hostfile": str(hostfile), "OMPI_MCA_plm_rsh_agent": str(agent),
           "OMPI_MCA_btl": "tcp,self", "OMPI_MCA_btl_tcp_if_include": subnet,
           "OMPI_MCA_oob_tcp_if_include": subnet, "BENCH_CONTROL_HOST": hosts["addrs"][0]}
    r = subprocess.run(["ip", "netns", "exec", hosts["ns"][0], "env",
                        *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "harness",
                        "run", "-w", "p2p", "-b", "mpi", "-p", "size=1MiB..4MiB*2",
                        "--launcher", "mpirun", "-n", "2", "--budget", "1", "-q", "--json"],
                       cwd=workdir, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads(r.stdout)
    largest = max(run["measurements"], key=lambda m: m["metrics"]["size_bytes"])
    # The shaped link's rate is a bound that must hold; how close to it a loaded 2-core
    # machine gets varies (22.1 of 25 MB/s in one CI run), so below it only the order is checked.
    rate = largest["metrics"]["algbw_gbps"] * 1e9
    assert 0.5 * RATE_BYTES < rate <= 1.05 * RATE_BYTES, rate
    beta = _fit(workdir, run["run_id"])["beta_gbps"] * 1e9
    assert 0.5 * RATE_BYTES < beta <= 1.05 * RATE_BYTES, beta
