"""Many ranks, one measurement: the control channel between ranks and the watchdog that keeps a
dead or hung rank from hanging the job.

The *control channel* is a small side channel, independent of the collective backend under test:
rank 0 listens on ``BENCH_CONTROL_ADDR`` (host:port, set by ``bench run --launcher``) and every
other rank connects to it. Messages are length-prefixed JSON (never pickle), and a peer must present
``BENCH_CONTROL_TOKEN``. It carries what the engine and the runner need to agree on — the plan, the
stop decision, each rank's samples and check results — and every wait on it has a deadline.

Each rank also sends a heartbeat with its progress counter (bumped once per timed sample). Rank 0's
watchdog notices when its own progress has stalled for ``timeout`` seconds (it is stuck inside a
collective that some rank never joined) or when a peer's connection drops (the process died), and
ends the job with a message naming the rank(s): those that died, else those that stopped sending
heartbeats, else those whose progress lags the others — the ones that did not arrive. The other
ranks end themselves when rank 0 goes away.

A SIGINT or SIGTERM during a run is acted on by every rank together (`defer`): a rank that gets
one notes it (and tells rank 0 in its heartbeat); rank 0's next broadcast carries it, and every
rank raises `Interrupted` as that broadcast returns. A rank that stopped wherever the signal
found it could leave its peers inside a collective that never completes (MPI's do not notice a
peer that left), and rank 0 could not keep the finished cases. Broadcasts come with every stop
decision of the engine, so within a fraction of the budget; a signal that finds none within
AGREE_S is raised where it is. An interrupted rank other than 0 then waits for rank 0 to end
the job (`close`): mpirun kills every rank a second after one ends with an error, which would
kill rank 0 while it keeps the run.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import queue
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from harness.errors import UserError
from harness.exiting import Interrupted, exit_now

ENV_ADDR = "BENCH_CONTROL_ADDR"
ENV_TOKEN = "BENCH_CONTROL_TOKEN"
ENV_TIMEOUT = "BENCH_RANK_TIMEOUT"
ENV_STARTUP_TIMEOUT = "BENCH_STARTUP_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
# Joining the ranks and loading the backends (imports of torch or jax: seconds, and many more on
# a loaded machine) is local work that --timeout, meant for a rank stuck waiting on others, must
# not cut short: those phases are given at least this long ($BENCH_STARTUP_TIMEOUT changes it).
STARTUP_TIMEOUT = 120.0
HEARTBEAT_S = 0.25
AGREE_S = 10.0  # how long a signal waits for the ranks to stop together (module docstring)
ROOT_WAIT_S = 30.0  # how long an interrupted rank waits for rank 0 to keep the run and end it
_LEN = struct.Struct("!I")


class RankFailure(Exception):
    """A rank died, hung, or failed to arrive: ends the job (never a hang)."""

    exit_code = 3

    def __init__(self, message: str, ranks: list[int] | None = None) -> None:
        super().__init__(message)
        self.ranks = ranks or []


class Communicator(Protocol):
    """What the engine needs from the ranks: rank, size, a barrier, gather to 0, bcast from 0."""

    rank: int
    size: int

    def barrier(self) -> None: ...

    def gather(self, obj: Any) -> list[Any] | None:
        """Rank 0 gets every rank's object (in rank order); the others get None."""

    def bcast(self, obj: Any = None) -> Any:
        """Every rank gets rank 0's object."""

    def tick(self) -> None:
        """Record progress (one timed sample); the watchdog reads it."""

    def loading(self, name: str) -> None:
        """Name a phase of start-up work, which --timeout does not cut short."""


class Solo:
    """The world of one process."""

    rank, size = 0, 1
    progress = 0
    phase = "start"

    def loading(self, name: str) -> None:
        self.phase = name

    def barrier(self) -> None:
        return None

    def gather(self, obj: Any) -> list[Any]:
        return [obj]

    def bcast(self, obj: Any = None) -> Any:
        return obj

    def tick(self) -> None:
        self.progress += 1

    def allgather(self, obj: Any) -> list[Any]:
        return [obj]

    def close(self) -> None:
        return None


def _send(sock: socket.socket, obj: Any, lock: threading.Lock) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    with lock:
        sock.sendall(_LEN.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _recv(sock: socket.socket) -> Any:
    head = _recv_exact(sock, _LEN.size)
    if head is None:
        return None
    body = _recv_exact(sock, _LEN.unpack(head)[0])
    return None if body is None else json.loads(body)


def parse_addr(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"{ENV_ADDR}={text!r} is not host:port")
    return host or "127.0.0.1", int(port)


def local_address() -> str:
    """The address other ranks can reach this one at: the one it uses to reach rank 0's control
    channel (loopback when every rank is on this host)."""
    text = os.environ.get(ENV_ADDR, "")
    host, _, port = text.rpartition(":")
    if not host or host in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, int(port)))  # UDP: no packet is sent, only a route is chosen
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ControlChannel:
    """The control channel of a multi-rank run (see the module docstring)."""

    def __init__(self, rank: int, size: int, addr: tuple[str, int], token: str,
                 timeout: float = DEFAULT_TIMEOUT, startup: float = STARTUP_TIMEOUT) -> None:
        self.rank, self.size, self.timeout, self.startup = rank, size, timeout, startup
        self.token = token
        self.progress = 0
        self.loading("start")
        self._closing = False
        self._fatal_once = threading.Lock()
        self.on_fatal: Callable[[str], None] = self._default_fatal
        self._inbox: dict[int, queue.Queue[Any]] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._socks: dict[int, socket.socket] = {}
        self.peer_progress: dict[int, int] = {}
        self.peer_seen: dict[int, float] = {}
        self.dead: dict[int, str] = {}
        self.signalled: int | None = None  # a signal deferred on this rank (`defer`)
        self._signalled_at = 0.0
        self._timer: threading.Timer | None = None
        self._peer_signal: int | None = None  # rank 0: a signal another rank deferred
        self._stop: int | None = None  # the signal the ranks stopped for, once broadcast
        self._reader: threading.Thread | None = None
        if rank == 0:
            self._listen(addr)
        else:
            self._connect(addr)
        threading.Thread(target=self._watchdog, name="bench-watchdog", daemon=True).start()

    # ---- phases
    @property
    def phase(self) -> str:
        """What the job is doing, named in every message about a rank that failed."""
        return self._phase

    @phase.setter
    def phase(self, name: str) -> None:
        self._enter(name, loading=False)

    def loading(self, name: str) -> None:
        """Enter a phase of start-up work (joining, imports, backends): it may last up to
        STARTUP_TIMEOUT even where --timeout is shorter. Setting `phase` ends it."""
        self._enter(name, loading=True)

    def _enter(self, name: str, loading: bool) -> None:
        # A new phase is a step forward: the watchdog's clock starts again, so a long start-up
        # is not counted against the first case's --timeout.
        self._phase, self._loading = name, loading
        self._last_progress = (self.progress, time.monotonic())

    def limit(self) -> float:
        """How long the current phase may go without progress."""
        return max(self.timeout, self.startup) if self._loading else self.timeout

    def _limit_text(self) -> str:
        if self._loading and self.startup > self.timeout:
            return f"start-up allowance {self.startup:g} s, ${ENV_STARTUP_TIMEOUT}"
        return f"--timeout {self.timeout:g}"

    # ---- setup
    def _listen(self, addr: tuple[str, int]) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            srv.bind(addr)
        except OSError as exc:
            raise UserError(f"rank 0 cannot listen on {addr[0]}:{addr[1]} for the other ranks: "
                            f"{exc.strerror}") from None
        srv.listen(self.size)
        deadline = time.monotonic() + self.limit()
        while len(self._socks) < self.size - 1:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted(set(range(1, self.size)) - set(self._socks))
                srv.close()
                raise RankFailure(f"rank(s) {_ranks(missing)} did not connect to rank 0 within "
                                  f"{self.limit():g} s", missing)
            srv.settimeout(remaining)
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                hello = _recv(conn)
            except (OSError, ValueError):
                hello = None
            if (not isinstance(hello, dict) or hello.get("token") != self.token
                    or not isinstance(hello.get("rank"), int)
                    or not 0 < hello["rank"] < self.size or hello["rank"] in self._socks):
                conn.close()  # not one of ours
                continue
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            r = hello["rank"]
            self._socks[r] = conn
        srv.close()
        now = time.monotonic()
        for r, conn in self._socks.items():
            self._inbox[r] = queue.Queue()
            self._locks[r] = threading.Lock()
            self.peer_progress[r], self.peer_seen[r] = 0, now
            threading.Thread(target=self._read_peer, args=(r, conn), daemon=True,
                             name=f"bench-rank{r}").start()

    def _connect(self, addr: tuple[str, int]) -> None:
        deadline = time.monotonic() + self.limit()
        while True:
            try:
                sock = socket.create_connection(addr, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RankFailure(f"rank {self.rank} could not reach rank 0 at "
                                      f"{addr[0]}:{addr[1]} within {self.limit():g} s", [0]) \
                        from None
                time.sleep(0.05)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socks[0], self._locks[0], self._inbox[0] = sock, threading.Lock(), queue.Queue()
        _send(sock, {"token": self.token, "rank": self.rank}, self._locks[0])
        self._reader = threading.Thread(target=self._read_root, daemon=True, name="bench-rank0")
        self._reader.start()
        threading.Thread(target=self._heartbeat, daemon=True, name="bench-heartbeat").start()

    # ---- background threads
    def _read_peer(self, r: int, conn: socket.socket) -> None:
        while True:
            try:
                msg = _recv(conn)
            except (OSError, ValueError):
                msg = None
            if msg is None:
                if not self._closing and r not in self.dead:
                    # _fatal first: it ends this process with one line (rank 0 keeps the
                    # finished cases); marked dead first, the main thread's wait could raise
                    # its own RankFailure meanwhile, and say it a second time.
                    self._fatal(f"rank {r} died (connection to it lost) during {self.phase}")
                    self.dead[r] = "its process died (connection lost)"
                return
            kind = msg.get("k")
            self.peer_seen[r] = time.monotonic()
            if kind == "hb":
                self.peer_progress[r] = msg["p"]
                if msg.get("s") and self._peer_signal is None:
                    self._peer_signal = int(msg["s"])
            elif kind == "d":
                self._inbox[r].put(msg["v"])
            elif kind == "bye":
                self.dead[r] = "finished"
                return
            elif kind == "fatal":
                self._fatal(f"rank {r} failed during {self.phase}: {msg['v']}")  # (as above)
                self.dead[r] = msg["v"]
                return

    def _read_root(self) -> None:
        sock = self._socks[0]
        while True:
            try:
                msg = _recv(sock)
            except (OSError, ValueError):
                msg = None
            if msg is None:
                if not self._closing:
                    self._fatal(f"rank {self.rank}: lost rank 0 during {self.phase}; ending")
                return
            if msg.get("k") == "d":  # a broadcast, and the signal it stops the ranks for
                self._inbox[0].put((msg["v"], msg.get("s")))
            elif msg.get("k") == "end":  # rank 0 has said why the job ends: nothing to add
                self._closing = True
                exit_now(int(msg["v"]))

    def _heartbeat(self) -> None:
        while not self._closing:
            try:
                beat = {"k": "hb", "p": self.progress}
                if self.signalled is not None:
                    beat["s"] = self.signalled
                _send(self._socks[0], beat, self._locks[0])
            except OSError:
                return
            time.sleep(HEARTBEAT_S)

    def _watchdog(self) -> None:
        # Rank 0 judges first; the others wait a little longer so its message is the one seen.
        later = 0 if self.rank == 0 else 10
        while not self._closing:
            time.sleep(min(0.2, self.timeout / 10))
            p, since = self._last_progress
            now = time.monotonic()
            if self.progress != p:
                self._last_progress = (self.progress, now)
                continue
            if now - since > self.limit() + later:
                self._fatal(self.stall_message(now - since))
                return

    def stall_message(self, stalled: float) -> str:
        if self.rank != 0:
            return (f"rank {self.rank}: no progress for {stalled:.0f} s during {self.phase}; "
                    "ending")
        now = time.monotonic()
        died = sorted(r for r, why in self.dead.items() if why != "finished")
        silent = sorted(r for r, t in self.peer_seen.items() if now - t > self.timeout / 2)
        lagging: list[int] = []
        if self.peer_progress:
            top = max(self.progress, *self.peer_progress.values())
            lagging = sorted(r for r, p in {0: self.progress, **self.peer_progress}.items()
                             if p < top)
        blame = died or silent or lagging
        why = ("died" if died else "stopped responding (hung?)" if silent
               else "did not arrive")
        who = f"rank(s) {_ranks(blame)} {why}" if blame else "no rank made progress"
        return (f"{who}: {self.phase} made no progress for {stalled:.0f} s "
                f"({self._limit_text()})")

    # ---- fatal handling
    def _default_fatal(self, message: str) -> None:
        sys.stderr.write(f"bench: error: {message}\n")
        exit_now(3)

    def _fatal(self, message: str) -> None:
        if self._closing or not self._fatal_once.acquire(blocking=False):
            return
        if self.rank != 0:
            with contextlib.suppress(OSError):
                _send(self._socks[0], {"k": "fatal", "v": message}, self._locks[0])
        self.on_fatal(message)

    def reporting(self) -> bool:
        """Whether a rank failure is being reported (the thread doing it ends the process)."""
        return self._fatal_once.locked()

    def dismiss(self, code: int) -> None:
        """Rank 0 ends the job having said why (a user error, a full disk): the other ranks end
        with `code`, silently, instead of each reporting that rank 0 was lost."""
        if self.rank != 0 or self._closing:
            return
        self._closing = True
        self.take_deferred()
        for r, sock in self._socks.items():
            with contextlib.suppress(OSError):
                _send(sock, {"k": "end", "v": code}, self._locks[r])

    def fail(self, message: str) -> None:
        """This rank cannot go on (an error outside a case): tell rank 0, then end."""
        self._fatal(message)

    # ---- the Communicator protocol
    def tick(self) -> None:
        self.progress += 1

    def _wait(self, r: int, deadline: float | None = None) -> Any:
        deadline = deadline or time.monotonic() + self.limit()
        while True:
            if r in self.dead and self._inbox[r].empty() and self.dead[r] != "finished":
                raise RankFailure(f"rank {r} {self.dead[r]} during {self.phase}", [r])
            try:
                return self._inbox[r].get(timeout=min(0.2, max(0.0,
                                                            deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise RankFailure(f"rank {r} did not arrive at {self.phase} within "
                                      f"{self.limit():g} s ({self._limit_text()})", [r]) \
                        from None

    def gather(self, obj: Any) -> list[Any] | None:
        self.tick()
        if self.rank != 0:
            _send(self._socks[0], {"k": "d", "v": obj}, self._locks[0])
            return None
        out = [obj]
        missing: list[int] = []
        deadline = time.monotonic() + self.limit()  # one deadline for all: k late ranks cost
        for r in range(1, self.size):              # one timeout, not k
            try:
                out.append(self._wait(r, deadline))
            except RankFailure as exc:
                missing += exc.ranks
                if r in self.dead:
                    raise
        if missing:
            raise RankFailure(f"rank(s) {_ranks(missing)} did not arrive at {self.phase} "
                              f"within {self.limit():g} s ({self._limit_text()})", missing)
        return out

    def bcast(self, obj: Any = None) -> Any:
        """Every rank gets rank 0's object; where a rank has deferred a signal, every rank then
        raises `Interrupted` (the module docstring)."""
        self.tick()
        if self.rank == 0:
            stop = self.signalled or self._peer_signal
            msg = {"k": "d", "v": obj, **({"s": stop} if stop else {})}
            for r in range(1, self.size):
                try:
                    _send(self._socks[r], msg, self._locks[r])
                except OSError:
                    raise RankFailure(f"rank {r} died during {self.phase}", [r]) from None
            self._stop = stop
        else:
            obj, stop = self._wait(0)
            if stop:
                self._stop = int(stop)
        if self._stop is not None:
            self.take_deferred()
            raise Interrupted(self._stop)
        return obj

    def defer(self, signum: int) -> bool:
        """Note a signal for the ranks to stop on together at the next broadcast: True while
        it may wait for that; False (raise it now) once it has waited AGREE_S, or where the
        ranks no longer broadcast."""
        if self._closing or self._stop is not None:
            return False
        now = time.monotonic()
        if self.signalled is None:
            self.signalled, self._signalled_at = signum, now
            # if no broadcast comes, the signal is delivered again then, and raised
            self._timer = threading.Timer(AGREE_S, _thread.interrupt_main, args=(signum,))
            self._timer.daemon = True
            self._timer.start()
            return True
        return now - self._signalled_at < AGREE_S

    def take_deferred(self) -> int | None:
        """The signal deferred here and not acted on yet, if any (it will not be now)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        signum, self.signalled = self.signalled, None
        return None if self._stop is not None else signum

    def barrier(self) -> None:
        self.gather(None)
        self.bcast(None)

    def allgather(self, obj: Any) -> list[Any]:
        return self.bcast(self.gather(obj))

    def close(self, await_root: bool = False) -> None:
        """Part in good order (rank 0 last: it waits for every other rank's goodbye). With
        `await_root` (an interrupted run), a rank other than 0 waits until rank 0 has kept the
        run and ends it (`dismiss`), or goes away, or ROOT_WAIT_S has passed."""
        self.take_deferred()
        if self.rank != 0:
            self._closing = True
            try:
                _send(self._socks[0], {"k": "bye"}, self._locks[0])
                self._socks[0].shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if await_root and self._reader is not None:
                self._reader.join(ROOT_WAIT_S)
            return
        deadline = time.monotonic() + 5
        while (time.monotonic() < deadline
               and any(self.dead.get(r) is None for r in self._socks)):
            time.sleep(0.01)
        self._closing = True
        for sock in self._socks.values():
            sock.close()


def _ranks(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks))


_WORLD: Solo | ControlChannel | None = None


def world(rank: int = 0, size: int = 1, timeout: float | None = None) -> Solo | ControlChannel:
    """This process's communicator, created on first use from the launcher's environment."""
    global _WORLD
    if _WORLD is None:
        if size <= 1:
            _WORLD = Solo()
        else:
            addr = os.environ.get(ENV_ADDR)
            if not addr:
                raise UserError(f"this is rank {rank} of {size}, but {ENV_ADDR} is not set; start "
                                "multi-rank runs with `bench run --launcher mpirun|srun|torchrun|"
                                "local -n N ...`, or set it to rank 0's host:port")
            t = timeout or float(os.environ.get(ENV_TIMEOUT) or DEFAULT_TIMEOUT)
            _WORLD = ControlChannel(rank, size, parse_addr(addr),
                                    os.environ.get(ENV_TOKEN, ""), t, startup_timeout())
    return _WORLD


def startup_timeout() -> float:
    """How long start-up may take ($BENCH_STARTUP_TIMEOUT seconds, else STARTUP_TIMEOUT)."""
    raw = os.environ.get(ENV_STARTUP_TIMEOUT, "").strip()
    if not raw:
        return STARTUP_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise UserError(f"{ENV_STARTUP_TIMEOUT}={raw!r} is not a number of seconds above 0; "
                        "unset it or give e.g. 300")
    return value


def dismiss(code: int) -> None:
    """Where this process is rank 0 of a job: end the other ranks quietly with `code`."""
    if isinstance(_WORLD, ControlChannel):
        _WORLD.dismiss(code)


def current() -> Solo | ControlChannel:
    """The communicator made by `world()`, or a Solo world when none was made."""
    return _WORLD if _WORLD is not None else Solo()
