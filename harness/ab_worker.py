"""One side of `bench ab`: a worker process that runs turns of cases when its parent asks.

The parent (harness.ab) starts this file *by path* with the side's interpreter, so the code under
test — workloads, backends, plugins — is that interpreter's accelbench installation, while the
way turns are timed is the parent's (this file). It speaks JSON lines: one request on stdin, one
reply on stdout. Whatever the code under test prints goes to stderr, never into the replies.

Requests (``op``): ``hello``; ``load`` (plugins, cases, check) prepares and checks every case
once; ``overhead`` (case) times empty timed regions; ``time`` (case, block, samples, max_s) runs
`samples` samples of `block` calls each, every one ending with the backend's synchronisation, and
returns seconds per call, the turn's wall and process CPU time (all threads: how parallel the
case is), and with ``canary`` also the canary time around the turn; ``layouts`` (case, count,
calls, check) prepares the case again up to `count` instances in all (see below) and warms the
first with `calls` calls; ``metrics`` (case, median_s) asks the workload for its extra
metrics; ``close``.

Each process lays out its memory at random: before each case is prepared it keeps a buffer of
random size (1-5 KiB, from the allocator the case's small arrays come from), and the parent gives
it an environment variable of random length. The speed of code can hang on where its data
happens to fall (alignment, cache-set and 4 KiB aliasing: Mytkowicz et al. 2009 moved programs
by several percent through the environment's size alone); measured here, one case in four of a
numpy loop read 2.5% apart between two sides that differed only in one unused environment
variable, in every process of each side. Drawn at random per process, that becomes a difference
between processes, which the parent's pairing of processes sees and allows for, instead of a
"change". Where a case is cheap to prepare, each process also holds several instances of it,
each prepared after a new random buffer, and its turns go through them in rotation: a process's
figure is then an average over layouts, not one draw (measured here: of 12 instances of one numpy
loop in one process, 2-3 read 1-4.6% slower than the rest, each with its output array 32 bytes
past an input modulo 4 KiB).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

PROTOCOL = 1
clock = time.perf_counter_ns
LAYOUT_BYTES = 256 << 20  # resident memory a process may add for more instances, all cases


def _own_path_out() -> None:
    """This file's folder must not shadow top-level modules (it holds config.py, env.py...)."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _canary(loops: int) -> float:
    """Seconds of harness.noise's fixed loop; a turn reports the slower of its canaries before
    and after."""
    t0 = clock()
    s = 0
    for i in range(loops):
        s += i * i
    return (clock() - t0) * 1e-9


def _layout_pad() -> list[bytes]:
    """Objects of random number and size, kept for the process's life: one from the C allocator
    (above the interpreter's small-object limit, where numpy's array data comes from) and some
    from each of the interpreter's small-object size classes (its own objects: closures, cells,
    iterators)."""
    r = os.urandom(64)
    pad = [bytes(1024 + 16 * r[0])]
    for size_class, count in enumerate(r[1:]):  # 63 classes of 8 bytes up to 512 bytes
        pad.extend(bytes(8 * size_class) for _ in range(count % 4))
    return pad


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Worker:
    def __init__(self) -> None:
        # per case: workload, backend, params, prepared (the first instance), instances, sync
        self.cases: list[dict[str, Any]] = []
        self.pads: list[list[bytes]] = []  # see _layout_pad
        self.layout_bytes = 0  # resident memory the extra instances took

    def hello(self, _req: dict[str, Any]) -> dict[str, Any]:
        import harness

        return {"protocol": PROTOCOL, "version": getattr(harness, "__version__", "unknown"),
                "python": sys.version.split()[0], "executable": sys.executable,
                "pid": os.getpid(), "harness_path": os.path.dirname(harness.__file__)}

    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        from harness.backends.base import Backend, parse_backend
        from harness.errors import CheckFailed
        from harness.registry import load_plugin
        from harness.workload import registry

        for plugin in req.get("plugins", []):
            load_plugin(plugin)
        backends: dict[str, Any] = {}
        out = []
        for spec in req["cases"]:
            entry: dict[str, Any] = {"key": spec["key"], "status": "ok", "error": None,
                                     "work": None, "info": {}, "setup_s": None}
            slot: dict[str, Any] = {"prepared": None, "workload": None, "sync": None,
                                    "params": spec["params"], "instances": [], "turn": 0}
            try:
                backend = backends.get(spec["backend"])
                if backend is None:
                    backend = backends[spec["backend"]] = parse_backend(spec["backend"])
                    backend.setup()
                workload = registry.get(spec["workload"])()
                slot["workload"], slot["backend"] = workload, backend
                work = workload.work(spec["params"])
                entry["work"] = {k: getattr(work, k) for k in
                                 ("items", "flops", "bytes", "item_unit")}
                self.pads.append(_layout_pad())
                t0 = time.perf_counter()
                prepared = workload.prepare(backend, spec["params"])
                entry["setup_s"] = time.perf_counter() - t0
                slot["prepared"], slot["instances"] = prepared, [prepared]
                if type(backend).synchronize is not Backend.synchronize:
                    slot["sync"] = backend.synchronize
                if req.get("check", True) and prepared.check is not None:
                    prepared.check()
                entry["info"] = prepared.info or {}
            except CheckFailed as exc:
                entry.update(status="failed", error=f"check failed: {exc}")
            except Exception as exc:  # this side cannot run the case: say so, keep the others
                entry.update(status="failed", error=_describe(exc))
            if entry["status"] != "ok":
                slot["prepared"], slot["instances"] = None, []
            self.cases.append(slot)
            out.append(entry)
        env, git = None, None
        try:
            from pathlib import Path

            import harness
            from harness.env import fingerprint, git_revision

            env = fingerprint([b.describe() for b in backends.values()])
            git = git_revision(Path(harness.__file__).resolve().parent.parent)
        except Exception as exc:  # an older installation: the run says so instead
            env = {"error": f"no environment fingerprint: {_describe(exc)}"}
        return {"cases": out, "env": env, "git": git}

    def _slot(self, req: dict[str, Any]) -> dict[str, Any]:
        slot = self.cases[int(req["case"])]
        if slot["prepared"] is None:
            raise RuntimeError(f"case {req['case']} is not prepared on this side")
        return slot

    def overhead(self, req: dict[str, Any]) -> dict[str, Any]:
        sync = self._slot(req)["sync"]
        costs = []
        for _ in range(200):
            t0 = clock()
            if sync is not None:
                sync(None)
            costs.append(clock() - t0)
        costs.sort()
        resolution = time.get_clock_info("perf_counter").resolution
        return {"overhead_s": max(costs[len(costs) // 2] * 1e-9, resolution)}

    def layouts(self, req: dict[str, Any]) -> dict[str, Any]:
        """More instances of a case, each in a layout of its own, warmed with one call each;
        then `calls` warm-up calls of the first (a process that did not calibrate it)."""
        slot = self._slot(req)
        instances, sync = slot["instances"], slot["sync"]

        def call(prepared: Any) -> None:
            out = prepared.op()
            if sync is not None:
                sync(out)

        for _ in range(int(req.get("calls", 0))):
            call(instances[0])
        largest = 0  # resident memory of the largest extra instance: what the next may take
        while len(instances) < int(req["count"]) and self.layout_bytes + largest < LAYOUT_BYTES:
            before = _resident_bytes()
            if before is None:
                break  # no way to see what an instance costs in memory: keep one
            self.pads.append(_layout_pad())
            prepared = slot["workload"].prepare(slot["backend"], slot["params"])
            if req.get("check", True) and prepared.check is not None:
                prepared.check()
            call(prepared)
            instances.append(prepared)
            grown = max(0, (_resident_bytes() or before) - before)
            largest = max(largest, grown)
            self.layout_bytes += grown
        return {"layouts": len(instances)}

    def time(self, req: dict[str, Any]) -> dict[str, Any]:
        slot = self._slot(req)
        instances = slot["instances"]
        prepared = instances[slot["turn"] % len(instances)]
        slot["turn"] += 1
        op, sync = prepared.op, slot["sync"]
        block, samples = int(req["block"]), int(req["samples"])
        limit_ns = float(req.get("max_s", 1e9)) * 1e9
        loops = int(req.get("canary", 0))
        before = _canary(loops) if loops else None
        out = []
        cpu0 = time.process_time()
        start = clock()
        for _ in range(samples):
            if sync is None and block == 1:
                t0 = clock()
                op()
                out.append((clock() - t0) * 1e-9)
            elif sync is None:
                t0 = clock()
                for _ in range(block):
                    op()
                out.append((clock() - t0) * 1e-9 / block)
            else:
                t0 = clock()
                r = None
                for _ in range(block):
                    r = op()
                sync(r)
                out.append((clock() - t0) * 1e-9 / block)
            if clock() - start > limit_ns:
                break
        wall_s, cpu_s = (clock() - start) * 1e-9, time.process_time() - cpu0
        if req.get("timed"):  # a paired turn: what `after_timing` judges
            timed = slot.setdefault("timed", {})
            timed[id(prepared)] = timed.get(id(prepared), 0) + len(out) * block
        if before is None:
            return {"t": out, "wall_s": wall_s, "cpu_s": cpu_s}
        return {"t": out, "wall_s": wall_s, "cpu_s": cpu_s,
                "canary_s": max(before, _canary(loops))}

    def judge(self, req: dict[str, Any]) -> dict[str, Any]:
        """Whether what each instance timed in paired turns is a valid result (the workload's
        `after_timing`, as `bench run` asks it): {"invalid": why} or {"invalid": None}."""
        from harness.errors import CheckFailed

        slot = self._slot(req)
        timed = slot.get("timed", {})
        for prepared in slot["instances"]:
            n = timed.get(id(prepared), 0)
            if prepared.after_timing is None or n == 0:
                continue
            try:
                prepared.after_timing(n)
            except CheckFailed as exc:
                return {"invalid": f"invalid result: {exc}"}
        return {"invalid": None}

    def metrics(self, req: dict[str, Any]) -> dict[str, Any]:
        slot = self._slot(req)
        extra = slot["workload"].extra_metrics(slot["params"], float(req["median_s"]),
                                               slot["prepared"].info or {})
        return {"metrics": {k: float(v) for k, v in extra.items()}}

    def close(self, _req: dict[str, Any]) -> dict[str, Any]:
        for slot in self.cases:
            for prepared in slot["instances"]:
                if prepared.close is not None:
                    with contextlib.suppress(Exception):  # must not hide results already sent
                        prepared.close()
        return {"closed": True}


def _die_with_parent() -> None:
    """The parent freezes us between requests (SIGSTOP): if it dies, we must not stay frozen."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the parent's close() and kill() still end us
    if os.getppid() == 1:
        sys.exit(3)  # the parent is already gone


def main() -> None:
    _own_path_out()
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the parent decides, and closes us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the code under test prints to stderr, not into the replies
    sys.stdout = sys.stderr
    worker = Worker()

    def reply(obj: dict[str, Any]) -> None:
        replies.write(json.dumps(obj) + "\n")
        replies.flush()

    try:
        import harness  # noqa: F401  (this interpreter's installation)
    except ImportError as exc:
        reply({"error": f"accelbench is not installed for this interpreter ({exc})",
               "kind": "not_installed"})
        sys.exit(3)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        handler = getattr(worker, str(req.get("op")), None)
        if handler is None or str(req.get("op")).startswith("_"):
            reply({"error": f"unknown request {req.get('op')!r}", "kind": "protocol"})
            continue
        try:
            reply({"ok": True, **handler(req)})
        except Exception as exc:
            reply({"error": _describe(exc), "kind": "failed"})
        if req.get("op") == "close":
            break


if __name__ == "__main__":
    main()
