"""The launcher's framed notices that repeat rank 0's report are held back; everything else
on its stderr passes through unchanged, in order, however the pipe splits it."""

from __future__ import annotations

import io
import os
import random

import pytest

from cluster.notices import NoticeFilter

FRAME = "-" * 74 + "\n"
PRIMARY = (FRAME + "Primary job  terminated normally, but 1 process returned\n"
           "a non-zero exit code. Per user-direction, the job has been aborted.\n" + FRAME)
NOTICED = FRAME + "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9\n" \
    + FRAME
OTHER = FRAME + "WARNING: There was an error initializing an OpenFabrics device.\n" + FRAME
NOTICES = ("Primary job  terminated normally", "mpirun noticed that process rank")
TEXT = ("[1/2] allreduce  median 3.1 us\n" + PRIMARY + "bench: error: rank 1 died\n" + NOTICED
        + "-- a line of the ranks' own that starts with dashes\n" + OTHER
        + "\r progress 50%\r progress 100%")  # no newline at the end: passed on at the close


def _filtered(chunks: list[bytes], show_held: bool, notices: tuple[str, ...] = NOTICES,
              prefixes: tuple[str, ...] = ()) -> str:
    read, write = os.pipe()
    sink = io.BytesIO()
    with os.fdopen(read, "rb", buffering=0) as source:
        f = NoticeFilter(source, sink, notices, prefixes)
        with os.fdopen(write, "wb", buffering=0) as w:
            for c in chunks:
                w.write(c)
        f.finish(show_held)
    return sink.getvalue().decode()


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), 12))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("seed", range(8))
def test_held_notices_and_everything_else_unchanged(seed):
    data = TEXT.encode()
    got = _filtered(_split(data, random.Random(seed)), show_held=False)
    assert got == TEXT.replace(PRIMARY, "").replace(NOTICED, "")


def test_held_notices_are_shown_when_rank_0_never_reported():
    got = _filtered([TEXT.encode()], show_held=True)
    assert got == TEXT.replace(PRIMARY, "").replace(NOTICED, "") + PRIMARY + NOTICED


def test_an_unclosed_frame_is_passed_on_at_the_end():
    cut = FRAME + "Primary job  terminated normally, but the launcher died mid-notice\n"
    assert _filtered([cut.encode()], show_held=False) == cut


# srun's notices are single lines
SRUN_HELD = ("srun: error: vm: task 1: Killed\n"
             "srun: launch/slurm: _step_signal: Terminating StepId=2586101.0\n"
             "srun: error: vm: task 0: Exited with exit code 3\n"
             "srun: Force Terminated StepId=2586101.0\n"
             "slurmstepd: error: *** STEP 2586101.0 ON vm CANCELLED AT 2026-12-07T10:05:31 ***\n"
             "slurmstepd-vm: error: *** STEP 2586101.0 ON vm CANCELLED AT 2026-12-07T10:05:31 "
             "***\n")
SRUN_TEXT = ("[1/3] allreduce  median 3.1 us\n"
             "bench: error: rank 1 died (connection to it lost) during case x\n"
             + SRUN_HELD.replace("srun: Force", "srun: error: Unable to create step: no room\n"
                                 "srun: Force")
             + "srun: job 7 queued and waiting for resources\n"
             + "sr\n")


def _srun(chunks: list[bytes], show_held: bool) -> str:
    from cluster.launchers import get

    srun = get("srun")
    return _filtered(chunks, show_held, srun.notices, srun.notice_prefixes)


@pytest.mark.parametrize("seed", range(8))
def test_srun_notice_lines_are_held_and_other_srun_lines_kept(seed):
    got = _srun(_split(SRUN_TEXT.encode(), random.Random(seed)), show_held=False)
    want = SRUN_TEXT
    for line in SRUN_HELD.splitlines(keepends=True):
        want = want.replace(line, "", 1)
    assert got == want
    assert "Unable to create step" in got and "rank 1 died" in got and got.endswith("sr\n")


def test_srun_notice_lines_are_shown_when_rank_0_never_reported():
    got = _srun([SRUN_TEXT.encode()], show_held=True)
    assert all(line in got for line in SRUN_HELD.splitlines())
