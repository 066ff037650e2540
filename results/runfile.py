"""Run files: one self-contained JSON-lines file per run, the only thing ranks write.

The writer appends each finished measurement and fsyncs it, under `<run_id>.jsonl.part`; when the
run ends (complete, failed or interrupted) it writes an end record and renames the file to
`<run_id>.jsonl`. A writer killed outright leaves the `.part` file, whose finished measurements a
reader still recovers (the run is then `partial`). A torn last line is ignored.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError

FORMAT = 1
SUFFIX = ".jsonl"
PART = ".jsonl.part"


def jsonable(value: Any) -> Any:
    """JSON has no inf/nan: store them as strings that read back as floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(jsonable(record), separators=(",", ":"), allow_nan=False)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a record is written, so a signal never tears a line."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class RunFileWriter:
    def __init__(self, directory: Path, header: dict[str, Any]) -> None:
        self.run_id = header["run_id"]
        self.part = directory / f"{self.run_id}{PART}"
        self.final = directory / f"{self.run_id}{SUFFIX}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.part, "x", encoding="utf-8")  # noqa: SIM115 (lives with the run)
        except OSError as exc:
            raise UserError(f"cannot write run files in {directory}: {exc.strerror}; "
                            "choose another --run-dir") from None
        self._write({"kind": "run", "format": FORMAT, **header})

    def _write(self, record: dict[str, Any]) -> None:
        with _signals_deferred():
            self._fh.write(dumps(record) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def append(self, measurement: dict[str, Any]) -> None:
        self._write({"kind": "measurement", **measurement})

    def finish(self, status: str, finished_at: str) -> Path:
        self._write({"kind": "end", "status": status, "finished_at": finished_at})
        with _signals_deferred():
            self._fh.close()
            os.replace(self.part, self.final)
        return self.final

    def abandon(self) -> Path:
        """After a write failed (a full disk): close the file without an end record and return
        its path. It stays a `.part` file whose finished measurements a reader recovers (a
        torn last line is ignored); nothing more is written to it."""
        # The unwritten tail is dropped; close() closes the file descriptor even when it fails.
        with _signals_deferred(), contextlib.suppress(OSError):
            self._fh.close()
        return self.part


@dataclass
class RunRecord:
    """A run as read back from its file."""

    header: dict[str, Any]
    measurements: list[dict[str, Any]] = field(default_factory=list)
    status: str = "partial"
    finished_at: str | None = None
    path: Path | None = None

    @property
    def run_id(self) -> str:
        return str(self.header["run_id"])


def writer_alive(header: dict[str, Any]) -> bool:
    """True when the process that writes this `.part` file still runs on this host."""
    import socket

    if header.get("host") != socket.gethostname() or not header.get("pid"):
        return False
    try:
        os.kill(int(header["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{int(header['pid'])}/stat")
    try:  # a zombie (not yet reaped) is gone as far as we are concerned
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_run_file(path: Path) -> RunRecord:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read run file {path}: {exc}") from None
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # torn last line from a killed writer: that case is lost, nothing else
            raise UserError(f"{path}:{i + 1}: run file is corrupt (not JSON)") from None
    if not records or records[0].get("kind") != "run" or "run_id" not in records[0]:
        raise UserError(f"{path}: not an accelbench run file (no run header)")
    header = {k: v for k, v in records[0].items() if k not in ("kind",)}
    if header.get("format", 0) > FORMAT:
        raise UserError(f"{path}: run file format {header['format']} is newer than this "
                        "accelbench understands; upgrade accelbench")
    rec = RunRecord(header=header, path=path)
    for r in records[1:]:
        if r.get("kind") == "measurement":
            rec.measurements.append({k: v for k, v in r.items() if k != "kind"})
        elif r.get("kind") == "end":
            rec.status, rec.finished_at = r["status"], r.get("finished_at")
    return rec


def find_run_files(paths: list[Path]) -> list[Path]:
    """Run files named directly or found in the given directories (finished and `.part`)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(p.glob(f"*{SUFFIX}")))
            found.extend(sorted(p.glob(f"*{PART}")))
        elif p.is_file():
            found.append(p)
        else:
            raise UserError(f"no such run file or directory: {p}")
    return found
