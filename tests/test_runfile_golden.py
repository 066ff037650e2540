"""Golden run files (tests/fixtures/runs/v<N>/): every format a released accelbench wrote keeps
loading, reads into a `Run` that writes the same records back, and the store shows exactly the
figures the file holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.measurement import Measurement
from harness.run import Run
from results.runfile import FORMAT_VERSION, PART, RunFileWriter, jsonable, read_run_file
from results.schema import SUMMARY_COLUMNS
from results.store import Store

RUNS = Path(__file__).parent / "fixtures" / "runs"
GOLDEN = sorted(p for p in RUNS.glob("v*/*") if p.name.endswith((".jsonl", PART)))


def _plain(path: Path) -> tuple[dict, list[dict], dict | None]:
    """The file read with nothing but json: header, measurements, end record."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    ends = [r for r in records if r["kind"] == "end"]
    return records[0], [r for r in records if r["kind"] == "measurement"], \
        ends[0] if ends else None


def _number(value):
    return None if value is None else float(value)  # "inf" and "-inf" as written


def test_there_is_a_golden_file_of_every_format():
    versions = {int(p.parent.name.removeprefix("v")) for p in GOLDEN}
    assert versions == set(range(1, FORMAT_VERSION + 1))
    assert any(p.name.endswith(PART) for p in GOLDEN)


@pytest.mark.parametrize("golden", GOLDEN, ids=[f"{p.parent.name}/{p.name}" for p in GOLDEN])
def test_golden_file_ingests_and_shows_its_figures(golden, workdir, bench_inproc):
    path = workdir / golden.name
    shutil.copyfile(golden, path)
    header, measurements, end = _plain(path)
    assert read_run_file(path).format_version == int(golden.parent.name.removeprefix("v"))

    first = bench_inproc("ingest", path.name)
    assert (first.rc, first.stdout.strip(), first.stderr) == (0, "1 added", "")
    again = bench_inproc("ingest", path.name)
    assert (again.rc, again.stdout.strip()) == (0, "1 unchanged")

    shown = bench_inproc("show", header["run_id"], "--json")
    assert shown.rc == 0, shown.stderr
    run = shown.json()
    assert run["status"] == (end["status"] if end else "partial")
    assert run["started_at"] == header["started_at"]
    assert run["tags"] == header["tags"]
    assert run["n_measurements"] == len(measurements)
    assert len(run["measurements"]) == len(measurements)
    for got, want in zip(run["measurements"], measurements, strict=True):
        assert (got["case_key"], got["status"], got["error"]) == \
            (want["case_key"], want["status"], want["error"])
        assert got["params"] == want["params"]
        if want["status"] != "ok":
            assert got["summary"]["median"] is None
            continue
        for column in SUMMARY_COLUMNS:
            assert _number(got["summary"][column]) == _number(want["summary"][column]), column
        assert {k: _number(v) for k, v in got["metrics"].items()} == \
            {k: _number(v) for k, v in want["metrics"].items()}
        assert got["info"] == want["info"]
        assert got["timing"] == want["timing"]
    samples = Store(str(workdir / "bench.db")).case_samples(header["run_id"])
    assert {k: v.tolist() for k, v in samples.items()} == \
        {m["case_key"]: m["samples"] for m in measurements if m["status"] == "ok"}


@pytest.mark.parametrize("golden", GOLDEN, ids=[f"{p.parent.name}/{p.name}" for p in GOLDEN])
def test_golden_file_reads_into_a_run_that_writes_back_the_same_records(golden):
    header, measurements, end = _plain(golden)
    run = read_run_file(golden).run
    assert isinstance(run, Run) and all(isinstance(m, Measurement) for m in run.measurements)
    assert run.run_id == header["run_id"] and run.version == int(golden.parent.name[1:])
    assert jsonable(run.to_dict()) == {k: v for k, v in header.items() if k != "kind"}
    assert [jsonable(m.to_dict()) for m in run.measurements] == \
        [{k: v for k, v in m.items() if k != "kind"} for m in measurements]
    assert (run.status, run.finished_at) == \
        ((end["status"], end["finished_at"]) if end else ("partial", None))


def test_a_run_the_writer_writes_again_is_the_same_file(tmp_path):
    golden = RUNS / f"v{FORMAT_VERSION}" / "spin.jsonl"
    run = read_run_file(golden).run
    writer = RunFileWriter(tmp_path, run)
    for m in run.measurements:
        writer.append(m)
    assert run.finished_at is not None
    written = writer.finish(run.status, run.finished_at)
    assert [json.loads(line) for line in written.read_text().splitlines()] == \
        [json.loads(line) for line in golden.read_text().splitlines()]


def test_header_fields_a_newer_writer_adds_are_kept_and_an_older_ones_lack_is_not_filled():
    header, _, _ = _plain(RUNS / "v1" / "spin-rounds.jsonl")
    assert "store" not in header  # format 1 had no store field
    run = Run.from_dict({**header, "provenance": {"by": "a later accelbench"}})
    assert run.extra == {"format": 1, "provenance": {"by": "a later accelbench"}}
    assert "store" not in run.to_dict() and "format_version" not in run.to_dict()
    assert run.to_dict()["provenance"] == {"by": "a later accelbench"}
