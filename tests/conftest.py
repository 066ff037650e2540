"""Shared fixtures: a temporary working folder, an environment without BENCH_* settings, and a
runner for the real `bench` console script (a subprocess, exactly as a user starts it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

BENCH_ENV = ("BENCH_STORE", "BENCH_RUN_DIR")
# The store and server that the `bench serve` tests share (tests/serve_store.py).
pytest_plugins = ["serve_store"]


def bench_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m harness`."""
    script = Path(sys.executable).with_name("bench")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("bench")
    return [found] if found else [sys.executable, "-m", "harness"]


class Result(NamedTuple):
    rc: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def assert_user_error(res: Result, *needles: str) -> str:
    """One clear line, exit 2, no traceback; returns the line."""
    assert res.rc == 2, (res.rc, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = res.err_lines
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("bench: error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under folder with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch,
                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees (or leaks to a subprocess) the user's store or run folder settings, nor
    reads or writes the user's OpenCL tuning cache (one of the session's own instead)."""
    for name in BENCH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BENCH_TUNE_CACHE",
                       str(tmp_path_factory.getbasetemp() / "opencl-tune-cache.json"))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty current directory (./bench.db and ./bench-runs land here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_bench(cwd: Path, *args: str, timeout: float = 120,
              env: dict[str, str] | None = None) -> Result:
    """Run the real `bench ARGS...` in `cwd` and wait: Result(rc, stdout, stderr)."""
    proc = subprocess.run(
        [*bench_command(), *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def bench_at() -> Callable[..., Result]:
    """bench_at(cwd, *args, timeout=120, env=None): `bench` in a given folder (for fixtures
    wider than one test)."""
    return run_bench


@pytest.fixture
def bench(workdir: Path) -> Callable[..., Result]:
    """Run `bench ARGS...` in the temp dir: bench("run", "-w", "spin") -> Result(rc, out, err)."""

    def run(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Result:
        return run_bench(cwd or workdir, *args, timeout=timeout, env=env)

    return run


@pytest.fixture
def bench_inproc(workdir: Path, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """`bench ARGS...` through harness.cli.main in this process (fast: no interpreter start),
    in the temp dir: bench_inproc("run", "-w", "nope") -> Result(rc, out, err)."""
    from harness.cli import main

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        try:
            main(list(args))
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            for name in env or {}:
                monkeypatch.delenv(name)
        out, err = capsys.readouterr()
        return Result(rc, out, err)

    return run


@pytest.fixture
def bench_popen(workdir: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `bench ARGS...` in the temp dir without waiting (for signal tests)."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([*bench_command(), *args], cwd=workdir, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:  # never leave a child running
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.fixture(scope="session")
def spin_run() -> Callable[..., Any]:
    """run_spin as a fixture: spin_run(store, run_dir, us=(10, 100)) -> RunResult."""
    return run_spin


def run_spin(store: Any, run_dir: Path, us: Sequence[float] = (10.0, 100.0),
             budget: float = 0.2, tags: dict[str, str] | None = None) -> Any:
    """A tiny real run through harness.runner.execute, in this process; returns its RunResult."""
    from harness.config import PlannedCase, expand
    from harness.progress import ProgressReporter
    from harness.runner import execute
    from harness.timing import TimingPolicy

    policy = TimingPolicy(budget=budget, warmup_budget=0.05, target_ci=0.05)
    cases = expand(["spin"], None, {"us": [str(u) for u in us]}, "test")
    plan = [PlannedCase(c, policy) for c in cases]
    return execute(plan, store, run_dir, ProgressReporter(quiet=True), tags=tags,
                   argv=["bench", "run", "-w", "spin"])


def _header(run_id: str | None = None, started_at: str = "2024-01-01T00:00:00.000000+00:00",
            **extra: Any) -> dict[str, Any]:
    import socket
    import uuid

    env = {"host": "test-host", "cpu": {"model": "test"}}
    return {"run_id": run_id or str(uuid.uuid4()), "started_at": started_at,
            "command": "bench run -w spin", "suite": None, "tags": {}, "git": None,
            "slurm_job_id": None, "host": socket.gethostname(), "pid": None,
            "harness_version": "0.1.0", "env_hash": "0123456789abcdef", "env": env, **extra}


def _measurement(us: float = 100.0, n: int = 20) -> dict[str, Any]:
    """A synthetic finished spin measurement with n raw samples around `us` microseconds."""
    from harness.stats import summarize

    samples = [us * 1e-6 * (1 + 0.001 * i) for i in range(n)]
    return {"case_key": f"spin[numpy:cpu](us={us})", "workload": "spin",
            "backend": "numpy:cpu", "params": {"us": us}, "status": "ok", "error": None,
            "work": {"items": 1}, "summary": summarize(samples).to_dict(),
            "metrics": {"latency_s": samples[n // 2]}, "timing": {"stop_reason": "budget"},
            "info": {}, "samples": samples, "device_samples": None,
            "started_at": "2024-01-01T00:00:00+00:00", "finished_at": "2024-01-01T00:00:01+00:00"}


@pytest.fixture
def make_header() -> Callable[..., dict[str, Any]]:
    """make_header(run_id=None, started_at=..., **extra): a run file header (pid None: dead)."""
    return _header


@pytest.fixture
def make_measurement() -> Callable[..., dict[str, Any]]:
    """make_measurement(us=100.0, n=20): a synthetic finished measurement record."""
    return _measurement
