"""`bench compare`: the ratio-of-medians interval, the verdicts, FDR control, the CLI gate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from results.compare import (
    IMPROVEMENT,
    NOISE,
    REGRESSION,
    UNCHANGED,
    benjamini_hochberg,
    compare,
    environment_diff,
    log_median_se,
)

PLUGIN = str(Path(__file__).parent / "fixtures" / "plugins" / "mylib.py")


def test_ratio_interval_covers_the_true_ratio_about_95_percent():
    rng = np.random.default_rng(7)
    reps, covered = 600, 0
    for _ in range(reps):
        base = rng.lognormal(0.0, 0.3, 200)
        head = rng.lognormal(math.log(1.1), 0.3, 200)  # true ratio of medians: 1.1
        c = compare({"k": base}, {"k": head}).cases[0]
        covered += c.ci_low <= 1.1 <= c.ci_high
    assert 0.92 <= covered / reps <= 0.98


def test_log_median_se_shrinks_with_n_and_is_infinite_when_tiny():
    rng = np.random.default_rng(1)
    _, se_small = log_median_se(rng.lognormal(0, 0.2, 50))
    _, se_big = log_median_se(rng.lognormal(0, 0.2, 5000))
    assert se_big < se_small / 5
    assert math.isinf(log_median_se(np.array([1.0, 2.0]))[1])


def test_verdicts():
    rng = np.random.default_rng(3)
    base = rng.lognormal(0, 0.01, 500)
    cases = {
        "slower": rng.lognormal(math.log(1.2), 0.01, 500),
        "faster": rng.lognormal(math.log(0.8), 0.01, 500),
        "same": rng.lognormal(0, 0.01, 500),
        "straddles": rng.lognormal(math.log(1.05), 0.2, 40),
    }
    result = compare({k: base for k in cases}, cases, threshold=0.05)
    got = {c.case_key: c.verdict for c in result.cases}
    assert got == {"slower": REGRESSION, "faster": IMPROVEMENT, "same": UNCHANGED,
                   "straddles": NOISE}
    assert next(c.verdict for c in result.worst_first()) == REGRESSION
    slower = next(c for c in result.cases if c.case_key == "slower")
    assert slower.ci_low > 1.05 and slower.ratio == pytest.approx(1.2, rel=0.01)


def test_unmatched_cases_are_listed():
    result = compare({"a": [1.0] * 10, "b": [1.0] * 10}, {"b": [1.0] * 10, "c": [1.0] * 10})
    assert [c.case_key for c in result.cases] == ["b"]
    assert result.only_base == ["a"] and result.only_head == ["c"]
    assert result.cases[0].verdict == UNCHANGED  # identical constant samples: exact


def test_benjamini_hochberg_matches_the_step_up_rule():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    # q=0.05, m=10: thresholds 0.005, 0.01, 0.015, ... -> the two smallest pass
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True] + [False] * 8
    assert not benjamini_hochberg([0.5, 0.9], 0.05).any()
    assert benjamini_hochberg([], 0.05).size == 0


def test_fdr_keeps_a_large_a_a_comparison_quiet():
    rng = np.random.default_rng(11)
    base = {f"c{i}": rng.lognormal(0, 0.05, 100) for i in range(500)}
    head = {f"c{i}": rng.lognormal(0, 0.05, 100) for i in range(500)}
    counts = compare(base, head, threshold=0.05).counts()
    assert counts[REGRESSION] + counts[IMPROVEMENT] == 0


def test_environment_diff_names_the_changed_keys():
    a = {"cpu": {"model": "X"}, "env": {"OMP_NUM_THREADS": "2"}, "libraries": {"torch": "2.1"}}
    b = {"cpu": {"model": "X"}, "env": {}, "libraries": {"torch": "2.2"}}
    assert environment_diff(a, b) == [("env.OMP_NUM_THREADS", "2", None),
                                      ("libraries.torch", "2.1", "2.2")]


# -- end to end, real runs ---------------------------------------------------------------------


def _run(bench, slowdown: str, tag: str) -> str:
    r = bench("run", "--plugin", PLUGIN, "-w", "mylib-op", "-p", "us=100,200", "-p",
              "us=300", "--budget", "0.3", "--tag", f"build={tag}", "--json", "-q",
              env={"MYLIB_SLOWDOWN": slowdown})
    assert r.rc == 0, r.stderr
    return r.json()["run_id"]


@pytest.fixture
def three_runs(bench):
    a1 = _run(bench, "1.0", "a1")
    a2 = _run(bench, "1.0", "a2")
    b = _run(bench, "1.2", "b")
    return a1, a2, b


def test_cli_compare_a_a_and_a_b(bench, three_runs, workdir):
    a1, a2, b = three_runs
    aa = bench("compare", a1, a2, "--format", "json", "--fail-on", "regression")
    assert aa.rc == 0, aa.stderr
    data = aa.json()
    assert data["counts"]["regression"] == 0 and data["counts"]["improvement"] == 0
    assert len(data["cases"]) == 3

    ab = bench("compare", "tag:build=a2", "tag:build=b", "--format", "json",
               "--fail-on", "regression")
    assert ab.rc == 1
    assert "fail the gate" in ab.stderr
    cases = ab.json()["cases"]
    assert {c["verdict"] for c in cases} == {"regression"}
    assert all(1.15 < c["ratio"] < 1.25 for c in cases)

    md = bench("compare", a2, b, "--format", "markdown")
    assert md.rc == 0
    assert md.stdout.startswith("### accelbench compare")
    assert md.stdout.count("🔴 regression") == 3
    table = bench("compare", a2[:8], b[:8])
    assert table.rc == 0 and "regression" in table.stdout

    html = bench("compare", a2, b, "--format", "html", "-o", "cmp.html")
    assert html.rc == 0
    page = (workdir / "cmp.html").read_text()
    assert "<svg" in page and page.count("class='num regression'") == 3

    # a run file given by path works as well as a run id
    run_file = workdir / "bench-runs" / f"{b}.jsonl"
    assert bench("compare", a2, str(run_file), "--format", "json").json()["counts"][
        "regression"] == 3


def test_compare_warns_when_a_case_was_timed_differently(bench, workdir):
    # One real run timed singly; its copy says it was timed in steady-state blocks (which rule
    # the engine picks depends on the machine's speed: tests of it use a scripted clock).
    r = bench("run", "-w", "spin", "-p", "us=10", "--budget", "0.1", "--min-block-time", "0",
              "--json", "-q")
    assert r.rc == 0, r.stderr
    single = r.json()["run_id"]
    assert r.json()["measurements"][0]["timing"]["block_rule"] == "overhead"
    blocked = "0" * 8 + single[8:]
    lines = []
    for line in Path(r.json()["run_file"]).read_text().splitlines():
        rec = json.loads(line)
        if "run_id" in rec:
            rec["run_id"] = blocked
        if rec.get("kind") == "measurement":
            rec["timing"].update(block_rule="steady_state", block=8)
        lines.append(json.dumps(rec))
    copy = workdir / "copy"
    copy.mkdir()
    (copy / f"{blocked}.jsonl").write_text("\n".join(lines) + "\n")
    assert bench("ingest", str(copy)).rc == 0
    res = bench("compare", single, blocked, "--format", "json")
    assert res.rc == 0, res.stderr
    (warning,) = [w for w in res.json()["warnings"] if "timed differently" in w]
    assert "1 case(s)" in warning and "spin" in warning
    same = bench("compare", blocked, blocked, "--format", "json").json()["warnings"]
    assert not any("timed differently" in w for w in same)


def test_compare_a_run_with_itself_warns_same_run(bench_inproc, workdir, spin_run):
    from results.store import Store

    st = Store(str(workdir / "bench.db"))
    run_id = spin_run(st, workdir / "bench-runs", us=(10.0,), budget=0.05).run_id
    st.engine.dispose()
    same = f"BASE and HEAD are the same run ({run_id[:8]})"
    res = bench_inproc("compare", "latest", "latest", "--format", "json")
    assert res.rc == 0, res.stderr
    (warning,) = [w for w in res.json()["warnings"] if same in w]
    assert "nothing can change" in warning and "latest~1 latest" in warning
    res = bench_inproc("compare", "latest", "latest")  # the table (a terminal may wrap it)
    assert res.rc == 0, res.stderr
    assert " ".join(res.stdout.split()).count(f"warning: {same}") == 1, res.stdout


def test_cli_compare_bad_input(bench, three_runs):
    a1, _, _ = three_runs
    other = bench("run", "-w", "spin", "-p", "us=20", "--budget", "0.2", "--json", "-q")
    assert other.rc == 0
    none_shared = bench("compare", a1, other.json()["run_id"])
    assert none_shared.rc == 2 and "share no measured case" in none_shared.stderr
    assert len(none_shared.err_lines) == 1
    assert bench("compare", a1, "nope").rc == 2
    assert bench("compare", a1, "tag:build").rc == 2
    assert bench("compare", a1, "tag:build=zzz").rc == 2
    assert bench("compare", a1, "latest", "--threshold", "2").rc == 2
    assert bench("compare", a1, "latest", "--format", "html").rc == 2  # needs -o
    assert bench("compare", a1, "missing.jsonl").rc == 2


def test_compare_markdown_escapes_pipes(bench, three_runs):
    from results.report.markdown import _cell

    assert _cell("a|b`c") == "a\\|b'c"
    a1, a2, _ = three_runs
    md = bench("compare", a1, a2, "--format", "markdown").stdout
    json.dumps(md)  # plain text
    assert "Traceback" not in md


def test_rounds_allow_for_a_machine_that_wanders():
    rng = np.random.default_rng(5)
    base = {"k": rng.lognormal(0, 0.01, 300)}
    wandered = {"k": rng.lognormal(math.log(1.08), 0.01, 300)}  # same code, busier machine
    assert compare(base, wandered).cases[0].verdict == REGRESSION  # samples alone: fooled
    with_rounds = compare(base, wandered, base_rounds={"k": [1.0, 1.07, 0.95]},
                          head_rounds={"k": [1.08, 1.0, 1.12]}).cases[0]
    assert with_rounds.verdict == NOISE and with_rounds.ci_low < 1.0 < with_rounds.ci_high
    slower = {"k": rng.lognormal(math.log(1.2), 0.01, 300)}  # a real regression, steady rounds
    steady = compare(base, slower, base_rounds={"k": [1.0, 1.01, 0.995]},
                     head_rounds={"k": [1.2, 1.21, 1.19]}).cases[0]
    assert steady.verdict == REGRESSION and steady.ci_low > 1.05


def test_cli_rounds_are_stored_and_used(bench):
    runs = []
    for _ in range(2):
        r = bench("run", "-w", "spin", "-p", "us=30,60", "--rounds", "3", "--budget", "0.3",
                  "--json", "-q")
        assert r.rc == 0, r.stderr
        runs.append(r.json())
    for m in runs[0]["measurements"]:
        t = m["timing"]
        assert t["rounds"] == 3 and len(t["round_medians_s"]) == 3
        assert all(x == pytest.approx(m["params"]["us"] * 1e-6, rel=0.05)
                   for x in t["round_medians_s"])
        assert t["policy"]["rounds"] == 3
        assert t["block_rule"] == "overhead" and t["round_blocks"] == [1, 1, 1]  # alike calls
    shown = bench("show", runs[0]["run_id"], "--json").json()["measurements"]
    want = [m["summary"]["n"] for m in runs[0]["measurements"]]
    assert [m["summary"]["n"] for m in shown] == want
    cmp = bench("compare", runs[0]["run_id"], runs[1]["run_id"], "--format", "json").json()
    assert {c["verdict"] for c in cmp["cases"]} <= {"unchanged", "noise"}
    assert bench("run", "-w", "spin", "--rounds", "0").rc == 2
