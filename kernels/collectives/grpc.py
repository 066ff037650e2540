"""`grpc`: a ring allreduce (reduce-scatter, then allgather, in 1 MiB chunks) between ranks over
grpcio streams — the transport of parameter-server and RPC-based frameworks, measured on the same
footing as MPI and NCCL. Also its two halves (reduce-scatter, allgather) and p2p.

The service is `collective.proto` beside this file. Its Python classes are built from it when
this module first runs (`grpc.protos_and_services`, which needs grpcio-tools): the .proto stays
the single source, and no generated file can drift from the installed protobuf runtime. Ranks
find each other's addresses through the run's control channel (harness.distributed).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
from concurrent import futures
from pathlib import Path
from typing import Any

import numpy as np

from harness.distributed import current, local_address
from harness.errors import BackendUnavailable, UserError
from kernels.collectives.base import Bound, CollectiveBackend, Collectives, Supports

# what this backend can do (read by the workloads' validation and `bench list`)
SUPPORTED = Supports(collectives=("allreduce", "allgather", "reduce-scatter", "p2p"))
PIECE = 1 << 20  # bytes per message
OUTBOX = 64 * PIECE  # bytes queued on a stream at most: a send waits while the stream is this full
HOST_ENV = "BENCH_GRPC_HOST"  # where other ranks reach this one (default: its route to rank 0)
_REDUCE = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}


def _stubs() -> tuple[Any, Any]:
    import grpc

    proto = Path(__file__).with_name("collective.proto")
    root = proto.parents[2]  # the folder that holds the `kernels` package
    import sys

    if str(root) not in sys.path:
        sys.path.append(str(root))
    return grpc.protos_and_services("kernels/collectives/collective.proto")


class GrpcCollectives(Collectives):
    def __init__(self, backend: GrpcBackend) -> None:
        import grpc

        self.grpc = grpc
        self.pb, services = _stubs()
        world = current()
        self.world = world
        self.rank, self.size, self.local = world.rank, world.size, [world.rank]
        self.inbox: dict[int, queue.Queue[bytes]] = {r: queue.Queue() for r in range(self.size)}
        inbox, pb = self.inbox, self.pb

        class Ring(services.RingServicer):  # type: ignore[name-defined]
            def Send(self, request_iterator: Any, context: Any) -> Any:
                for chunk in request_iterator:
                    inbox[chunk.src].put(chunk.data)
                return pb.Done()

        opts = [("grpc.max_receive_message_length", 4 * PIECE),
                ("grpc.max_send_message_length", 4 * PIECE)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max(4, self.size)),
                                  options=opts)
        services.add_RingServicer_to_server(Ring(), self.server)
        port = self.server.add_insecure_port("0.0.0.0:0")
        self.server.start()
        host = os.environ.get(HOST_ENV) or local_address()
        world.phase = "grpc address exchange"
        self.addrs = world.allgather(f"{host}:{port}")
        self.services, self.opts = services, opts
        self.outbox: dict[int, queue.Queue[Any]] = {}
        self.calls: list[Any] = []
        self._scratch: dict[Any, np.ndarray] = {}

    def _stream_to(self, peer: int) -> queue.Queue[Any]:
        """The open client stream to `peer` (made on first use)."""
        if peer not in self.outbox:
            # Bounded, so that a window of large p2p messages does not queue them all in memory;
            # the peer's server drains its end whatever the peer's main thread does.
            q: queue.Queue[Any] = queue.Queue(maxsize=OUTBOX // PIECE)
            channel = self.grpc.insecure_channel(self.addrs[peer], options=self.opts)
            stub = self.services.RingStub(channel)
            future = stub.Send.future(iter(q.get, None))
            self.outbox[peer] = q
            self.calls.append((q, future, channel))
        return self.outbox[peer]

    def _send(self, peer: int, data: np.ndarray) -> None:
        out, raw = self._stream_to(peer), memoryview(np.ascontiguousarray(data)).cast("B")
        chunk = self.pb.Chunk
        if len(raw) == 0:
            out.put(chunk(src=self.rank, data=b""))
        for i in range(0, len(raw), PIECE):
            out.put(chunk(src=self.rank, data=bytes(raw[i:i + PIECE])))

    def _recv(self, peer: int, into: np.ndarray) -> None:
        raw = memoryview(into).cast("B")
        if len(raw) == 0:
            self.inbox[peer].get()
        for i in range(0, len(raw), PIECE):
            piece = self.inbox[peer].get()
            raw[i:i + len(piece)] = piece

    def _recv_reduce(self, peer: int, into: np.ndarray, op: Any, scratch: np.ndarray) -> None:
        tmp = scratch[: into.size]
        self._recv(peer, tmp)
        op(into, tmp, out=into)

    def barrier(self) -> None:
        self.world.barrier()

    def allreduce_inplace(self, buf: Any) -> None:
        if self.size > 1:
            scratch = self._scratch.get(buf.dtype)
            if scratch is None or scratch.size < buf.size // self.size + 1:
                scratch = self._scratch[buf.dtype] = np.empty(buf.size // self.size + 1,
                                                              buf.dtype)
            self._reduce_scatter(buf, np.add, scratch)
            self._allgather(buf)

    def describe(self) -> dict[str, Any]:
        return {"grpcio": self.grpc.__version__, "world_size": self.size, "piece_bytes": PIECE}

    def close(self) -> None:
        for q, future, channel in self.calls:
            with contextlib.suppress(queue.Full):
                q.put(None, timeout=5)
            with contextlib.suppress(Exception):
                future.result(timeout=5)
            channel.close()
        self.server.stop(grace=1)

    # ---- the ring
    def _segments(self, count: int) -> list[slice]:
        bounds = np.linspace(0, count, self.size + 1).astype(int) if count % self.size else \
            np.arange(self.size + 1) * (count // self.size)
        return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

    def _reduce_scatter(self, buf: np.ndarray, op: Any, scratch: np.ndarray) -> None:
        n, r = self.size, self.rank
        seg = self._segments(buf.size)
        right, left = (r + 1) % n, (r - 1) % n
        for s in range(n - 1):
            self._send(right, buf[seg[(r - s - 1) % n]])
            self._recv_reduce(left, buf[seg[(r - s - 2) % n]], op, scratch)

    def _allgather(self, buf: np.ndarray) -> None:
        n, r = self.size, self.rank
        seg = self._segments(buf.size)
        right, left = (r + 1) % n, (r - 1) % n
        for s in range(n - 1):
            self._send(right, buf[seg[(r - s) % n]])
            self._recv(left, buf[seg[(r - s - 1) % n]])

    def prepare(self, coll: str, inputs: list[np.ndarray], *, op: str, root: int,
                in_place: bool, mode: str, window: int = 1) -> Bound:
        if (why := SUPPORTED.refusal("grpc", coll, {"op": op, "in_place": in_place})):
            raise UserError(why)
        n, r, x = self.size, self.rank, inputs[0]
        reduce = _REDUCE[op]
        work = np.zeros(x.size * n, x.dtype) if coll == "allgather" else x.copy()
        seg = self._segments(work.size)
        scratch = np.empty(max((s.stop - s.start) for s in seg) if work.size else 0, x.dtype)
        result: np.ndarray = work

        def reset() -> None:
            if coll == "allgather":
                work[seg[r]] = x
            else:
                work[...] = x

        if coll == "allreduce":
            def run() -> None:
                if not in_place:
                    reset()  # the out-of-place input stays intact: restart from a copy
                self._reduce_scatter(work, reduce, scratch)
                self._allgather(work)
        elif coll == "reduce-scatter":
            result = work[seg[r]]

            def run() -> None:
                reset()
                self._reduce_scatter(work, reduce, scratch)
        elif coll == "allgather":
            run = lambda: self._allgather(work)  # noqa: E731
        else:
            run = self._p2p(mode, window, x, work)
        reset()
        return Bound(run=run, results=lambda: [result.copy()], reset=reset,
                     info={"buffers": "host", "algorithm": "ring" if coll != "p2p" else "p2p"})

    def _p2p(self, mode: str, window: int, send: np.ndarray, recv: np.ndarray) -> Any:
        """One call: pingpong, one message each way; uni and bi, one OSU window of `window`
        messages. A send only queues its pieces on the open stream (a thread of grpcio writes
        them), so `window` sends in a row are a true window: uni sends them all, then waits for
        rank 1's ack; rank 1 receives them into one reused buffer, then acks. bi: each rank
        sends while it receives, at most `ahead` messages ahead of its receives (all of the
        window for small messages), so neither inbox holds more than about OUTBOX bytes."""
        if self.size < 2:
            raise UserError("p2p needs at least 2 ranks (ranks 0 and 1 exchange; others wait)")
        if self.rank > 1:
            return lambda: None
        peer, ack = 1 - self.rank, np.zeros(1, np.int8)
        slots = range(window)
        if mode == "pingpong":
            first = self.rank == 0

            def run() -> None:
                if first:
                    self._send(peer, send)
                    self._recv(peer, recv)
                else:
                    self._recv(peer, recv)
                    self._send(peer, send)
        elif mode == "uni":
            if self.rank == 0:
                def run() -> None:
                    for _ in slots:
                        self._send(peer, send)
                    self._recv(peer, ack)
            else:
                def run() -> None:
                    for _ in slots:
                        self._recv(peer, recv)
                    self._send(peer, ack)
        else:
            ahead = max(1, min(window, OUTBOX // max(1, send.nbytes)))

            def run() -> None:
                for i in slots:
                    self._send(peer, send)
                    if i >= ahead - 1:
                        self._recv(peer, recv)
                for _ in range(ahead - 1):
                    self._recv(peer, recv)
        return run


class GrpcBackend(CollectiveBackend):
    model = "grpc"
    package = "grpc"
    extra = "grpc"
    description = "ring collectives over grpcio streams (kernels/collectives/collective.proto)"
    collectives_cls = GrpcCollectives

    def _setup(self) -> None:
        import importlib.util

        if importlib.util.find_spec("grpc_tools") is None:
            raise BackendUnavailable("grpc: the backend compiles collective.proto with "
                                     "grpcio-tools, which is not installed: "
                                     "pip install 'accelbench[grpc]'")
