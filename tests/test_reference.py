"""References and `bench check`: the pure model (parsing, globs, the pass rule, TOML written and
read back, JUnit XML), and the round trip on real runs: `bench reference create` from runs made
here, `bench check` passing on them and failing a deliberately slowed run naming the case,
pct_expected stored by `bench run --reference` and shown by show/report, one-line exit-2 errors."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.measurement import Measurement
from harness.stats import summarize
from results import reference as refs

# A workload whose case key does not change when it is slowed: the environment slows it.
PLUGIN = (Path(__file__).parent / "fixtures" / "plugins" / "nap.py").read_text()
FAST = ("--budget", "0.2", "--quiet", "--target-ci", "0.05")
NAP = ("--plugin", "nap.py", "-w", "nap", "-p", "us=40,120", *FAST)
KEY40, KEY120 = "nap[numpy:cpu](us=40.0)", "nap[numpy:cpu](us=120.0)"


def _ms(key: str, **metrics: float) -> Measurement:
    """A successful measurement whose median (and both ends of its CI) is its latency_s."""
    v = metrics.get("latency_s", 1.0)
    return Measurement(key, key.split("[")[0], "numpy:cpu", {}, metrics=metrics,
                       summary=dataclasses.replace(summarize([v]), ci_low=v, ci_high=v))


def _ref(*entries: dict, **top: str) -> refs.Reference:
    return refs.parse({"system": "s", **top, "expect": list(entries)}, "ref.toml")


# -- the pure model -------------------------------------------------------------------------------


def test_glob_takes_brackets_literally():
    e = refs.Expectation("spin[numpy:cpu](us=*)", "latency_s", "<=", 1.0)
    assert e.matches("spin[numpy:cpu](us=10.0)")
    assert not e.matches("spin[n](us=10.0)")  # fnmatch would read [numpy:cpu] as a class
    assert refs.Expectation("a?c", "x", ">=", 1).matches("abc")
    assert not refs.Expectation("a?c", "x", ">=", 1).matches("abbc")


@pytest.mark.parametrize("op,value,tol,measured,ok", [
    (">=", 100, 0.05, 95.0, True), (">=", 100, 0.05, 94.9, False),
    ("<=", 2.0, 0.10, 2.2, True), ("<=", 2.0, 0.10, 2.21, False),
    (">=", 70, 0.0, 70.0, True), (">=", 70, 0.0, 69.99, False),
])
def test_pass_rule(op, value, tol, measured, ok):
    e = refs.Expectation("c", "m", op, value, tol)
    assert e.passes(measured) is ok
    assert e.pct_expected(measured) == pytest.approx(100 * measured / value)


def test_one_line_check_syntax_and_default_direction():
    r = _ref({"case": "p2p*", "check": "latency_s <= 2.1e-6 ± 10%"},
             {"case": "allreduce*", "check": "busbw_gbps >= 180 +- 5%"},
             {"case": "gemm*", "check": "pct_peak >= 70"},
             {"case": "x", "metric": "latency_s", "value": 1.0},
             {"case": "y", "metric": "busbw_gbps", "value": 1.0, "tolerance": "2.5%"})
    got = [(e.metric, e.op, e.value, e.tolerance) for e in r.expectations]
    assert got == [("latency_s", "<=", 2.1e-6, pytest.approx(0.1)),
                   ("busbw_gbps", ">=", 180.0, pytest.approx(0.05)),
                   ("pct_peak", ">=", 70.0, 0.0), ("latency_s", "<=", 1.0, 0.0),
                   ("busbw_gbps", ">=", 1.0, pytest.approx(0.025))]


BAD = {
    "no expect": ({"system": "s"}, "no expectations"),
    "unknown top key": ({"expect": [{"case": "a", "check": "x >= 1"}], "sytem": "s"},
                        "unknown key 'sytem'"),
    "unknown entry key": ({"expect": [{"case": "a", "check": "x >= 1", "tol": 1}]},
                          "[[expect]] 1: unknown key 'tol'"),
    "no case": ({"expect": [{"check": "x >= 1"}]}, "needs case"),
    "bad check": ({"expect": [{"case": "a", "check": "x => 1"}]}, "is not like"),
    "bad op": ({"expect": [{"case": "a", "metric": "x", "op": ">", "value": 1}]},
               "op must be >= or <="),
    "zero value": ({"expect": [{"case": "a", "metric": "x", "value": 0}]}, "positive number"),
    "text value": ({"expect": [{"case": "a", "metric": "x", "value": "fast"}]},
                   "positive number"),
    "bad tolerance": ({"expect": [{"case": "a", "check": "x >= 1 ± 150%"}]}, "below 100%"),
    "tolerance word": ({"expect": [{"case": "a", "metric": "x", "value": 1,
                                    "tolerance": "lots"}]}, "not a percentage"),
    "both forms": ({"expect": [{"case": "a", "check": "x >= 1", "metric": "x"}]}, "not both"),
    "format": ({"format": 9, "expect": [{"case": "a", "check": "x >= 1"}]}, "format 9"),
}


@pytest.mark.parametrize("data,needle", BAD.values(), ids=BAD.keys())
def test_malformed_reference_is_one_error(data, needle):
    with pytest.raises(UserError) as info:
        refs.parse(data, "ref.toml")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_first_matching_expectation_per_metric_applies():
    r = _ref({"case": "spin[numpy:cpu](us=10.0)", "check": "latency_s <= 1e-5"},
             {"case": "spin*", "check": "latency_s <= 1"},
             {"case": "spin*", "check": "items_per_s >= 5"})
    got = {e.metric: e.value for e in r.for_case("spin[numpy:cpu](us=10.0)")}
    assert got == {"latency_s": 1e-5, "items_per_s": 5.0}
    assert {e.value for e in r.for_case("spin[numpy:cpu](us=99.0)")} == {1.0, 5.0}


def test_check_verdicts_missing_and_errors():
    r = _ref({"case": "a", "check": "latency_s <= 1.0 ± 10%"},
             {"case": "b*", "check": "busbw_gbps >= 100"})
    rows = [_ms("a", latency_s=1.05), _ms("a", latency_s=1.5), _ms("a", latency_s=0.9),
            _ms("b1", busbw_gbps=99.0, latency_s=1), _ms("b2", busbw_gbps=120.0, latency_s=1),
            _ms("c", latency_s=1.0)]
    result = refs.check(r, rows)
    by = {x.case_key: x for x in result.rows}
    assert by["a"].measured == pytest.approx(1.05) and by["a"].n == 3  # median of the runs
    assert by["a"].status == refs.PASS and by["a"].pct_expected == pytest.approx(105.0)
    assert by["b1"].status == refs.FAIL and "busbw_gbps 99" in by["b1"].why
    assert by["b2"].status == refs.PASS
    assert by["c"].status == refs.MISSING
    assert result.counts() == {"pass": 2, "fail": 1, "missing": 1}
    failed = refs.check(r, [Measurement("a", "a", "numpy:cpu", {}, status="failed",
                                        error="boom"), _ms("b1", busbw_gbps=200.0)])
    assert [x.status for x in failed.rows] == ["fail", "pass"] and "boom" in failed.rows[0].why

    with pytest.raises(UserError, match=r"\[\[expect\]\] 2 .*matches no case"):
        refs.check(r, [_ms("a", latency_s=1.0)])
    with pytest.raises(UserError, match="wants 'busbw_gbps' but case b1 has no such metric"):
        refs.check(r, [_ms("a", latency_s=1.0), _ms("b1", latency_s=1.0)])


def test_dump_reads_back_the_same():
    exp = (refs.Expectation('odd"case\\[x](y=*)', "latency_s", "<=", 1.2345678901e-6, 0.07,
                            "measured: 3 run(s)"),
           refs.Expectation("gemm*", "pct_peak", ">=", 70.0, 0.0, "peaks"))
    ref = refs.Reference("sys \"q\"", "gpu", "from runs", exp, "x.toml")
    back = refs.parse(refs.tomllib.loads(refs.dump(ref)), "x.toml")
    assert back.system == ref.system and back.partition == "gpu"
    assert [e.to_dict() for e in back.expectations] == [e.to_dict() for e in exp]


def test_from_measurements_takes_median_and_spread():
    rows = [_ms("a", latency_s=v) for v in (1.0, 1.2, 1.1)]
    (e,) = refs.from_measurements(rows, ["latency_s"], 0.05, 3)
    assert e.value == pytest.approx(1.1) and e.op == "<="
    assert e.tolerance == pytest.approx(0.091)  # 1.0 is 9.1% from 1.1: beyond the 5% given
    (e,) = refs.from_measurements(rows[:1], ["latency_s"], 0.05, 1)
    assert e.tolerance == 0.05


def test_from_model_and_peaks():
    from cluster.fabric_model import PRESETS, predict_time

    rows = [_ms("allreduce[mpi:cpu](size=1048576)", time_s=1e-3, ranks=4.0,
                size_bytes=1048576.0),
            _ms("gemm[numpy:cpu](m=64)", pct_peak=55.0)]
    fabric = PRESETS["hdr"]
    (e,) = refs.from_model(rows, lambda w, p, m: predict_time(fabric, w, "ring", p, m)
                           if w == "allreduce" else None, 0.1, "hdr")
    assert e.metric == "time_s" and e.op == "<="
    assert e.value == pytest.approx(predict_time(fabric, "allreduce", "ring", 4, 1048576))
    (p,) = refs.from_peaks(rows, 70)
    assert p.case == "gemm[numpy:cpu](m=64)" and p.text() == "pct_peak >= 70"
    assert refs.check(refs.Reference(expectations=(p,)), rows[1:]).rows[0].status == "fail"


def test_junit_is_read_back_by_a_parser():
    r = _ref({"case": "a", "check": "latency_s <= 1.0"}, {"case": "b", "check": "x_s <= 1"})
    result = refs.check(r, [_ms("a", latency_s=2.0), _ms("b", latency_s=1.0, x_s=0.5),
                            _ms("c<&>", latency_s=1.0)])
    root = ET.fromstring(refs.junit_xml(result))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"a latency_s", "b x_s", "c<&>"}
    assert cases["a latency_s"].find("failure") is not None
    assert cases["b x_s"].find("failure") is None and cases["b x_s"].find("skipped") is None
    assert cases["c<&>"].find("skipped") is not None


# -- real runs ------------------------------------------------------------------------------------


@pytest.fixture
def two_runs(bench, workdir):
    (workdir / "nap.py").write_text(PLUGIN)
    for _ in range(2):
        res = bench("run", *NAP)
        assert res.rc == 0, res.stderr
    return workdir


def test_round_trip_and_slowed_run_fails_naming_the_case(bench, two_runs):
    res = bench("reference", "create", "latest", "latest~1", "--system", "here",
                "--tolerance", "10%", "-o", "site.toml")
    assert res.rc == 0, res.stderr
    ref = refs.load(two_runs / "site.toml")
    assert {e.case for e in ref.expectations} == {KEY40, KEY120}
    assert all(e.metric == "latency_s" and e.op == "<=" and e.tolerance >= 0.1
               for e in ref.expectations)

    ok = bench("check", "latest", "latest~1", "--reference", "site.toml", "--format", "json")
    assert ok.rc == 0, ok.stdout + ok.stderr
    data = ok.json()
    assert data["counts"] == {"pass": 2, "fail": 0, "missing": 0}
    assert all(90 < r["pct_expected"] < 110 for r in data["rows"])

    # The slowed run: same case keys, 4x the time (beyond any tolerance a reference can have).
    slow = bench("run", *NAP, "--reference", "site.toml", env={"NAP_SLOW": "4"})
    assert slow.rc == 0, slow.stderr
    res = bench("check", "latest", "--reference", "site.toml")
    assert res.rc == 1, res.stdout + res.stderr
    assert KEY40 in res.stderr and KEY120 in res.stderr and "2 case(s) fail" in res.stderr
    flat = " ".join(res.stdout.split())
    assert "0 pass, 2 fail" in flat and "fail latency_s" in flat

    # pct_expected is stored with the slowed run's measurements and shown by show and report.
    shown = bench("show", "latest", "--json").json()
    for m in shown["measurements"]:
        assert m["metrics"]["pct_expected"] > 200
        assert m["info"]["expected"]["passes"] is False
        assert m["info"]["expected"]["reference"] == "site.toml"
    table = bench("show", "latest")
    flat = " ".join(table.stdout.split())
    assert "% expected" in flat
    assert f"{KEY40}: " in flat and "% of expected: fails latency_s <=" in flat
    assert bench("report", "latest", "-o", "r.html").rc == 0
    assert "% of expected" in (two_runs / "r.html").read_text()

    md = bench("check", "latest", "--reference", "site.toml", "--format", "markdown")
    assert md.rc == 1 and "❌ fail" in md.stdout and KEY40 in md.stdout


def test_junit_output_and_file(bench, two_runs):
    assert bench("reference", "create", "latest", "-o", "r.toml").rc == 0
    res = bench("check", "latest", "--reference", "r.toml", "--format", "junit", "-o", "j.xml")
    assert res.rc == 0, res.stderr
    suite = ET.parse(two_runs / "j.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "0"
    assert {c.get("name") for c in suite.iter("testcase")} == {f"{KEY40} latency_s",
                                                               f"{KEY120} latency_s"}


def test_a_site_names_the_reference(bench, two_runs):
    (two_runs / "refs").mkdir(exist_ok=True)
    assert bench("reference", "create", "latest", "-o", "refs/site.toml").rc == 0
    (two_runs / "refs" / "mine.toml").write_text('description = "here"\nreference = "site.toml"\n')
    res = bench("check", "latest", "--site", "refs/mine.toml", "--format", "json")
    assert res.rc == 0, res.stderr
    assert res.json()["reference"].endswith("refs/site.toml")
    (two_runs / "bare.toml").write_text('description = "no reference"\n')
    res = bench("check", "latest", "--site", "bare.toml")
    assert res.rc == 2 and "names no reference file" in res.stderr


def test_bad_references_are_one_line_exit_2(bench, two_runs):
    (two_runs / "broken.toml").write_text("format = 1\n[[expect]\n")
    (two_runs / "other.toml").write_text('[[expect]]\ncase = "gemm*"\ncheck = "latency_s <= 1"\n')
    (two_runs / "metric.toml").write_text(f'[[expect]]\ncase = "{KEY40}"\n'
                                          'check = "busbw_gbps >= 10"\n')
    cases = {"broken.toml": "malformed TOML", "other.toml": "matches no case",
             "metric.toml": "wants 'busbw_gbps'", "absent.toml": "no reference file"}
    for name, needle in cases.items():
        res = bench("check", "latest", "--reference", name, "--format", "junit", "-o", "j.xml")
        assert res.rc == 2, (name, res.stderr)
        assert len(res.err_lines) == 1 and needle in res.stderr, res.stderr
        assert not (two_runs / "j.xml").exists()
    res = bench("run", *NAP, "--reference", "broken.toml")
    assert res.rc == 2 and "malformed TOML" in res.stderr and len(res.err_lines) == 1
    res = bench("reference", "create", "latest", "--metric", "busbw_gbps", "-o", "x.toml")
    assert res.rc == 2 and "busbw_gbps" in res.stderr and not (two_runs / "x.toml").exists()
    res = bench("reference", "create", "latest", "--tolerance", "lots", "-o", "x.toml")
    assert res.rc == 2 and "--tolerance" in res.stderr
    res = bench("check", "latest")
    assert res.rc == 2 and "--reference" in res.stderr
    assert json.loads(bench("runs", "--json").stdout)  # the store is intact


def test_site_check_validates_the_reference_it_names(bench, workdir):
    (workdir / "ok.toml").write_text('[[expect]]\ncase = "spin*"\ncheck = "latency_s <= 1"\n')
    (workdir / "bad.toml").write_text('[[expect]]\ncase = "spin*"\ncheck = "latency_s <"\n')
    (workdir / "a.toml").write_text('description = "a"\nreference = "ok.toml"\n')
    (workdir / "b.toml").write_text('description = "b"\nreference = "bad.toml"\n')
    (workdir / "c.toml").write_text('description = "c"\nreference = 3\n')
    res = bench("site", "check", "a.toml")  # (then the partitions against Slurm, if any)
    assert "ok.toml: 1 expectation(s)" in res.stdout, res.stderr
    for name, needle in (("b.toml", "is not like"), ("c.toml", "'reference' must be")):
        res = bench("site", "check", name)
        assert res.rc == 2 and needle in res.stderr and len(res.err_lines) == 1, res.stderr
