"""A launcher's own framed notices, held back where `bench` has already said what they say.

Open MPI's mpirun frames its notices in lines of dashes ("Primary job terminated normally, but
1 process returned a non-zero exit code...", "mpirun noticed that process rank 1 ... exited on
signal 9"). When a rank fails, the launching `bench` has printed one line saying which rank and
why; the frames below it only repeat that, in three more blocks. `NoticeFilter` passes the
launcher's stderr (which carries the ranks' stderr too) through unchanged and at once, except
for framed blocks that hold one of the launcher's `notices`: those are kept, and printed at the
end only when rank 0 never reported (then they are all there is to say what happened). Slurm's
srun says the same in single lines ("srun: error: vm: task 1: Killed", "srun: Force Terminated
StepId=..."): a launcher names the `prefixes` such lines start with, and a line that starts with
one and holds a notice is held the same way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import BinaryIO

FRAME = b"-" * 20  # Open MPI's frame is a line of 74 dashes; 20 tell it from other text


def _is_frame(line: bytes) -> bool:
    text = line.rstrip(b"\r\n")
    return len(text) >= len(FRAME) and text == b"-" * len(text)


class NoticeFilter:
    """Copies `source` (a pipe) to `sink` in a thread, holding the framed blocks that contain
    any of `notices`. `finish(show_held)` waits for the pipe to close and writes the held
    blocks when `show_held` is true."""

    def __init__(self, source: BinaryIO, sink: BinaryIO, notices: Sequence[str],
                 prefixes: Sequence[str] = ()) -> None:
        self.source, self.sink = source, sink
        self.notices = [n.encode() for n in notices]
        self.prefixes = tuple(p.encode() for p in prefixes)
        self.held: list[bytes] = []
        self._line = b""  # the start of a line that may be a frame
        self._block: list[bytes] | None = None  # inside a frame: its lines so far
        self._thread = threading.Thread(target=self._pump, name="launcher-notices", daemon=True)
        self._thread.start()

    def _write(self, data: bytes) -> None:
        if data:
            self.sink.write(data)
            self.sink.flush()

    def _pump(self) -> None:
        fd = self.source.fileno()
        while chunk := os.read(fd, 65536):
            self.feed(chunk)
        self.close()

    def feed(self, chunk: bytes) -> None:
        """Pass `chunk` on, except what may be (or is) a framed notice."""
        out = []
        for piece in (self._line + chunk).splitlines(keepends=True):
            complete = piece.endswith(b"\n")
            if self._block is not None:
                if not complete:
                    self._line = piece
                    break
                self._block.append(piece)
                if _is_frame(piece) and len(self._block) > 1:
                    self._end_block(out)
            elif piece.startswith(b"-") and (FRAME.startswith(piece.rstrip(b"\r\n"))
                                             or _is_frame(piece)):
                if not complete:  # wait for the rest of the line to tell
                    self._line = piece
                    break
                if _is_frame(piece):
                    self._block = [piece]
                else:
                    out.append(piece)
            elif self._may_be_notice_line(piece):
                if not complete:
                    self._line = piece
                    break
                if piece.startswith(self.prefixes) and any(n in piece for n in self.notices):
                    self.held.append(piece)
                else:
                    out.append(piece)
            else:
                out.append(piece)
        else:
            self._line = b""
        self._write(b"".join(out))

    def _may_be_notice_line(self, piece: bytes) -> bool:
        return any(piece.startswith(p) or p.startswith(piece) for p in self.prefixes)

    def _end_block(self, out: list[bytes]) -> None:
        block = b"".join(self._block or ())
        self._block = None
        if any(n in block for n in self.notices):
            self.held.append(block)
        else:
            out.append(block)

    def close(self) -> None:
        """End of the stream: whatever was held as a possible frame goes out."""
        rest = b"".join(self._block or ()) + self._line
        self._block, self._line = None, b""
        self._write(rest)

    def finish(self, show_held: bool, timeout: float = 5.0) -> None:
        self._thread.join(timeout)
        if show_held:
            self._write(b"".join(self.held))
        self.held = []
