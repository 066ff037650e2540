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


def _filtered(chunks: list[bytes], show_held: bool) -> str:
    read, write = os.pipe()
    sink = io.BytesIO()
    with os.fdopen(read, "rb", buffering=0) as source:
        f = NoticeFilter(source, sink, NOTICES)
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
