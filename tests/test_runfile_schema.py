"""Run files are checked against their schema on every ingest: a bad file is one line naming the
file, the line and what is wrong, exit 2 from `bench ingest`, and nothing of it is stored; a read
that ingests the run folder by the way skips it with one warning line."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from results.runfile import PART, RunFileWriter, read_run_file
from results.runfile_schema import SCHEMA_PATH, problem, schema

GOLDEN = Path(__file__).parent / "fixtures" / "runs" / "v2" / "spin.jsonl"
TABLES = ("runs", "measurements", "samples", "cases", "environments")

Lines = list[str]


def _edit(line: int, change: Callable[[dict], None]) -> Callable[[Lines], Lines]:
    """A mutation of the golden file: `change` applied to the record on `line` (1-based)."""

    def apply(lines: Lines) -> Lines:
        record = json.loads(lines[line - 1])
        change(record)
        return [*lines[: line - 1], json.dumps(record), *lines[line:]]

    return apply


def _text(line: int, old: str, new: str) -> Callable[[Lines], Lines]:
    """A mutation at the text level (what json.dumps would not write)."""

    def apply(lines: Lines) -> Lines:
        assert old in lines[line - 1]
        return [*lines[: line - 1], lines[line - 1].replace(old, new, 1), *lines[line:]]

    return apply


def _set(*path: str, value: object) -> Callable[[dict], None]:
    def change(record: dict) -> None:
        for key in path[:-1]:
            record = record[key]
        record[path[-1]] = value

    return change


def _median(lines: Lines) -> str:
    return repr(json.loads(lines[1])["summary"]["median"])


# name: (mutation of the golden file's lines, whether it keeps a trailing newline,
#        line the message names (None: the file alone), words the message holds)
BAD = {
    "summary not an object": (_edit(2, _set("summary", value="abc")), True, 2,
                              ["summary", "'abc'", "object"]),
    "integer run id": (_edit(1, _set("run_id", value=12345)), True, 1, ["run_id", "string"]),
    "NaN median": (lambda ls: _text(2, f'"median":{_median(ls)}', '"median":NaN')(ls), True, 2,
                   ["NaN"]),
    "'nan' median": (_edit(2, _set("summary", "median", value="nan")), True, 2,
                     ["summary.median", "number"]),
    "huge median": (lambda ls: _text(2, f'"median":{_median(ls)}', '"median":1e999')(ls), True,
                    2, ["1e999", "out of range"]),
    "header then a truncated line": (lambda ls: [ls[0], ls[1][:80]], False, 2, ["truncated"]),
    "finished file without its end": (lambda ls: ls[:2], True, 2, ["no end record"]),
    "missing case key": (_edit(2, lambda r: r.pop("case_key")), True, 2, ["case_key"]),
    "unknown status": (_edit(2, _set("status", value="great")), True, 2, ["status", "great"]),
    "sample not a number": (_edit(3, lambda r: r["samples"].__setitem__(5, "fast")), True, 3,
                            ["samples[5]", "'fast'"]),
    "unknown end status": (_edit(4, _set("status", value="done")), True, 4, ["status", "done"]),
    "record after the end": (lambda ls: [*ls, ls[1]], True, 5, ["after the end"]),
    "unknown record kind": (_edit(3, _set("kind", value="note")), True, 3, ["kind", "note"]),
    "second header": (lambda ls: [ls[0], ls[0], *ls[1:]], True, 2, ["second run header"]),
    "line not an object": (lambda ls: [ls[0], "[1, 2]", *ls[1:]], True, 2, ["JSON object"]),
    "started_at too long": (_edit(1, _set("started_at", value="x" * 40)), True, 1,
                            ["started_at", "too long"]),
    "stored run id, other figures": (
        _edit(2, lambda r: r["summary"].__setitem__("median", r["summary"]["median"] * 2)),
        True, None, ["run id", "already", "bench.db", "case 1"]),
    "stored run id, another start": (_edit(1, _set("started_at", value="2030-01-01T00:00:00")),
                                     True, None, ["run id", "already", "bench.db", "started_at"]),
}


@pytest.fixture
def stored(workdir: Path, bench_inproc) -> Path:
    """./bench.db holding the golden run; returns the folder where bad files are put."""
    shutil.copyfile(GOLDEN, workdir / "golden.jsonl")
    res = bench_inproc("ingest", "golden.jsonl")
    assert (res.rc, res.stdout.strip()) == (0, "1 added"), res.stderr
    (workdir / "golden.jsonl").unlink()
    (workdir / "incoming").mkdir()
    return workdir / "incoming"


def _write_bad(folder: Path, name: str, mutate: Callable[[Lines], Lines], newline: bool) -> Path:
    lines = mutate(GOLDEN.read_text().splitlines())
    path = folder / name
    path.write_text("\n".join(lines) + ("\n" if newline else ""))
    return path


def _store_state(db: Path) -> tuple[str, dict[str, int]]:
    with sqlite3.connect(db) as conn:
        counts = {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}
    return hashlib.sha256(db.read_bytes()).hexdigest(), counts


def _one_line(stderr: str, prefix: str) -> str:
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(prefix), lines[0]
    return lines[0]


@pytest.mark.parametrize("mutate,newline,line,words", BAD.values(), ids=BAD.keys())
def test_bench_ingest_refuses_a_bad_run_file(bench, workdir, stored, mutate, newline, line,
                                             words):
    path = _write_bad(stored, "bad.jsonl", mutate, newline)
    before = _store_state(workdir / "bench.db")

    res = bench("ingest", str(path.relative_to(workdir)))  # the real console script

    assert res.rc == 2, (res.stdout, res.stderr)
    message = _one_line(res.stderr, "bench: error: incoming/bad.jsonl")
    where = f"incoming/bad.jsonl:{line}: " if line is not None else "incoming/bad.jsonl: "
    assert message.startswith(f"bench: error: {where}"), message
    for word in words:
        assert word in message, (word, message)
    assert _store_state(workdir / "bench.db") == before


@pytest.mark.parametrize("mutate,newline,line,words", BAD.values(), ids=BAD.keys())
def test_a_read_skips_a_bad_run_file_with_one_warning(bench_inproc, workdir, stored, mutate,
                                                      newline, line, words):
    run_dir = workdir / "bench-runs"
    run_dir.mkdir()
    _write_bad(run_dir, "bad.jsonl", mutate, newline)
    before = _store_state(workdir / "bench.db")

    res = bench_inproc("runs", "--json")

    assert res.rc == 0, res.stderr
    message = _one_line(res.stderr, "bench: warning: skipped bench-runs/bad.jsonl")
    assert all(word in message for word in words), message
    assert len(res.json()) == 1  # the stored run is still listed
    assert _store_state(workdir / "bench.db") == before


def test_good_files_beside_a_bad_one_are_stored(bench_inproc, workdir, stored,
                                                make_header, make_measurement):
    w = RunFileWriter(stored, make_header())
    w.append(make_measurement())
    w.finish("complete", "2024-01-01T00:00:01+00:00")
    _write_bad(stored, "bad.jsonl", *BAD["summary not an object"][:2])

    res = bench_inproc("ingest", "incoming")

    assert res.rc == 2
    assert res.stdout.strip() == "1 added, 1 rejected"
    _one_line(res.stderr, "bench: error: incoming/bad.jsonl:2: ")
    assert _store_state(workdir / "bench.db")[1]["runs"] == 2


def test_a_conflict_in_one_folder_names_both_files(bench_inproc, workdir):
    folder = workdir / "runs"
    folder.mkdir()
    shutil.copyfile(GOLDEN, folder / "a.jsonl")
    mutate, newline, _, _ = BAD["stored run id, other figures"]
    _write_bad(folder, "b.jsonl", mutate, newline)

    res = bench_inproc("ingest", "runs")

    assert res.rc == 2
    message = _one_line(res.stderr, "bench: error: runs/b.jsonl: ")
    run_id = json.loads(GOLDEN.read_text().splitlines()[0])["run_id"]
    assert run_id in message and "runs/a.jsonl" in message
    (run,) = bench_inproc("runs", "--json").json()
    assert run["run_id"] == run_id


def test_a_killed_writers_part_file_still_ingests_as_partial(bench_inproc, workdir):
    """The one place a torn last line is expected: the writer died mid-line."""
    lines = GOLDEN.read_text().splitlines()
    (workdir / f"run{PART}").write_text("\n".join([lines[0], lines[1], lines[2][:80]]))

    res = bench_inproc("ingest", f"run{PART}")

    assert (res.rc, res.stdout.strip(), res.stderr) == (0, "1 added", "")
    (run,) = bench_inproc("runs", "--json").json()
    assert (run["status"], run["n_measurements"]) == ("partial", 1)


def test_a_header_and_a_torn_line_in_a_part_file_is_an_empty_partial_run(tmp_path):
    lines = GOLDEN.read_text().splitlines()
    path = tmp_path / f"run{PART}"
    path.write_text(f"{lines[0]}\n{lines[1][:80]}")
    rec = read_run_file(path)
    assert (rec.status, rec.measurements) == ("partial", [])


def test_an_older_copy_of_a_stored_run_changes_nothing(bench_inproc, workdir, stored):
    lines = GOLDEN.read_text().splitlines()
    (stored / f"early{PART}").write_text("\n".join(lines[:2]) + "\n")  # before case 2 ended
    before = _store_state(workdir / "bench.db")
    res = bench_inproc("ingest", f"incoming/early{PART}")
    assert (res.rc, res.stdout.strip(), res.stderr) == (0, "1 unchanged", "")
    assert _store_state(workdir / "bench.db") == before


def test_the_writer_writes_what_the_schema_allows(tmp_path, make_header, make_measurement):
    failed = {**make_measurement(), "status": "failed", "error": "boom", "summary": None,
              "metrics": {}, "samples": None}
    w = RunFileWriter(tmp_path, make_header(tags={"branch": "main"}))
    w.append(make_measurement())
    w.append(failed)
    path = w.finish("failed", "2024-01-01T00:00:01+00:00")
    for line in path.read_text().splitlines():
        assert problem(json.loads(line)) is None


def test_the_schema_file_is_a_valid_json_schema():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    assert SCHEMA_PATH.is_file()
    validator = Draft202012Validator(schema())
    for line in GOLDEN.read_text().splitlines():  # the whole schema, samples included
        assert list(validator.iter_errors(json.loads(line))) == []
