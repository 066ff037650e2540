"""Which network interface this host reaches another host through (Linux, IPv4).

The local address is the one the kernel's routing picks for a datagram to the other host (a UDP
socket's connect sends nothing); the interface is the one that holds that address. Where the
other host is this one (rank 0 looking up its own address) the route goes through `lo`, but the
interface that holds the address is the one the other ranks reach it at, which is what a
transport that binds to an interface (Gloo's GLOO_SOCKET_IFNAME) needs."""

from __future__ import annotations

import array
import fcntl
import socket
import struct

_SIOCGIFCONF = 0x8912
_IFREQ_SIZE = 40 if struct.calcsize("P") == 8 else 32  # struct ifreq: name[16] + a union
_MAX_ADDRESSES = 1024


def route_source(host: str, port: int = 9) -> str | None:
    """The local IPv4 address that packets to `host` leave from, or None without a route."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            return str(s.getsockname()[0])
    except OSError:
        return None


def ipv4_addresses() -> dict[str, str]:
    """Each configured IPv4 address -> the interface that holds it (aliases as their device)."""
    size = _IFREQ_SIZE * _MAX_ADDRESSES
    buf = array.array("B", bytes(size))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("iL", size, buf.buffer_info()[0])
        used, _ = struct.unpack("iL", fcntl.ioctl(s.fileno(), _SIOCGIFCONF, request))
    raw = buf.tobytes()[:used]
    found: dict[str, str] = {}
    for at in range(0, used, _IFREQ_SIZE):
        name = raw[at:at + 16].split(b"\0", 1)[0].decode(errors="replace")
        addr = socket.inet_ntoa(raw[at + 20:at + 24])  # sockaddr_in: family, port, address
        found.setdefault(addr, name.split(":", 1)[0])  # "eth0:1" is an alias label of eth0
    return found


def interface_toward(host: str) -> tuple[str, str] | None:
    """(interface, local address) that this host reaches `host` through, or None."""
    local = route_source(host)
    if local is None:
        return None
    name = ipv4_addresses().get(local)
    return (name, local) if name else None
