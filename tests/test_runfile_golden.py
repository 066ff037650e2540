"""Golden run files (tests/fixtures/runs/v<N>/): every format a released accelbench wrote keeps
loading, and the store shows exactly the figures the file holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from results.runfile import FORMAT_VERSION, PART, read_run_file
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
