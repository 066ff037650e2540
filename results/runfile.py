"""Run files: one self-contained JSON-lines file per run, the only thing ranks write.

The writer appends each finished measurement and fsyncs it, under `<run_id>.jsonl.part`; when the
run ends (complete, failed or interrupted) it writes an end record and renames the file to
`<run_id>.jsonl`. A writer killed outright leaves the `.part` file, whose finished measurements a
reader still recovers (the run is then `partial`); a torn last line of a `.part` file is ignored.

The reader checks every line against the run file's JSON Schema (results.runfile_schema) and
refuses a file that breaks it with one line naming the file, the line and what is wrong.
Format versions: 1 wrote `"format": 1` in the header, 2 writes `"format_version": 2`; both read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.measurement import Measurement
from harness.run import Run

FORMAT_VERSION = 2
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
    """Writes one run's file: `run`'s header now, each measurement as it finishes, the end.

    A header or measurement given as a mapping is a record as the file holds it."""

    def __init__(self, directory: Path, run: Run | Mapping[str, Any]) -> None:
        run = run if isinstance(run, Run) else Run.from_dict(run)
        self.run_id = run.run_id
        self.part = directory / f"{self.run_id}{PART}"
        self.final = directory / f"{self.run_id}{SUFFIX}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.part, "x", encoding="utf-8")  # noqa: SIM115 (lives with the run)
        except OSError as exc:
            raise UserError(f"cannot write run files in {directory}: {exc.strerror}; "
                            "choose another --run-dir") from None
        header = run.to_dict()
        header.pop("format_version", None)  # the version is this writer's, whoever read the run
        self._write({"kind": "run", "format_version": FORMAT_VERSION, **header})

    def _write(self, record: dict[str, Any]) -> None:
        with _signals_deferred():
            self._fh.write(dumps(record) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def append(self, measurement: Measurement | Mapping[str, Any]) -> None:
        record = (measurement.to_dict() if isinstance(measurement, Measurement)
                  else measurement)
        self._write({"kind": "measurement", **record})

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
    """A run as read back from its file (or made from another tool's file), and that file."""

    run: Run
    path: Path | None = None

    @classmethod
    def from_records(cls, header: Mapping[str, Any], measurements: Iterable[Mapping[str, Any]],
                     status: str, finished_at: str | None = None,
                     path: Path | None = None) -> RunRecord:
        """A run from its records as a run file holds them (another tool's, converted)."""
        run = Run.from_dict(header)
        run.measurements = [Measurement.from_dict(m) for m in measurements]
        run.status, run.finished_at = status, finished_at
        return cls(run, path)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def format_version(self) -> int:
        return self.run.version

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def finished_at(self) -> str | None:
        return self.run.finished_at

    @property
    def header(self) -> dict[str, Any]:
        """The header record as the file holds it (without its `kind`)."""
        return jsonable(self.run.to_dict())

    @property
    def measurements(self) -> list[dict[str, Any]]:
        """The measurement records as the file holds them (without their `kind`)."""
        return [jsonable(m.to_dict()) for m in self.run.measurements]


def writer_alive(header: Mapping[str, Any]) -> bool:
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


class BadRunFile(UserError):
    """A run file that cannot be stored as it is; says which file (and line) and why."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        self.path, self.reason, self.line = path, reason, line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(_one_line(f"{where}: {reason}"))


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class _NotFinite(ValueError):
    pass


def _constant(name: str) -> float:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text} is out of range for a number")
    return value


def _parse(line: str) -> Any:
    """Strict JSON: no NaN or Infinity (the writer never writes them: see `jsonable`)."""
    return json.loads(line, parse_constant=_constant, parse_float=_finite)


def read_run_file(path: Path) -> RunRecord:
    """The run a file holds; BadRunFile (a UserError) for a file that breaks the schema."""
    from results.runfile_schema import problem

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UserError(f"cannot read run file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BadRunFile(path, "not an accelbench run file (not UTF-8 text)") from None
    lines = text.splitlines()
    part = path.name.endswith(PART)
    rec: RunRecord | None = None
    ended = False
    for number, line in enumerate(lines, start=1):
        try:
            record = _parse(line)
        except _NotFinite as exc:
            raise BadRunFile(path, f"run file is invalid: {exc}", number) from None
        except (ValueError, RecursionError):
            if number == len(lines) and not text.endswith("\n"):
                if part and rec is not None:
                    break  # torn last line from a killed writer: that case is lost, nothing else
                raise BadRunFile(path, "run file is corrupt: truncated record (not complete "
                                 "JSON)", number) from None
            raise BadRunFile(path, "run file is corrupt (not JSON)", number) from None
        if rec is None:
            rec = _header(path, record)
            continue
        if not isinstance(record, dict):
            raise BadRunFile(path, "run file is invalid: a line must be a JSON object", number)
        if ended:
            raise BadRunFile(path, "run file is invalid: a record after the end record", number)
        wrong = problem(record) if record.get("kind") != "run" else "a second run header"
        if wrong is not None:
            raise BadRunFile(path, f"run file is invalid: {wrong}", number)
        if record["kind"] == "measurement":
            rec.run.measurements.append(Measurement.from_dict(record))
        else:
            rec.run.status, rec.run.finished_at = record["status"], record.get("finished_at")
            ended = True
    if rec is None:
        raise BadRunFile(path, "not an accelbench run file (no run header)")
    if not ended and not part:  # only a .part file (its writer killed) may lack its end
        raise BadRunFile(path, "run file is truncated: no end record (a finished run file "
                         "ends with one)", len(lines))
    return rec


def _header(path: Path, record: Any) -> RunRecord:
    from results.runfile_schema import problem

    if not isinstance(record, dict) or record.get("kind") != "run":
        raise BadRunFile(path, "not an accelbench run file (no run header)")
    version = record.get("format_version", record.get("format", 1))
    if type(version) is not int:  # bool is not a version
        raise BadRunFile(path, f"run file is invalid: format version {version!r} is not an "
                         "integer", 1)
    if version > FORMAT_VERSION:
        raise BadRunFile(path, f"run file format {version} is newer than this accelbench "
                         f"understands ({FORMAT_VERSION}); upgrade accelbench")
    wrong = problem(record)
    if wrong is not None:
        raise BadRunFile(path, f"run file is invalid: {wrong}", 1)
    return RunRecord(Run.from_dict(record), path=path)


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
