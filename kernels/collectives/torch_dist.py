"""`gloo` and `nccl`: torch.distributed process groups (rank and world size from the launcher,
rendezvous at MASTER_ADDR:MASTER_PORT). Gloo runs on CPU tensors, NCCL on CUDA tensors.

Gloo binds to the interface named by GLOO_SOCKET_IFNAME, else to the address the host name
resolves to, which on many nodes is loopback or an address the other nodes cannot reach. Unless
the user set it, each rank sets it to the interface on its route to rank 0 (MASTER_ADDR), and the
run records which interface and why (`describe`).

torch.distributed's all_reduce and broadcast work in place; the out-of-place allreduce copies the
input into the output first (recorded as `out_of_place: copy+in-place`)."""

from __future__ import annotations

import datetime
import os
from typing import Any

import numpy as np

from harness.backends.torch import cuda_uuid
from harness.distributed import DEFAULT_TIMEOUT, ENV_TIMEOUT, free_port
from harness.errors import BackendUnavailable, UserError
from harness.netif import interface_toward
from harness.placement import placement
from kernels.collectives.base import (
    Bound,
    CollectiveBackend,
    Collectives,
    Supports,
    out_count,
    page_aligned,
)

# what gloo and nccl can do (read by the workloads' validation and `bench list`): everything
SUPPORTED = Supports()
IFNAME_ENV = "GLOO_SOCKET_IFNAME"


def gloo_interface(master_addr: str, environ: Any = os.environ) -> dict[str, str]:
    """Choose Gloo's interface (see the module docstring), setting IFNAME_ENV in `environ` where
    the user did not; what the run records about the choice."""
    if environ.get(IFNAME_ENV):
        return {"gloo_socket_ifname": environ[IFNAME_ENV],
                "gloo_socket_ifname_from": f"{IFNAME_ENV} set by the user"}
    found = interface_toward(master_addr)
    if found is None:
        return {"gloo_socket_ifname_from": f"not set: no IPv4 route to MASTER_ADDR "
                                           f"{master_addr}; Gloo uses the host name's address"}
    name, local = found
    environ[IFNAME_ENV] = name
    return {"gloo_socket_ifname": name,
            "gloo_socket_ifname_from": f"the route to MASTER_ADDR {master_addr} (local {local})"}


class TorchDistCollectives(Collectives):
    def __init__(self, backend: TorchDistBackend) -> None:
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        where = placement()
        self.rank, self.size, self.local = where.rank, where.world_size, [where.rank]
        self.device = torch.device(backend.torch_device)
        self.interface: dict[str, str] = {}
        if not dist.is_initialized():
            addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
            port = os.environ.get("MASTER_PORT")
            if port is None:
                if self.size > 1:
                    raise UserError(f"{backend.model}: MASTER_ADDR/MASTER_PORT are not set; start "
                                    "the ranks with `bench run --launcher ... -n N`")
                port = str(free_port())
            # Our watchdog (--timeout) ends a stuck job first; this is the backstop.
            limit = float(os.environ.get(ENV_TIMEOUT) or DEFAULT_TIMEOUT) + 30
            self.interface = backend.before_init(addr)
            dist.init_process_group(backend.model, init_method=f"tcp://{addr}:{port}",
                                    rank=self.rank, world_size=self.size,
                                    timeout=datetime.timedelta(seconds=limit),
                                    **backend.init_options(self.device))
        self.transport = backend
        self.backend_name = backend.model
        R = dist.ReduceOp
        self.ops = {"sum": R.SUM, "prod": R.PRODUCT, "max": R.MAX, "min": R.MIN}

    def barrier(self) -> None:
        self.transport.barrier(self.dist, self.device)

    def allreduce_inplace(self, buf: Any) -> None:
        tensor = self.torch.from_numpy(buf) if isinstance(buf, np.ndarray) else buf
        self.dist.all_reduce(tensor)

    def describe(self) -> dict[str, Any]:
        return {"torch": self.torch.__version__, "world_size": self.size, **self.interface,
                **self.transport.facts(self.device)}

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()

    def prepare(self, coll: str, inputs: list[np.ndarray], *, op: str, root: int,
                in_place: bool, mode: str, window: int = 1) -> Bound:
        torch, dist, n = self.torch, self.dist, self.size
        x = inputs[0]
        count = x.size if coll != "allgather" else x.size * n
        src = torch.from_numpy(x.copy()).to(self.device)
        if self.device.type == "cpu":  # where the collective reads and writes host memory
            send = torch.from_numpy(page_aligned(x))
            recv = torch.from_numpy(page_aligned(np.zeros(out_count(coll, count, n), x.dtype)))
        else:
            send = src.clone()
            recv = torch.zeros(out_count(coll, count, n), dtype=send.dtype, device=self.device)
        rop = self.ops[op]
        info: dict[str, Any] = {"buffers": self.device.type}

        def reset() -> None:
            send.copy_(src)
            if in_place or coll == "broadcast":
                recv.copy_(src)

        if coll == "allreduce":
            if in_place:
                run = lambda: dist.all_reduce(recv, rop)  # noqa: E731
            else:
                info["out_of_place"] = "copy+in-place"

                def run() -> None:
                    recv.copy_(send)
                    dist.all_reduce(recv, rop)
        elif coll == "allgather":
            # torch >= 2.10 names them *_single; the *_tensor names are deprecated there
            gather = getattr(dist, "all_gather_single", dist.all_gather_into_tensor)
            run = lambda: gather(recv, send)  # noqa: E731
        elif coll == "reduce-scatter":
            scatter = getattr(dist, "reduce_scatter_single", dist.reduce_scatter_tensor)
            run = lambda: scatter(recv, send, rop)  # noqa: E731
        elif coll == "broadcast":
            run = lambda: dist.broadcast(recv, root)  # noqa: E731
        elif coll == "reduce":
            info["out_of_place"] = "copy+in-place"

            def run() -> None:
                if not in_place:
                    recv.copy_(send)
                dist.reduce(recv, root, rop)
        elif coll == "alltoall":
            run = lambda: dist.all_to_all_single(recv, send)  # noqa: E731
        elif coll == "p2p":
            run = self._p2p(mode, window, send, recv)
        else:
            raise UserError(f"{self.backend_name} has no collective {coll!r}")
        reset()
        return Bound(run=run, results=lambda: [recv.cpu().numpy()], reset=reset, info=info)

    def _p2p(self, mode: str, window: int, send: Any, recv: Any) -> Any:
        """One call: pingpong, one message each way; uni and bi, one OSU window of `window`
        messages posted together (batch_isend_irecv: one NCCL group), receives into one reused
        tensor; uni ends with rank 1's ack, as osu_bw does."""
        dist, rank = self.dist, self.rank
        if self.size < 2:
            raise UserError("p2p needs at least 2 ranks (ranks 0 and 1 exchange; others wait)")
        if rank > 1:
            return lambda: None
        peer = 1 - rank
        ack = self.torch.zeros(1, dtype=self.torch.int8, device=self.device)

        def exchange(ops: list[Any]) -> None:
            for req in dist.batch_isend_irecv(ops):
                req.wait()

        if mode == "pingpong":
            if rank == 0:
                def run() -> None:
                    dist.send(send, peer)
                    dist.recv(recv, peer)
            else:
                def run() -> None:
                    dist.recv(recv, peer)
                    dist.send(send, peer)
        elif mode == "uni":
            if rank == 0:
                sends = [dist.P2POp(dist.isend, send, peer) for _ in range(window)]

                def run() -> None:
                    exchange(sends)
                    dist.recv(ack, peer)
            else:
                recvs = [dist.P2POp(dist.irecv, recv, peer) for _ in range(window)]

                def run() -> None:
                    exchange(recvs)
                    dist.send(ack, peer)
        else:  # bi: both directions at once, receives posted first
            ops = ([dist.P2POp(dist.irecv, recv, peer) for _ in range(window)]
                   + [dist.P2POp(dist.isend, send, peer) for _ in range(window)])

            def run() -> None:
                exchange(ops)
        return run


class TorchDistBackend(CollectiveBackend):
    package = "torch"
    extra = "torch"
    collectives_cls = TorchDistCollectives
    torch_device = "cpu"

    def _setup(self) -> None:
        import torch.distributed as dist

        if not dist.is_available():
            raise BackendUnavailable(f"{self.model}: this torch build has no torch.distributed")

    # What differs between torch.distributed's transports, asked by TorchDistCollectives.
    def before_init(self, master_addr: str) -> dict[str, str]:
        """Set up what the transport needs before init_process_group; facts to record."""
        return {}

    def init_options(self, device: Any) -> dict[str, Any]:
        """Extra keyword arguments of init_process_group."""
        return {}

    def barrier(self, dist: Any, device: Any) -> None:
        dist.barrier()

    def facts(self, device: Any) -> dict[str, Any]:
        """The transport's versions and device, for the environment record."""
        return {}


class GlooBackend(TorchDistBackend):
    model = "gloo"
    devices = ("cpu",)
    description = "torch.distributed with Gloo (CPU tensors, TCP)"

    def _setup(self) -> None:
        super()._setup()
        import torch.distributed as dist

        if not dist.is_gloo_available():
            raise BackendUnavailable("gloo: this torch build has no Gloo")

    def before_init(self, master_addr: str) -> dict[str, str]:
        return gloo_interface(master_addr)


class NcclBackend(TorchDistBackend):
    model = "nccl"
    devices = ("cuda",)
    description = "torch.distributed with NCCL (CUDA tensors; one GPU per rank)"

    def _setup(self) -> None:
        super()._setup()
        import torch
        import torch.distributed as dist

        if not torch.cuda.is_available():
            raise BackendUnavailable(
                f"nccl: no CUDA device is visible (torch {torch.__version__}, "
                f"{torch.version.cuda or 'a CPU-only build'}); NCCL needs GPUs — use gloo on CPUs")
        if not dist.is_nccl_available():
            raise BackendUnavailable("nccl: this torch build has no NCCL")
        where = placement()
        index = int(self.device.split(":")[1]) if ":" in self.device else where.local_rank
        if index >= torch.cuda.device_count():
            raise BackendUnavailable(f"nccl: local rank {where.local_rank} has no GPU of its own "
                                     f"({torch.cuda.device_count()} visible)")
        torch.cuda.set_device(index)
        self.torch_device = f"cuda:{index}"

    def gpu_index(self) -> int | None:
        return int(self.torch_device.split(":")[1]) if ":" in self.torch_device else 0

    def gpu_uuid(self) -> str | None:
        return cuda_uuid(self.torch_device)

    def init_options(self, device: Any) -> dict[str, Any]:
        return {"device_id": device}  # binds the communicator to this rank's GPU at init

    def barrier(self, dist: Any, device: Any) -> None:
        import torch

        dist.barrier(device_ids=[device.index or 0])
        torch.cuda.synchronize(device)

    def facts(self, device: Any) -> dict[str, Any]:
        import torch

        return {"nccl": ".".join(map(str, torch.cuda.nccl.version())),
                "device_name": torch.cuda.get_device_name(device)}

    def synchronize(self, result: Any = None) -> None:
        import torch

        torch.cuda.synchronize()
