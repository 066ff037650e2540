"""Run the results browser with uvicorn on a socket bound here first, so that a port in use is
one clear line (not a uvicorn log) and port 0 picks a free port that is then printed."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import UserError

if TYPE_CHECKING:
    from results.store import Store


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (UserError if it cannot be had)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host!r}: {exc.strerror}; give an address such as "
                        "127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another "
                        "--port (0 picks a free one)") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(store: Store, host: str, port: int, log_level: str = "warning",
          run_dir: Path | None = None) -> None:
    """Serve until interrupted. Prints the URL on stdout once the socket listens."""
    import uvicorn

    from results.web.app import create_app

    sock = bind(host, port)
    if not is_loopback(sock.getsockname()[0]):
        print(f"bench: warning: serving on {host}: anyone who can reach this machine can read "
              "the results (there is no login); use the default 127.0.0.1 and an SSH tunnel "
              "unless that is what you want", file=sys.stderr, flush=True)
    app = create_app(store, run_dir)
    print(f"serving {store.name} on {url_of(sock)} (Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
