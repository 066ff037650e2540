"""`bench ab` end to end: real worker processes, a plugin workload whose per-case work a knob
scales (tests/fixtures/plugins/knob.py), the real store. Slowdowns are 50% of a spin, whose
time the clock keeps on any machine, so the verdicts asserted here do not depend on its speed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import bench_command

KNOB = str(Path(__file__).parent / "fixtures" / "plugins" / "knob.py")
FAST = ("--budget", "0.3", "--target-ci", "0.01")
CASES = ("--plugin", KNOB, "-w", "knob", "-p", "us=200", "-p", "case=0,1,2")


def _json(res):
    assert res.rc in (0, 1, 3), res.stderr
    return json.loads(res.stdout)


def test_env_sides_find_the_slowed_case_and_store_two_linked_runs(bench, workdir) -> None:
    res = bench("ab", *CASES, "--head-env", "AB_SLOW=1=1.5", *FAST, "--format", "json")
    assert res.rc == 0, res.stderr
    data = res.json()
    by = {c["case_key"]: c for c in data["cases"]}
    slowed = by["knob[numpy:cpu](case=1,kind=spin,us=200.0)"]
    assert slowed["verdict"] == "regression"
    assert 1.3 < slowed["ratio"] < 1.7 and slowed["ci_low"] <= slowed["ratio"] <= slowed["ci_high"]
    for key in ("knob[numpy:cpu](case=0,kind=spin,us=200.0)",
                "knob[numpy:cpu](case=2,kind=spin,us=200.0)"):
        assert by[key]["verdict"] in ("unchanged", "noise")
    for c in data["cases"]:
        assert c["pairs"] >= 10 and c["disturbed"] >= 0
        assert {c["base_run_id"], c["head_run_id"]} == {data["base"]["run_id"],
                                                       data["head"]["run_id"]}
    runs = {r["run_id"]: r for r in bench("runs", "--json").json()}
    base, head = runs[data["base"]["run_id"]], runs[data["head"]["run_id"]]
    assert base["tags"] == {"ab": data["ab_id"], "ab_side": "base"}
    assert head["tags"] == {"ab": data["ab_id"], "ab_side": "head"}
    assert base["status"] == head["status"] == "complete"
    shown = bench("show", data["head"]["run_id"], "--json").json()
    m = next(x for x in shown["measurements"] if "case=1" in x["case_key"])
    assert m["timing"]["ab"]["side"] == "head" and m["timing"]["ab"]["pairs"] == slowed["pairs"]
    assert len(m["timing"]["ab"]["turn_medians_s"]) == slowed["pairs"]
    assert m["metrics"]["ab_ratio"] == pytest.approx(slowed["ratio"])


def test_fail_on_regression_gives_ci_an_exit_code(bench) -> None:
    res = bench("ab", *CASES[:-1], "case=0,1", "--head-env", "AB_SLOW=1=1.5", *FAST,
                "--fail-on", "regression", "--format", "markdown")
    assert res.rc == 1
    assert "accelbench ab (paired)" in res.stdout and "regression" in res.stdout
    assert res.err_lines[-1] == "bench ab: 1 case(s) fail the gate (--fail-on regression)"


def test_two_interpreters_are_two_sides(bench) -> None:
    here = Path(sys.executable)
    other = here.with_name("python3") if here.name != "python3" else here.with_name("python")
    if not other.exists():
        pytest.skip(f"no second name for this interpreter beside {here}")
    res = bench("ab", *CASES[:-1], "case=0", "--base-python", str(here), "--head-python",
                str(other), *FAST, "--format", "json")
    assert res.rc == 0, res.stderr
    (case,) = res.json()["cases"]
    assert case["verdict"] in ("unchanged", "noise")


def test_calibrate_stores_the_noise_floor_and_later_runs_warn_below_it(bench) -> None:
    cal = bench("ab", *CASES[:-1], "case=0", "--calibrate", *FAST, "--format", "json")
    assert cal.rc == 0, cal.stderr
    data = cal.json()
    assert data["calibrate"] is True
    (case,) = data["cases"]
    assert 0 < case["floor"] < 0.5
    runs = bench("runs", "--json").json()
    assert all(r["tags"].get("ab_calibration") == "1" for r in runs)
    res = bench("ab", *CASES[:-1], "case=0", "--head-env", "UNUSED=1", *FAST,
                "--threshold", "0.00001", "--format", "json")
    assert res.rc == 0, res.stderr
    warnings = res.json()["warnings"]
    assert any("below the noise floor" in w for w in warnings)
    ok = bench("ab", *CASES[:-1], "case=0", "--head-env", "UNUSED=1", *FAST,
               "--threshold", "0.4", "--format", "json")
    assert not any("noise floor" in w for w in ok.json()["warnings"])


def test_a_check_failing_on_one_side_is_reported_not_compared(bench) -> None:
    res = bench("ab", *CASES, "--head-env", "AB_FAIL_CHECK=1", *FAST, "--format", "json")
    assert res.rc == 1
    by = {c["case_key"]: c for c in res.json()["cases"]}
    failed = by["knob[numpy:cpu](case=1,kind=spin,us=200.0)"]
    assert failed["verdict"] == "failed" and "head" in failed["error"]
    assert "check failed" in failed["error"]
    assert sum(c["verdict"] != "failed" for c in by.values()) == 2


def test_timed_turns_that_are_not_a_valid_result_fail_the_side_as_bench_run_does(bench) -> None:
    res = bench("ab", *CASES, "--head-env", "AB_INVALID=1", *FAST, "--format", "json")
    assert res.rc == 1, res.stderr
    by = {c["case_key"]: c for c in res.json()["cases"]}
    failed = by["knob[numpy:cpu](case=1,kind=spin,us=200.0)"]
    assert failed["verdict"] == "failed" and "head" in failed["error"]
    assert "invalid result: " in failed["error"] and "timed calls refused" in failed["error"]
    assert sum(c["verdict"] != "failed" for c in by.values()) == 2
    run = bench("run", "--plugin", KNOB, "-w", "knob", "-p", "case=1", "--budget", "0.1", "-q",
                "--json", env={"AB_INVALID": "1"})  # the same rule in a plain run
    assert run.rc == 1 and run.json()["measurements"][0]["error"].startswith("invalid result: ")


def test_a_worker_that_dies_ends_the_run_partial_naming_the_side(bench) -> None:
    res = bench("ab", *CASES, "--head-env", "AB_DIE=1", *FAST, "--format", "json")
    assert res.rc == 3
    assert "the head worker died (killed by SIGKILL)" in res.stderr
    assert "Traceback" not in res.stderr
    runs = bench("runs", "--json").json()
    assert sorted(r["status"] for r in runs) == ["partial", "partial"]
    for r in runs:
        shown = bench("show", r["run_id"], "--json").json()
        assert [m["status"] for m in shown["measurements"]] == ["ok"]  # case 0 kept


def test_sigint_keeps_finished_cases_and_exits_130(workdir) -> None:
    proc = subprocess.Popen([*bench_command(), "ab", *CASES, "--head-env", "X=1",
                             "--budget", "3", "--target-ci", "0.00001"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith("[1/3]") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    files = sorted((workdir / "bench-runs").glob("*.jsonl"))
    assert len(files) == 2
    for f in files:
        records = [json.loads(x) for x in f.read_text().splitlines()]
        assert records[-1]["status"] == "partial"
        assert sum(r["kind"] == "measurement" for r in records) >= 1


BAD = [
    (("-w", "spin"), "both sides are the same"),
    (("-w", "spin", "--calibrate", "--head-env", "A=1"), "--calibrate measures"),
    (("-w", "spin", "--base-python", "/nonexistent/python"), "/nonexistent/python: no such"),
    (("-w", "spin", "--base-python", "no-such-python-here"), "no such interpreter on PATH"),
    (("-w", "spin", "--head-env", "1BAD=x"), "--head-env '1BAD=x'"),
    (("-w", "spin", "--head-env", "NOEQUALS"), "write NAME=VALUE"),
    (("-w", "spin", "--head-env", "A=1", "--tag", "ab=x"), "set by bench ab itself"),
    (("-w", "spin", "--head-env", "A=1", "--format", "html"), "--format html needs -o"),
    (("--head-env", "A=1"), "nothing to compare"),
    (("-w", "nosuch", "--head-env", "A=1"), "nosuch"),
    (("-w", "spin", "--head-env", "A=1", "--target-ci", "nan"), "not a finite number"),
    (("-w", "spin", "--head-env", "A=1", "--budget", "inf"), "not a finite number"),
    (("-w", "spin", "--head-env", "A=1", "--threshold", "1.5"), "1.5"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_writes_nothing(bench, workdir, args, message) -> None:
    res = bench("ab", *args)
    assert res.rc == 2, res.stderr
    assert res.err_lines[0].startswith("bench: error:") and message in res.err_lines[0]
    assert "Traceback" not in res.stderr
    assert not (workdir / "bench-runs").exists() and not (workdir / "bench.db").exists()


def test_an_interpreter_without_accelbench_is_named_with_the_fix(bench, workdir) -> None:
    system = Path("/usr/bin/python3")
    probe = subprocess.run([str(system), "-c", "import harness"], capture_output=True)
    if not system.exists() or probe.returncode == 0:
        pytest.skip("needs a Python without accelbench at /usr/bin/python3")
    res = bench("ab", "-w", "spin", "--base-python", str(system), *FAST)
    assert res.rc == 2
    assert res.err_lines == [res.err_lines[0]] or len(res.err_lines) <= 3  # progress lines
    line = next(x for x in res.err_lines if x.startswith("bench: error:"))
    assert "accelbench is not installed" in line and "pip install" in line
    assert not list((workdir / "bench-runs").glob("*.jsonl"))


def test_unpaired_compare_says_what_it_cannot_resolve_and_rounds_show_their_spread(bench):
    for _ in range(2):
        res = bench("run", *CASES[:-1], "case=0", "--budget", "0.2", "--rounds", "2", "-q")
        assert res.rc == 0, res.stderr
        assert "rounds" in res.stdout.splitlines()[2]  # the column beside the 95% CI
    out = bench("compare", "latest~1", "latest", "--format", "json").json()
    (w,) = [w for w in out["warnings"] if w.startswith("unpaired runs")]
    assert "between rounds" in w and "bench ab" in w
    ab = bench("ab", *CASES[:-1], "case=0", "--head-env", "X=1", *FAST, "--format", "json")
    sides = ab.json()
    paired = bench("compare", sides["base"]["run_id"], sides["head"]["run_id"], "--format",
                   "json").json()
    assert not any(w.startswith("unpaired") for w in paired["warnings"])


def test_compare_warns_below_the_calibrated_floor(bench):
    assert bench("ab", *CASES[:-1], "case=0", "--calibrate", *FAST, "-q").rc == 0
    for _ in range(2):
        assert bench("run", *CASES[:-1], "case=0", "--budget", "0.2", "-q").rc == 0
    out = bench("compare", "latest~1", "latest", "--threshold", "0.00001", "--format",
                "json").json()
    assert any("below the noise floor" in w for w in out["warnings"])


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_worker_runs_only_while_it_serves_a_request() -> None:
    from harness.ab import Side, Worker

    w = Worker(Side("base"), timeout=60)
    try:
        w.handshake()
        assert _state(w.proc.pid) == "T"  # frozen between requests: its threads cannot spin
        assert w.request("hello")["protocol"] == 1
        assert _state(w.proc.pid) == "T"
    finally:
        w.close()
    assert w.proc.poll() is not None


def test_each_worker_draws_its_memory_layout_at_random() -> None:
    """Two processes of one side with the same environment would otherwise place a case's data
    at the same addresses, and a layout that favours one side would read as a change."""
    from harness.ab import Side, Worker

    cases = [{"key": f"k{i}", "workload": "knob", "backend": "numpy:cpu",
              "params": {"us": 10.0, "case": i, "kind": "compute"}} for i in range(4)]
    layouts = set()
    for _ in range(4):
        w = Worker(Side("base", env=(("SAME", "1"),)), timeout=60)
        try:
            w.handshake()
            w.resume()
            w.send("load", plugins=[KNOB], cases=cases, check=True)
            loaded = w.receive(timeout=60)["cases"]
        finally:
            w.close()
        assert all(c["status"] == "ok" for c in loaded)
        layouts.add(tuple(tuple(c["info"]["data_at"]) for c in loaded))
    assert len(layouts) >= 2  # the same layout in all four: the padding did nothing


def test_a_cheap_case_is_held_in_several_layouts_and_turns_go_through_them() -> None:
    """One unlucky layout (an output array 32 bytes past an input modulo 4 KiB read 1-4.6%
    slower here) must not be a process's whole figure: its turns rotate through instances."""
    from harness.ab_worker import Worker

    w = Worker()
    spec = {"key": "k", "workload": "knob", "backend": "numpy:cpu",
            "params": {"us": 5.0, "case": 0, "kind": "compute"}}
    assert w.load({"plugins": [KNOB], "cases": [spec], "check": True})["cases"][0]["status"] \
        == "ok"
    assert w.layouts({"case": 0, "count": 4, "calls": 2, "check": True}) == {"layouts": 4}
    instances = w.cases[0]["instances"]
    assert len({id(p) for p in instances}) == 4
    calls: list[int] = []
    for n, prepared in enumerate(instances):
        prepared.op = (lambda n=n, op=prepared.op: (calls.append(n), op()))
    for _ in range(8):
        assert len(w.time({"case": 0, "block": 1, "samples": 1})["t"]) == 1
    assert sorted(calls) == [0, 0, 1, 1, 2, 2, 3, 3]
    # asking again for as many adds none; a memory cap already reached adds none either
    assert w.layouts({"case": 0, "count": 4, "calls": 0})["layouts"] == 4
    w.layout_bytes = 1 << 40
    assert w.layouts({"case": 0, "count": 6, "calls": 0})["layouts"] == 4
