"""A signal to the launching `bench run -n 2 --launcher L`: SIGINT -> 130, SIGTERM -> 143, the
finished cases kept; a signal just after "run complete" -> 0 and one line on stderr.

The signal is sent when a line appears on stderr (never after a fixed sleep). Work in
progress (issue 17 item 2): the local launcher only so far; mpirun, torchrun and the repeated
tries (>= 10 per signal and launcher) are still to come."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

import pytest

from tests.conftest import bench_command

ARGS = ("run", "-w", "spin", "-p", "us=100,200,300", "--budget", "0.3", "--target-ci", "1e-6",
        "--launcher", "local", "-n", "2")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")


def _signal_on_line(cwd, marker: str, sig: int) -> tuple[int, str]:
    """Start the run, send `sig` to the launching bench when `marker` is on stderr."""
    proc = subprocess.Popen([*bench_command(), *ARGS], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        sent = False
        for line in proc.stderr:
            err.append(line)
            if not sent and marker in line:
                proc.send_signal(sig)
                sent = True

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=30)
    return proc.returncode, "".join(err)


def _runs(bench) -> list[tuple[str, int]]:
    res = bench("runs", "--json")
    assert res.rc == 0, res.stderr
    return [(r["status"], r["n_measurements"]) for r in json.loads(res.stdout)]


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_keeps_finished_cases(workdir, bench, sig, code):
    rc, err = _signal_on_line(workdir, "[1/3]", sig)
    assert rc == code, err
    ((status, n),) = _runs(bench)
    assert status == "partial" and n >= 1


@pytest.mark.xfail(reason="issue 17 item 2: rank 0 is killed by the forwarded signal while it "
                   "prints the table, so the launcher gives 128 + signal for a run stored "
                   "complete", strict=False)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_after_run_complete_exits_0_with_a_note(workdir, bench, sig):
    rc, err = _signal_on_line(workdir, "run complete", sig)
    assert _runs(bench) == [("complete", 3)]
    assert rc == 0, err
    assert "came after the run was complete" in err
