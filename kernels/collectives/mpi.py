"""`mpi`: MPI collectives through mpi4py on numpy buffers, or on GPU buffers (torch CUDA tensors)
when the MPI library is CUDA-aware — detected with MPIX_Query_cuda_support and recorded."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.errors import BackendUnavailable, UserError
from harness.placement import placement
from kernels.collectives.base import (
    Bound,
    CollectiveBackend,
    Collectives,
    Supports,
    in_count,
    out_count,
    page_aligned,
)

# what this backend can do (read by the workloads' validation and `bench list`): everything
SUPPORTED = Supports()


def cuda_aware(MPI: Any) -> bool | None:
    """Whether the MPI library can read and write GPU memory (None: it cannot tell)."""
    query = getattr(MPI, "Query_cuda_support", None)
    if query is None:
        return None
    try:
        return bool(query())
    except Exception:
        return None


class MpiCollectives(Collectives):
    def __init__(self, backend: MpiBackend) -> None:
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.size, self.rank = self.comm.Get_size(), self.comm.Get_rank()
        where = placement()
        if self.size != where.world_size:
            raise UserError(
                f"mpi: MPI sees {self.size} rank(s) but the launcher started "
                f"{where.world_size} ({where.launcher}); start MPI ranks with --launcher mpirun "
                "(or srun); with MPICH set MPI4PY_MPIABI=mpich")
        self.local = [self.rank]
        self.cuda = backend.device.startswith("cuda")
        self.cuda_aware = cuda_aware(MPI)
        if self.cuda and not self.cuda_aware:
            raise BackendUnavailable(
                f"mpi:{backend.device}: this MPI ({MPI.Get_library_version().splitlines()[0]}) "
                "is not CUDA-aware, so it cannot use GPU buffers; use mpi:cpu or nccl:cuda")
        self.ops = {"sum": MPI.SUM, "prod": MPI.PROD, "max": MPI.MAX, "min": MPI.MIN}

    def barrier(self) -> None:
        self.comm.Barrier()

    def allreduce_inplace(self, buf: Any) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, self.MPI.SUM)

    def describe(self) -> dict[str, Any]:
        MPI = self.MPI
        return {"mpi_library": MPI.Get_library_version().strip().splitlines()[0],
                "mpi_standard": "{}.{}".format(*MPI.Get_version()),
                "cuda_aware": self.cuda_aware, "world_size": self.size}

    def _buf(self, host: np.ndarray) -> Any:
        if not self.cuda:
            return page_aligned(host)
        import torch

        return torch.from_numpy(host.copy()).cuda()

    def _host(self, buf: Any) -> np.ndarray:
        return buf if isinstance(buf, np.ndarray) else buf.cpu().numpy()

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def prepare(self, coll: str, inputs: list[np.ndarray], *, op: str, root: int,
                in_place: bool, mode: str, window: int = 1) -> Bound:
        MPI, comm, n = self.MPI, self.comm, self.size
        x = inputs[0]
        count = x.size if coll != "allgather" else x.size * n
        send = self._buf(x)
        recv = self._buf(np.zeros(out_count(coll, count, n), x.dtype))
        assert in_count(coll, count, n) == x.size
        mop = self.ops[op]
        place = MPI.IN_PLACE

        def reset() -> None:
            if self.cuda:
                send.copy_(self._buf(x))
                if in_place or coll == "broadcast":
                    recv.copy_(send)
            else:
                send[...] = x
                if in_place or coll == "broadcast":
                    recv[...] = x
            self._sync()

        if coll == "allreduce":
            run = ((lambda: comm.Allreduce(place, recv, mop)) if in_place
                   else (lambda: comm.Allreduce(send, recv, mop)))
        elif coll == "allgather":
            run = lambda: comm.Allgather(send, recv)  # noqa: E731
        elif coll == "reduce-scatter":
            run = lambda: comm.Reduce_scatter_block(send, recv, mop)  # noqa: E731
        elif coll == "broadcast":
            run = lambda: comm.Bcast(recv, root)  # noqa: E731
        elif coll == "reduce":
            if in_place:
                run = lambda: comm.Reduce(place if self.rank == root else recv, recv, mop, root)  # noqa: E731
            else:
                run = lambda: comm.Reduce(send, recv, mop, root)  # noqa: E731
        elif coll == "alltoall":
            run = lambda: comm.Alltoall(send, recv)  # noqa: E731
        elif coll == "p2p":
            run = self._p2p(mode, window, send, recv)
        else:
            raise UserError(f"mpi has no collective {coll!r}")
        reset()
        return Bound(run=run, results=lambda: [self._host(recv)], reset=reset,
                     info={"buffers": "cuda" if self.cuda else "host"})

    def _p2p(self, mode: str, window: int, send: Any, recv: Any) -> Any:
        """One call: pingpong, one message each way; uni and bi, one OSU window (osu_bw: rank 0
        posts `window` Isend and waits, rank 1 posts `window` Irecv into one reused buffer,
        waits, and acks; osu_bibw: both ranks post `window` Irecv and `window` Isend)."""
        MPI, comm, rank = self.MPI, self.comm, self.rank
        if self.size < 2:
            raise UserError("p2p needs at least 2 ranks (ranks 0 and 1 exchange; others wait)")
        if rank > 1:
            return lambda: None
        peer = 1 - rank
        ack = np.zeros(1, np.int8)
        waitall = MPI.Request.Waitall
        slots = range(window)
        if mode == "pingpong":
            if rank == 0:
                def run() -> None:
                    comm.Send(send, peer, 1)
                    comm.Recv(recv, peer, 2)
            else:
                def run() -> None:
                    comm.Recv(recv, peer, 1)
                    comm.Send(send, peer, 2)
        elif mode == "uni":
            if rank == 0:
                def run() -> None:
                    waitall([comm.Isend(send, peer, 1) for _ in slots])
                    comm.Recv(ack, peer, 3)
            else:
                def run() -> None:
                    waitall([comm.Irecv(recv, peer, 1) for _ in slots])
                    comm.Send(ack, peer, 3)
        else:  # bi: both directions at once, receives posted first
            def run() -> None:
                reqs = [comm.Irecv(recv, peer, 1) for _ in slots]
                reqs += [comm.Isend(send, peer, 1) for _ in slots]
                waitall(reqs)
        return run


class MpiBackend(CollectiveBackend):
    model = "mpi"
    package = "mpi4py"
    extra = "mpi"
    devices = ("cpu", "cuda")
    description = "MPI collectives via mpi4py (ranks from mpirun/srun; CUDA-aware MPI on cuda)"
    # No synchronize(): MPI calls return when the buffers are done, GPU buffers included.
    collectives_cls = MpiCollectives
    needs_mpi_world = True

    def _setup(self) -> None:
        # mpi4py initialises MPI when imported: that waits for the first collective's prepare,
        # so that a launching `bench` checks its input without becoming an MPI process.
        if self.device.startswith("cuda"):
            import importlib.util

            if importlib.util.find_spec("torch") is None:
                raise BackendUnavailable("mpi:cuda uses torch CUDA tensors as buffers: "
                                         "pip install 'accelbench[torch]'")
            import torch

            if not torch.cuda.is_available():
                raise BackendUnavailable(
                    f"mpi:{self.device}: no CUDA device is visible (torch {torch.__version__}); "
                    "use mpi:cpu")
