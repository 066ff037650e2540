"""A pytest plugin for the `bench serve` tests: one store filled by real `bench run`s, and a
real `bench serve` over it on a free loopback port, shared by the tests of a session.

The store: a case measured by five runs (three of one build, then two of a build 30% slower
run with another MALLOC_ARENA_MAX, so the history has a step and an environment change, and a
compare of the first with the last has a regression), and one STREAM run (other metrics, a
roofline, profiled: a trace). Every run carries a tag with a <script> and one with quotes and
a newline.

A second store (`cluster`) holds real multi-rank runs: one allreduce size sweep over MPI and
Gloo at 2 ranks (mpirun), and a scaling series of one case at 1 and 2 ranks (`--ranks 1,2`,
profiled: one trace per run)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN = str(Path(__file__).parent / "fixtures" / "plugins" / "mylib.py")
CASE = "mylib-op[numpy:cpu](us=200.0)"
N_CASE_RUNS = 5
INJECTED = "<script>window.__pwned=1</script>"
QUOTED = "x\"y'z\nnext line"


@dataclass
class ServedStore:
    db: Path
    url: str
    proc: subprocess.Popen[str]
    run_ids: list[str]  # newest first
    case_run_ids: list[str]  # the case's runs, oldest first
    stream_run_id: str


def _run(bench_at: Callable[..., object], cwd: Path, *args: str,
         env: dict[str, str] | None = None) -> str:
    r = bench_at(cwd, "run", *args, "--budget", "0.2", "-q", "--json", "--tag",
                 f"note={INJECTED}", "--tag", f"label={QUOTED}", env=env)
    assert r.rc == 0, r.stderr  # type: ignore[attr-defined]
    return str(r.json()["run_id"])  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory,
           bench_at: Callable[..., object]) -> Iterator[ServedStore]:
    from conftest import bench_command

    pytest.importorskip("fastapi", reason="pip install 'accelbench[web]'")
    work = tmp_path_factory.mktemp("serve")
    db = work / "bench.db"
    case_runs = []
    for i in range(N_CASE_RUNS):
        slow = i >= 3
        env = {"MYLIB_SLOWDOWN": "1.3" if slow else "1.0"}
        if slow:
            env["MALLOC_ARENA_MAX"] = "2"
        case_runs.append(_run(bench_at, work, "--plugin", PLUGIN, "-w", "mylib-op", "-p",
                              "us=200", "--tag", f"phase={'slow' if slow else 'fast'}",
                              env=env))
    stream = _run(bench_at, work, "-w", "stream", "-b", "numpy:cpu", "-p", "n=65536",
                  "--profile", "--profile-iters", "1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    proc = subprocess.Popen([*bench_command(), "serve", "--store", str(db), "--port", "0"],
                            cwd=work, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    if not line or "http://" not in line[0]:
        proc.kill()
        pytest.fail(f"bench serve did not start: {line} {proc.stderr.read()[-2000:]}")
    url = line[0].split(" on ", 1)[1].split()[0]
    ids = [stream, *reversed(case_runs)]
    try:
        yield ServedStore(db, url, proc, ids, case_runs, stream)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


SWEEP_SIZES = (1024, 4096, 16384, 65536)  # -p size=1KiB..64KiB*4
SCALING_CASE = "spin[numpy:cpu](us=100.0)"


@dataclass
class ClusterStore:
    db: Path
    run_dir: Path
    sweep_run_id: str | None  # None where mpirun, mpi4py or torch is missing
    scaling_run_ids: list[str]  # 1 rank, then 2


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            bench_at: Callable[..., object]) -> ClusterStore:
    import importlib.util
    import shutil

    from results.store import RunFilter, Store

    work = tmp_path_factory.mktemp("serve-cluster")
    fast = ("--budget", "0.1", "--target-ci", "0.05", "-q")

    def run(*args: str) -> None:
        r = bench_at(work, "run", *args, *fast, timeout=180)
        assert r.rc == 0, r.stderr  # type: ignore[attr-defined]

    have = (shutil.which("mpirun") and importlib.util.find_spec("mpi4py")
            and importlib.util.find_spec("torch"))
    if have:
        run("-w", "allreduce", "-b", "mpi,gloo", "-p", "size=1KiB..64KiB*4", "--launcher",
            "mpirun", "-n", "2", "--tag", "series=sweep")
    run("-w", "spin", "-p", "us=100", "--ranks", "1,2", "--profile", "--profile-iters", "2",
        "--tag", "series=scaling")
    store = Store(str(work / "bench.db"), create=False)
    _, sweep = store.find_runs(RunFilter(tags=(("series", "sweep"),)))
    _, scaling = store.find_runs(RunFilter(tags=(("series", "scaling"),)))
    ranks = {m.run_id: int(m.metrics.get("world_size") or 1)
             for m in store.measurements([r.run_id for r in scaling])}
    by_ranks = sorted(scaling, key=lambda r: ranks[r.run_id])
    return ClusterStore(work / "bench.db", work / "bench-runs",
                        sweep[0].run_id if sweep else None,
                        [r.run_id for r in by_ranks])
