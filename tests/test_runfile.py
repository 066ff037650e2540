"""Run files: what the writer writes, the reader reads back, even after a writer was killed."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest

from harness.errors import UserError
from results.ingest import ingest_paths
from results.runfile import (
    FORMAT_VERSION,
    PART,
    SUFFIX,
    RunFileWriter,
    dumps,
    find_run_files,
    read_run_file,
    writer_alive,
)


def test_round_trip(tmp_path, make_header, make_measurement):
    header = make_header(tags={"branch": "main"})
    m1, m2 = make_measurement(10.0), make_measurement(1000.0, n=7)
    w = RunFileWriter(tmp_path, header)
    assert w.part == tmp_path / f"{header['run_id']}{PART}"
    assert w.part.exists() and not w.final.exists()
    w.append(m1)
    w.append(m2)
    path = w.finish("complete", "2024-01-01T00:00:02+00:00")
    assert path == tmp_path / f"{header['run_id']}{SUFFIX}"
    assert path.exists() and not w.part.exists()

    rec = read_run_file(path)
    assert rec.run_id == header["run_id"]
    assert rec.status == "complete"
    assert rec.finished_at == "2024-01-01T00:00:02+00:00"
    assert rec.path == path
    assert rec.header["format_version"] == FORMAT_VERSION and rec.format_version == FORMAT_VERSION
    assert rec.header["tags"] == {"branch": "main"}
    assert rec.header["env"] == header["env"]
    assert "kind" not in rec.header
    assert rec.measurements == [m1, m2]
    assert all("kind" not in m for m in rec.measurements)


def test_each_record_is_one_json_line(tmp_path, make_header, make_measurement):
    w = RunFileWriter(tmp_path, make_header())
    w.append(make_measurement())
    path = w.finish("complete", "t")
    lines = path.read_text().splitlines()
    assert [json.loads(ln)["kind"] for ln in lines] == ["run", "measurement", "end"]


def test_non_finite_floats_survive(tmp_path, make_header, make_measurement):
    m = make_measurement()
    m["metrics"] = {"a": math.inf, "b": -math.inf, "c": math.nan}
    w = RunFileWriter(tmp_path, make_header())
    w.append(m)
    rec = read_run_file(w.finish("complete", "t"))
    got = {k: float(v) for k, v in rec.measurements[0]["metrics"].items()}
    assert got["a"] == math.inf and got["b"] == -math.inf and math.isnan(got["c"])


def test_writer_refuses_to_overwrite_a_run(tmp_path, make_header):
    header = make_header()
    RunFileWriter(tmp_path, header)
    with pytest.raises((FileExistsError, UserError)):
        RunFileWriter(tmp_path, header)


def test_writer_creates_the_folder(tmp_path, make_header):
    w = RunFileWriter(tmp_path / "a" / "b", make_header())
    assert w.part.parent.is_dir()


def _killed_part(tmp_path: Path, header: dict, measurements: list[dict], torn: str) -> Path:
    """A .part file as a writer killed outright leaves it: no end record, a torn last line."""
    w = RunFileWriter(tmp_path, header)
    for m in measurements:
        w.append(m)
    w._fh.write(torn)  # half a record, never finished: the kill hit mid-write
    w._fh.flush()
    w._fh.close()  # the process is gone; nothing renamed the file
    return w.part


def test_part_file_after_a_kill_is_partial(tmp_path, make_header, make_measurement):
    ms = [make_measurement(10.0), make_measurement(100.0)]
    torn = dumps({"kind": "measurement", **make_measurement(1000.0)})[:57]
    part = _killed_part(tmp_path, make_header(), ms, torn)
    assert part.name.endswith(PART)

    rec = read_run_file(part)
    assert rec.status == "partial"
    assert rec.finished_at is None
    assert len(rec.measurements) == 2
    assert rec.measurements == ms


def test_part_file_without_torn_line_is_partial(tmp_path, make_header, make_measurement):
    part = _killed_part(tmp_path, make_header(), [make_measurement()], "")
    rec = read_run_file(part)
    assert rec.status == "partial" and len(rec.measurements) == 1


def test_header_only_part_file(tmp_path, make_header):
    part = _killed_part(tmp_path, make_header(), [], '{"kind":"meas')
    rec = read_run_file(part)
    assert rec.status == "partial" and rec.measurements == []


def test_dead_writer_part_is_ingested_as_partial(tmp_path, make_header, make_measurement):
    from results.store import Store

    header = make_header(pid=2**22 + 12345)  # above pid_max's default: no such process
    part = _killed_part(tmp_path / "runs", header, [make_measurement(), make_measurement(5.0)],
                        '{"kind":')
    assert not writer_alive(read_run_file(part).header)
    st = Store(str(tmp_path / "bench.db"))
    assert ingest_paths(st, [tmp_path / "runs"]) == {"added": 1}
    (row,) = st.runs()
    assert row.status == "partial" and row.n_measurements == 2


def test_live_writer_part_is_left_alone(tmp_path, make_header, make_measurement):
    from results.store import Store

    header = make_header(pid=os.getpid(), host=socket.gethostname())
    _killed_part(tmp_path / "runs", header, [make_measurement()], "")
    st = Store(str(tmp_path / "bench.db"))
    assert ingest_paths(st, [tmp_path / "runs"]) == {"running": 1}
    assert st.runs() == []


def test_corrupt_middle_line_names_file_and_line(tmp_path, make_header, make_measurement):
    w = RunFileWriter(tmp_path, make_header())
    w.append(make_measurement())
    w.append(make_measurement(5.0))
    path = w.finish("complete", "t")
    lines = path.read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]  # line 3 of 4 is broken, the end record follows
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as exc:
        read_run_file(path)
    assert f"{path}:3" in str(exc.value)
    assert "corrupt" in str(exc.value)


def test_not_a_run_file(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"hello": "world"}\n{"kind": "measurement"}\n')
    with pytest.raises(UserError, match="not an accelbench run file"):
        read_run_file(path)


def test_empty_file_is_not_a_run_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(UserError, match="not an accelbench run file"):
        read_run_file(path)


def test_binary_file_is_a_user_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(UserError, match=str(path)):
        read_run_file(path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read run file"):
        read_run_file(tmp_path / "nope.jsonl")


def test_newer_format_is_refused(tmp_path, make_header):
    path = tmp_path / "future.jsonl"
    header = {"kind": "run", **make_header(), "format_version": FORMAT_VERSION + 1}
    path.write_text(dumps(header) + "\n" + dumps({"kind": "end", "status": "complete"}) + "\n")
    with pytest.raises(UserError, match="newer") as exc:
        read_run_file(path)
    assert "upgrade" in str(exc.value)


def test_find_run_files(tmp_path, make_header):
    RunFileWriter(tmp_path, make_header()).finish("complete", "t")
    RunFileWriter(tmp_path, make_header())  # still running: a .part
    (tmp_path / "other.txt").write_text("x")
    found = find_run_files([tmp_path])
    assert len(found) == 2
    assert sum(p.name.endswith(PART) for p in found) == 1
    assert find_run_files([found[0]]) == [found[0]]
    with pytest.raises(UserError, match="no such run file"):
        find_run_files([tmp_path / "missing"])
