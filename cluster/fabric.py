"""What the interconnect is: InfiniBand/RoCE/EFA devices and ports from sysfs (and `ibv_devinfo`,
`fi_info -p efa` when present), NICs and their speeds. Recorded with every run's environment."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

_RATE = re.compile(r"([\d.]+)\s*Gb/sec")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _driver(device: Path) -> str | None:
    link = device / "device" / "driver"
    try:
        return link.resolve(strict=True).name if link.exists() else None
    except OSError:
        return None


def rdma_devices(root: Path = Path("/")) -> list[dict[str, Any]]:
    """InfiniBand, RoCE and EFA devices with their ports (state, rate, link layer)."""
    base = root / "sys" / "class" / "infiniband"
    if not base.is_dir():
        return []
    devices = []
    for dev in sorted(base.iterdir()):
        driver = _driver(dev)
        ports = []
        ports_dir = dev / "ports"
        for port in sorted(ports_dir.iterdir(), key=lambda p: int(p.name)
                           if p.name.isdigit() else 0) if ports_dir.is_dir() else []:
            rate = _read(port / "rate") or ""
            m = _RATE.search(rate)
            state = _read(port / "state") or ""
            ports.append({
                "port": int(port.name) if port.name.isdigit() else port.name,
                "state": state.split(":", 1)[-1].strip() or None,
                "phys_state": (_read(port / "phys_state") or "").split(":", 1)[-1].strip() or None,
                "rate": rate or None,
                "rate_gbps": float(m.group(1)) if m else None,
                "link_layer": _read(port / "link_layer"),
            })
        if driver == "efa" or dev.name.startswith("efa"):
            kind = "efa"
        elif ports and all(p["link_layer"] == "Ethernet" for p in ports):
            kind = "roce"
        else:
            kind = "infiniband"
        devices.append({"name": dev.name, "kind": kind, "driver": driver,
                        "hca_type": _read(dev / "hca_type"), "fw_ver": _read(dev / "fw_ver"),
                        "board_id": _read(dev / "board_id"), "ports": ports})
    return devices


def nics(root: Path = Path("/")) -> list[dict[str, Any]]:
    base = root / "sys" / "class" / "net"
    if not base.is_dir():
        return []
    out = []
    for nic in sorted(base.iterdir()):
        if nic.name == "lo":
            continue
        speed = _read(nic / "speed")
        out.append({
            "name": nic.name,
            "operstate": _read(nic / "operstate"),
            "speed_mbps": int(speed) if speed and speed.lstrip("-").isdigit()
            and int(speed) > 0 else None,
            "mtu": int(m) if (m := _read(nic / "mtu")) and m.isdigit() else None,
            "driver": _driver(nic),
        })
    return out


def _tool(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def detect(root: Path = Path("/"), tools: bool = True) -> dict[str, Any]:
    """The fabric record: devices, NICs, and a one-word summary (infiniband, efa, roce, tcp)."""
    devices = rdma_devices(root)
    active = [d for d in devices if any(p["state"] == "ACTIVE" for p in d["ports"])]
    kinds = {d["kind"] for d in active}
    summary = next((k for k in ("infiniband", "efa", "roce") if k in kinds), "tcp")
    best = max((p["rate_gbps"] or 0 for d in active for p in d["ports"]
                if p["state"] == "ACTIVE"), default=None)
    record: dict[str, Any] = {"fabric": summary, "rdma_devices": devices, "nics": nics(root),
                              "best_rdma_rate_gbps": best or None}
    if tools:
        ibv = _tool(["ibv_devinfo", "-l"])
        if ibv is not None:
            record["ibv_devinfo"] = [ln.strip() for ln in ibv.splitlines()[1:] if ln.strip()]
        efa = _tool(["fi_info", "-p", "efa"])
        if efa is not None:
            record["libfabric_efa"] = "provider: efa" in efa
    return record
