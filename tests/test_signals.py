"""A run killed by a signal keeps every finished measurement and is marked `partial`.

Each test starts a real `bench run` of several spin cases that each use their whole budget
(--target-ci far below what a spin can reach), waits until the first case is in the run file,
then signals it."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from results.runfile import PART

CASES = ["1000", "1001", "1002", "1003", "1004", "1005"]
ARGS = ("run", "-w", "spin", "-p", "us=" + ",".join(CASES), "--budget", "0.5",
        "--target-ci", "0.00001", "--quiet", "--json")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")


def _measurement_lines(part: Path) -> int:
    n = 0
    for line in part.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a torn last line
            n += json.loads(line).get("kind") == "measurement"
    return n


def start_and_wait(bench_popen, workdir: Path, want: int = 1,
                   timeout: float = 60) -> tuple[subprocess.Popen[str], Path]:
    """Start the run; return once its .part file holds `want` measurements."""
    proc = bench_popen(*ARGS)
    deadline = time.monotonic() + timeout
    run_dir = workdir / "bench-runs"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        parts = list(run_dir.glob(f"*{PART}")) if run_dir.is_dir() else []
        if parts and _measurement_lines(parts[0]) >= want:
            return proc, parts[0]
        time.sleep(0.02)
    raise AssertionError("the run never wrote a measurement")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_keeps_finished_cases(bench, bench_popen, workdir, sig, code):
    proc, part = start_and_wait(bench_popen, workdir)
    run_id = part.name[: -len(PART)]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err

    # The run file is finished (renamed, with its end record) and says partial.
    assert not part.exists()
    final = workdir / "bench-runs" / f"{run_id}.jsonl"
    assert final.is_file()
    end = json.loads(final.read_text().splitlines()[-1])
    assert end["kind"] == "end" and end["status"] == "partial"

    printed = json.loads(out)  # --json still reports what was kept
    assert printed["run_id"] == run_id and printed["status"] == "partial"

    res = bench("show", "latest", "--json")
    assert res.rc == 0, res.stderr
    shown = res.json()
    assert shown["run_id"] == run_id
    assert shown["status"] == "partial"
    done = shown["measurements"]
    assert 1 <= len(done) < len(CASES)
    assert len(done) == len(printed["measurements"])
    for m, us in zip(done, CASES, strict=False):
        assert m["status"] == "ok"
        assert m["params"] == {"us": float(us)}
        assert m["summary"]["n"] >= 10
        assert 0.5 * float(us) * 1e-6 < m["summary"]["median"] < 20 * float(us) * 1e-6
        # a spin is exact enough that a quiet machine can meet even this target
        assert m["timing"]["stop_reason"] in ("budget", "ci_target")

    (row,) = bench("runs", "--json").json()
    assert (row["status"], row["n_measurements"]) == ("partial", len(done))


def test_sigkill_leaves_part_file_that_is_recovered(bench, bench_popen, workdir):
    proc, part = start_and_wait(bench_popen, workdir)
    run_id = part.name[: -len(PART)]
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert part.exists()  # nothing renamed it, nothing ingested it
    written = _measurement_lines(part)
    assert 1 <= written < len(CASES)
    assert not (workdir / "bench-runs" / f"{run_id}.jsonl").exists()

    res = bench("runs", "--json")  # every reading command syncs the run folder first
    assert res.rc == 0, res.stderr
    (row,) = res.json()
    assert row["run_id"] == run_id
    assert row["status"] == "partial"
    assert row["n_measurements"] == written  # at most the case in flight is lost

    shown = bench("show", run_id[:8], "--json").json()
    assert shown["status"] == "partial"
    assert [m["params"] for m in shown["measurements"]] == [
        {"us": float(us)} for us in CASES[:written]]

    # Reading again changes nothing; an explicit ingest agrees.
    assert bench("ingest", "bench-runs").stdout.strip() == "1 unchanged"
    assert len(bench("runs", "--json").json()) == 1


def test_second_signal_while_saving_does_not_lose_the_run(bench, bench_popen, workdir):
    proc, _ = start_and_wait(bench_popen, workdir)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    (row,) = bench("runs", "--json").json()
    assert row["status"] == "partial" and row["n_measurements"] >= 1


def test_signal_at_the_end_of_a_write_keeps_result_and_file_in_step(tmp_path, monkeypatch,
                                                                    spin_run):
    """A signal held back while a measurement is written lands just after the write: the run's
    result (what `bench run --json` prints) must hold every measurement the file holds."""
    import os

    from results.runfile import RunFileWriter, read_run_file
    from results.store import Store

    original = RunFileWriter.append

    def append_then_signal(self, measurement):
        original(self, measurement)
        os.kill(os.getpid(), signal.SIGTERM)  # delivered as this returns

    monkeypatch.setattr(RunFileWriter, "append", append_then_signal)
    st = Store(str(tmp_path / "bench.db"))
    result = spin_run(st, tmp_path / "runs", us=(10.0, 20.0, 30.0), budget=0.05)
    assert (result.status, result.exit_code) == ("partial", 143)
    stored = read_run_file(result.path).measurements
    assert len(stored) == 1
    assert [m.case_key for m in result.measurements] == [m["case_key"] for m in stored]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(
        signal.getsignal(signal.SIGTERM))  # the handler was put back


CHAINED = '''
import signal

from harness import Param, Work, workload
from harness.exiting import Interrupted


@workload("chained", params={"fail": Param("int", 0, "1: fail as a signal leaves a lock")},
          work=lambda p: Work(items=1))
def chained(backend, fail):
    """With fail=1 its op fails as library code does when a signal's exception lands inside
    it (queue.get's lock half-released): its own error, chained from the Interrupted."""
    def op():
        if fail:
            try:
                raise Interrupted(signal.SIGINT)
            except Interrupted:
                raise RuntimeError("release unlocked lock") from None
    return op
'''


def test_an_error_raised_by_a_signal_is_the_signal(bench, workdir):
    """An error that library code raised while a SIGINT's exception passed through it is the
    SIGINT: exit 130, the finished case kept, one line (before: the case failed, exit 1; with
    ranks, a rank failure, exit 3)."""
    (workdir / "chained.py").write_text(CHAINED)
    res = bench("run", "--plugin", "chained.py", "-w", "chained", "-p", "fail=0,1",
                "--budget", "0.2", "-q")
    assert res.rc == 130, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("bench: interrupted (SIGINT); finished cases kept (run "), line
    (row,) = bench("runs", "--json").json()
    assert (row["status"], row["n_measurements"]) == ("partial", 1)
