"""Measurements as values: one to_dict/from_dict that reads every golden run file's records
back unchanged, and one place where summaries and metrics are derived."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.measurement import Measurement, TimingRecord, figures
from harness.stats import summarize
from harness.workload import make_case
from harness.workload import registry as workloads
from results.runfile import PART, jsonable, read_run_file

RUNS = Path(__file__).parent / "fixtures" / "runs"
GOLDEN = sorted(p for p in RUNS.glob("v*/*") if p.name.endswith((".jsonl", PART)))


def _records(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "kind"} for r in lines
            if r["kind"] == "measurement"]


def _without_nones(d: dict) -> dict:
    """A record without keys whose value is None (a reader sees no difference)."""
    return {k: _without_nones(v) if k == "timing" and isinstance(v, dict) else v
            for k, v in d.items() if v is not None}


@pytest.mark.parametrize("golden", GOLDEN, ids=[f"{p.parent.name}/{p.name}" for p in GOLDEN])
def test_every_golden_record_reads_back_and_writes_the_same_record(golden):
    records = _records(golden)
    assert records
    for rec in records:
        m = Measurement.from_dict(rec)
        assert m.case_key == rec["case_key"] and m.ok == (rec["status"] == "ok")
        if m.ok:
            assert m.summary is not None and m.timing is not None
            assert m.summary.median == float(rec["summary"]["median"])
            assert m.timing.stop_reason == rec["timing"]["stop_reason"]
        again = jsonable(m.to_dict())
        assert _without_nones(again) == _without_nones(rec)
        assert again.get("timing") == rec.get("timing")  # exactly: what the store keeps
        assert list(again)[:7] == list(rec)[:7]  # the run file's order of the first fields


def test_fields_a_newer_writer_adds_are_kept():
    rec = _records(RUNS / "v2" / "spin.jsonl")[0]
    newer = {**rec, "provenance": {"by": "a later accelbench"},
             "timing": {**rec["timing"], "clock": "tsc"}}
    m = Measurement.from_dict(newer)
    assert m.extra == {"provenance": {"by": "a later accelbench"}}
    assert m.timing is not None and m.timing.extra == {"clock": "tsc"}
    assert jsonable(m.to_dict()) == newer


def test_a_real_run_file_holds_exactly_the_runs_measurements(spin_run, tmp_path):
    result = spin_run(None, tmp_path, us=(5.0, 20.0), budget=0.05)
    stored = read_run_file(result.path).measurements
    assert [Measurement.from_dict(r).to_dict() for r in stored] == \
        [json.loads(json.dumps(jsonable(m.to_dict()))) for m in result.measurements]
    assert all(isinstance(m.timing, TimingRecord) for m in result.measurements)


def test_a_failed_case_has_no_figures_and_says_why():
    m = Measurement("spin[us=1]", "spin", "numpy:cpu", {"us": 1}, started_at="t")
    d = m.fail("check failed: wrong", "t2").to_dict()
    assert (d["status"], d["error"], d["finished_at"]) == ("failed", "check failed: wrong", "t2")
    assert "summary" not in d and "samples" not in d and "timing" not in d


def test_rounds_merge_through_the_same_figures_as_one_run():
    from harness.config import PlannedCase
    from harness.runner import merge_rounds
    from harness.timing import TimingPolicy

    case = make_case("spin", None, {"us": "3"}, "test")
    workload = workloads.get("spin")()
    work = workload.work(case.param_dict)
    rounds = []
    for i, xs in enumerate(([1e-6, 1.2e-6, 1.1e-6], [2e-6, 2.2e-6, 2.1e-6, 1.9e-6])):
        summary, metrics = figures(xs, None, work, workload, case.param_dict, {})
        rounds.append(Measurement(case.key, "spin", "numpy:cpu", case.param_dict,
                                  started_at=f"t{i}", summary=summary, metrics=metrics,
                                  timing=TimingRecord(stop_reason=f"r{i}", block=i + 1),
                                  info={}, samples=xs))
    merged = merge_rounds(rounds, PlannedCase(case, TimingPolicy(rounds=2)))
    pooled = [x for m in rounds for x in m.samples or ()]
    assert merged.summary == summarize(pooled)
    assert merged.metrics == figures(pooled, None, work, workload, case.param_dict, {})[1]
    assert merged.started_at == "t0" and merged.timing is not None
    assert merged.timing.stop_reason == "r0,r1"
    assert merged.timing.extra["round_medians_s"] == [rounds[0].summary.median,
                                                      rounds[1].summary.median]
    assert merged.timing.extra["round_blocks"] == [1, 2]


def test_a_partial_summary_from_another_writer_is_kept_as_it_came():
    rec = {"case_key": "k", "workload": "pytest-benchmark", "backend": "python:cpu",
           "params": {}, "status": "ok", "error": None,
           "summary": {"n": 5, "median": 1e-3, "p5": None, "ci_low": None}}
    m = Measurement.from_dict(rec)
    assert m.summary is None and m.to_dict()["summary"] == rec["summary"]


def test_a_summary_reads_back_from_its_dict():
    from harness.stats import Summary, summarize

    s = summarize([1e-3, 1.1e-3, 0.9e-3, 1.2e-3, 1e-3])
    assert Summary.from_dict(s.to_dict()) == s  # ci_rel, derived, is dropped
    stored = {**s.to_dict(), "ci_low": "-inf", "ci_high": "inf"}  # as JSON holds them
    back = Summary.from_dict(stored)
    assert back.ci_low == -math.inf and back.ci_high == math.inf and back.median == s.median
    del stored["ci_low"], stored["ci_high"]  # an older writer without the bounds: unbounded
    assert Summary.from_dict(stored).ci_rel == math.inf
    with pytest.raises(TypeError):
        Summary.from_dict({"n": 5, "median": 1e-3})
