"""The interface a rank reaches rank 0 through (harness.netif) and Gloo's choice of it: over the
real loopback here; between two network namespaces in tests/test_netns.py."""

from __future__ import annotations

import importlib.util
import json

import pytest

from harness import netif
from kernels.collectives.torch_dist import IFNAME_ENV, gloo_interface


def test_loopback_is_reached_through_lo():
    assert netif.route_source("127.0.0.1") == "127.0.0.1"
    assert netif.ipv4_addresses()["127.0.0.1"] == "lo"
    assert netif.interface_toward("127.0.0.1") == ("lo", "127.0.0.1")


def test_every_address_of_this_host_maps_to_an_interface_it_has():
    import socket

    names = {name for _, name in socket.if_nameindex()}
    found = netif.ipv4_addresses()
    assert found and set(found.values()) <= names
    for addr, name in found.items():  # an address of this host is reached through its owner
        assert netif.interface_toward(addr) == (name, addr)


def test_no_route_is_none():
    assert netif.route_source("no-such-host.invalid") is None
    assert netif.interface_toward("no-such-host.invalid") is None


def test_gloo_takes_the_interface_on_the_route_to_rank_0():
    environ: dict[str, str] = {}
    record = gloo_interface("127.0.0.1", environ)
    assert environ == {IFNAME_ENV: "lo"}
    assert record["gloo_socket_ifname"] == "lo"
    assert "route to MASTER_ADDR 127.0.0.1" in record["gloo_socket_ifname_from"]


def test_the_users_gloo_socket_ifname_wins():
    environ = {IFNAME_ENV: "eth7"}
    record = gloo_interface("127.0.0.1", environ)
    assert environ == {IFNAME_ENV: "eth7"}
    assert record == {"gloo_socket_ifname": "eth7",
                      "gloo_socket_ifname_from": f"{IFNAME_ENV} set by the user"}


def test_without_a_route_gloo_is_left_alone_and_the_record_says_why():
    environ: dict[str, str] = {}
    record = gloo_interface("no-such-host.invalid", environ)
    assert environ == {}
    assert "gloo_socket_ifname" not in record
    assert "no IPv4 route" in record["gloo_socket_ifname_from"]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="gloo needs torch: pip install 'accelbench[torch]'")
def test_a_gloo_run_records_its_interface(bench):
    res = bench("run", "-w", "allreduce", "-b", "gloo", "-p", "size=1KiB", "-n", "2",
                "--budget", "0.2", "--target-ci", "0.05", "-q", "--json", timeout=180)
    assert res.rc == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    env = bench("show", run_id, "--json").json()["env"]
    [gloo] = [b for b in env["backends"] if b["backend"] == "gloo:cpu"]
    assert gloo["gloo_socket_ifname"] == "lo"
    assert gloo["gloo_socket_ifname_from"].startswith("the route to MASTER_ADDR")
    assert env["env"][IFNAME_ENV] == "lo"
