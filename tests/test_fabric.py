"""Fabric detection from sysfs trees shaped like real InfiniBand, RoCE and EFA hosts."""

from __future__ import annotations

from pathlib import Path

from cluster.fabric import detect


def _port(dev: Path, n: int, state: str, rate: str, layer: str) -> None:
    p = dev / "ports" / str(n)
    p.mkdir(parents=True)
    (p / "state").write_text(state + "\n")
    (p / "phys_state").write_text("5: LinkUp\n")
    (p / "rate").write_text(rate + "\n")
    (p / "link_layer").write_text(layer + "\n")


def _device(root: Path, name: str, driver: str, **files: str) -> Path:
    dev = root / "sys" / "class" / "infiniband" / name
    dev.mkdir(parents=True)
    drivers = root / "sys" / "bus" / "pci" / "drivers" / driver
    drivers.mkdir(parents=True, exist_ok=True)
    (dev / "device").mkdir()
    (dev / "device" / "driver").symlink_to(drivers)
    for k, v in files.items():
        (dev / k).write_text(v + "\n")
    return dev


def _nic(root: Path, name: str, speed: str, state: str = "up") -> None:
    nic = root / "sys" / "class" / "net" / name
    nic.mkdir(parents=True)
    (nic / "speed").write_text(speed + "\n")
    (nic / "operstate").write_text(state + "\n")
    (nic / "mtu").write_text("9000\n")


def test_infiniband_hdr_host(tmp_path):
    dev = _device(tmp_path, "mlx5_0", "mlx5_core", hca_type="MT4123", fw_ver="20.31.1014")
    _port(dev, 1, "4: ACTIVE", "200 Gb/sec (4X HDR)", "InfiniBand")
    down = _device(tmp_path, "mlx5_1", "mlx5_core")
    _port(down, 1, "1: DOWN", "10 Gb/sec (4X SDR)", "InfiniBand")
    _nic(tmp_path, "eth0", "25000")
    _nic(tmp_path, "lo", "-1")
    f = detect(tmp_path, tools=False)
    assert f["fabric"] == "infiniband"
    assert f["best_rdma_rate_gbps"] == 200.0
    mlx = f["rdma_devices"][0]
    assert (mlx["name"], mlx["kind"], mlx["driver"], mlx["fw_ver"]) == (
        "mlx5_0", "infiniband", "mlx5_core", "20.31.1014")
    assert mlx["ports"][0] == {"port": 1, "state": "ACTIVE", "phys_state": "LinkUp",
                               "rate": "200 Gb/sec (4X HDR)", "rate_gbps": 200.0,
                               "link_layer": "InfiniBand"}
    assert f["rdma_devices"][1]["ports"][0]["state"] == "DOWN"
    assert [n["name"] for n in f["nics"]] == ["eth0"]  # loopback left out
    assert f["nics"][0]["speed_mbps"] == 25000


def test_efa_host(tmp_path):
    dev = _device(tmp_path, "rdmap16s27", "efa")
    _port(dev, 1, "4: ACTIVE", "100 Gb/sec (4X EDR)", "Unspecified")
    f = detect(tmp_path, tools=False)
    assert f["fabric"] == "efa"
    assert f["rdma_devices"][0]["kind"] == "efa"


def test_roce_host(tmp_path):
    dev = _device(tmp_path, "mlx5_2", "mlx5_core")
    _port(dev, 1, "4: ACTIVE", "100 Gb/sec (2X HDR)", "Ethernet")
    assert detect(tmp_path, tools=False)["fabric"] == "roce"


def test_plain_tcp_host(tmp_path):
    _nic(tmp_path, "eth0", "-1")  # virtual NICs report no speed
    f = detect(tmp_path, tools=False)
    assert f["fabric"] == "tcp" and f["rdma_devices"] == []
    assert f["nics"][0]["speed_mbps"] is None
    assert detect(tmp_path / "nothing", tools=False)["nics"] == []


def test_bench_env_shows_the_fabric(bench):
    r = bench("env", "--json")
    assert r.rc == 0
    assert r.json()["fabric"]["fabric"] in ("tcp", "infiniband", "efa", "roce")
