"""A figure whose definition changed between versions (results.definition): p2p ping-pong
stored per round trip before its latency became OSU's half round trip. The golden file
tests/fixtures/runs/v1/p2p-pingpong-roundtrip.jsonl was written by the code before that change;
runs of today's definition are made from it here (same speed: every sample halved, as today's
runner records a round trip), so compare and history must see no change of speed at all."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.measurement import Measurement
from harness.stats import summarize
from results import definition
from results.history import case_history
from results.runfile import read_run_file
from results.selection import compare_runs
from results.store import Store

GOLDEN = Path(__file__).parent / "fixtures" / "runs" / "v1" / "p2p-pingpong-roundtrip.jsonl"
SMALL = "p2p[mpi:cpu](dtype=float32,mode=pingpong,size=8)"
LARGE = "p2p[mpi:cpu](dtype=float32,mode=pingpong,size=1024)"


def _records() -> list[dict]:
    return [json.loads(line) for line in GOLDEN.read_text().splitlines()]


def _today(m: dict) -> dict:
    """The measurement as today's runner stores the same round trips: per one-way trip."""
    samples = [s / 2 for s in m["samples"]]
    return {**m, "samples": samples, "summary": summarize(samples).to_dict(),
            "timing": {**m["timing"], "units_per_call": 2.0}}


def _run(tmp: Path, day: int, redefine: set[str]) -> Path:
    """A copy of the golden run on another day, the cases in `redefine` as today's."""
    header, *rest = _records()
    header = {**header, "run_id": str(uuid.uuid4()),
              "started_at": f"2026-12-{day:02d}T09:00:00.000000+00:00"}
    rest = [_today(r) if r.get("case_key") in redefine else r for r in rest]
    path = tmp / f"{header['run_id']}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [header, *rest]))
    return path


def _store(tmp: Path, *paths: Path) -> Store:
    st = Store(str(tmp / "bench.db"))
    for p in paths:
        st.ingest(read_run_file(p))
    return st


def test_golden_round_trip_record_has_the_old_definition():
    measurements = [r for r in _records() if r["kind"] == "measurement"]
    assert {m["case_key"] for m in measurements} == {SMALL, LARGE}
    assert all("units_per_call" not in m["timing"] for m in measurements)
    # the round trip: the nccl-tests column (time_s) was already half of it
    assert all(m["metrics"]["time_s"] == pytest.approx(m["summary"]["median"] / 2)
               for m in measurements)
    read = [Measurement.from_dict(m) for m in measurements]
    assert set(definition.definitions(read).values()) == {1.0}


def test_compare_leaves_out_a_case_whose_definition_changed(tmp_path):
    old = GOLDEN
    mixed = _run(tmp_path, 8, {SMALL})  # LARGE still the old way: comparable
    st = _store(tmp_path, old, mixed)
    rc = compare_runs(st, str(old), str(mixed))
    assert [c.case_key for c in rc.comparison.cases] == [LARGE]
    assert rc.comparison.cases[0].ratio == pytest.approx(1.0)
    assert rc.comparison.counts()["regression"] == rc.comparison.counts()["improvement"] == 0
    assert rc.definition_changed == [SMALL] == rc.to_dict()["definition_changed"]
    (line,) = [w for w in rc.warnings if w.startswith("definition changed")]
    assert "BASE's seconds are per timed call, HEAD's per 1/2 timed call" in line
    assert "half the round trip" in line and line.endswith(SMALL)

    today = _run(tmp_path, 9, {SMALL, LARGE})  # nothing measured the same way: say so
    st.ingest(read_run_file(today))
    with pytest.raises(UserError, match="2 measured under another definition"):
        compare_runs(st, str(old), str(today))


def test_history_breaks_at_a_definition_change_without_a_step(tmp_path):
    later = [_run(tmp_path, day, {SMALL, LARGE}) for day in (8, 9, 10)]
    st = _store(tmp_path, GOLDEN, _run(tmp_path, 7, set()), *later)
    hist = case_history(st, SMALL)
    assert len(hist.medians) == 5
    assert hist.medians[2] == pytest.approx(hist.medians[0] / 2)  # same speed, new definition
    assert hist.definition_changes == [2] and 2 in hist.change_points
    assert hist.steps() == []
    assert hist.drift() == pytest.approx(0.0)
    assert hist.to_dict()["definition_changes"] == [{"index": 2, "run_id": hist.run_ids[2]}]


def test_bench_history_says_definition_changed(tmp_path, bench_inproc, workdir):
    paths = [GOLDEN, _run(tmp_path, 7, set()), *(_run(tmp_path, d, {SMALL}) for d in (8, 9))]
    for p in paths:
        assert bench_inproc("ingest", str(p)).rc == 0
    res = bench_inproc("history", SMALL)
    assert res.rc == 0, res.stderr
    rows = [ln for ln in res.stdout.splitlines() if "ms" in ln]
    assert len(rows) == 4 and "definition changed" in rows[2]
    assert not any("step" in row for row in rows)
    text = " ".join(res.stdout.split())
    assert "0 step(s)" in text and "since the definition changed +0.0%" in text
