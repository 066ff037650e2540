"""Suites (TOML matrices), typed parameters and derived metrics.

Suite fixtures live as two trees, like ReFrame's checks/ and badchecks/: every file under
fixtures/suites/good must load, and every file under fixtures/suites/bad must fail with a
UserError that names the file and the offending line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from harness.config import builtin_suites, expand, load_suite, suite_description, timing_policy
from harness.errors import UserError
from harness.params import Param, parse_size
from harness.stats import summarize
from harness.timing import TimingPolicy
from harness.workload import Case, make_case, workload
from harness.workload import registry as workloads
from harness.workmodel import Work, derive_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "suites"
GOOD = FIXTURES / "good"
BAD = FIXTURES / "bad"


def keys(planned: list[Any]) -> list[str]:
    return [p.case.key for p in planned]


# --------------------------------------------------------------------------------------------
# Good suites


def test_matrix_expansion_exclude_overrides_defaults_and_order() -> None:
    name, planned = load_suite(str(GOOD / "matrix.toml"))
    assert name == "matrix"
    assert keys(planned) == [
        # gemm: backends x m x k, n fixed; {m=128,k=8} and {m=64,k=16} (dtype default) excluded
        "gemm[numpy:cpu](dtype=float32,k=8,m=64,n=32)",
        "gemm[numpy:cpu](dtype=float32,k=16,m=128,n=32)",
        "gemm[torch:cpu](dtype=float32,k=8,m=64,n=32)",
        "gemm[torch:cpu](dtype=float32,k=16,m=128,n=32)",
        # spin: 10, 10.0 and "10" are one value; first-seen order kept
        "spin[numpy:cpu](us=20.0)",
        "spin[numpy:cpu](us=10.0)",
        "spin[numpy:cpu](us=5.0)",
        # spin + stream: spin only on numpy (it has no torch); spin us=5 was planned already
        "stream[numpy:cpu](dtype=float64,n=2048,op=copy)",
        "stream[numpy:cpu](dtype=float64,n=1024,op=copy)",
        "stream[torch:cpu](dtype=float64,n=2048,op=copy)",
        "stream[torch:cpu](dtype=float64,n=1024,op=copy)",
    ]
    assert len(set(keys(planned))) == len(planned)
    by_key = {p.case.key: p.policy for p in planned}
    suite_default = TimingPolicy(budget=1.5, warmup_budget=0.25)
    gemm = by_key["gemm[torch:cpu](dtype=float32,k=8,m=64,n=32)"]
    assert gemm == suite_default.replace(target_ci=0.05, min_samples=20)
    assert isinstance(gemm.min_samples, int)
    assert by_key["spin[numpy:cpu](us=20.0)"] == suite_default
    assert by_key["spin[numpy:cpu](us=5.0)"] == suite_default  # the first matrix's policy wins
    assert by_key["stream[torch:cpu](dtype=float64,n=1024,op=copy)"] == suite_default.replace(
        budget=0.5
    )
    case = planned[0].case
    assert case == Case("gemm", "numpy:cpu", (("dtype", "float32"), ("k", 8), ("m", 64),
                                              ("n", 32)))
    assert all(isinstance(v, int) for k, v in case.params if k != "dtype")
    assert all(isinstance(p.case.param_dict["us"], float) for p in planned
               if p.case.workload == "spin")


def test_minimal_suite_fills_every_default() -> None:
    name, planned = load_suite(str(GOOD / "minimal.toml"))
    assert name == "minimal"
    assert len(planned) == 1
    (p,) = planned
    gemm = workloads.get("gemm")
    assert p.case.backend == gemm.default_backend
    model = p.case.backend.split(":")[0]  # parameters of other backend models are left out
    assert p.case.param_dict == {k: spec.default for k, spec in gemm.params.items()
                                 if spec.models is None or model in spec.models}
    assert "variant" in gemm.params and "variant" not in p.case.param_dict
    assert p.policy == TimingPolicy()


def test_inline_matrix_and_inline_timing() -> None:
    _, planned = load_suite(str(GOOD / "inline.toml"))
    assert keys(planned) == [
        "spin[numpy:cpu](us=1.0)",
        "spin[numpy:cpu](us=2.0)",
        "stream[numpy:cpu](dtype=float32,n=4096,op=triad)",
    ]
    assert all(p.policy == TimingPolicy(target_ci=0.02, max_samples=500) for p in planned)


def test_headers_with_comments_and_dotted_keys() -> None:
    _, planned = load_suite(str(GOOD / "comments.toml"))
    assert keys(planned) == [
        "spin[numpy:cpu](us=7.0)",
        "gemm[numpy:cpu](dtype=float64,k=256,m=32,n=256)",
    ]
    assert {p.policy.target_ci for p in planned} == {0.03}


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.toml")), ids=lambda p: p.name)
def test_every_good_fixture_loads(path: Path) -> None:
    name, planned = load_suite(str(path))
    assert name == path.stem
    assert planned
    assert len({p.case for p in planned}) == len(planned)


def test_base_policy_is_the_default_under_the_suite() -> None:
    base = TimingPolicy(min_samples=3, budget=9.0)
    _, planned = load_suite(str(GOOD / "matrix.toml"), base=base)
    spin = next(p for p in planned if p.case.workload == "spin")
    assert spin.policy.min_samples == 3  # from the base
    assert spin.policy.budget == 1.5  # the suite's [timing] overrides the base


# --------------------------------------------------------------------------------------------
# Built-in suites


def test_builtin_suites_are_listed_and_described() -> None:
    suites = builtin_suites()
    assert {"smoke", "quick"} <= set(suites)
    for path in suites.values():
        assert path.is_file()
        assert suite_description(path)


def _named(names: list[str], text: str) -> set[str]:
    """The names a text mentions as words ('reduce' is not named by 'reduce-scatter')."""
    return {n for n in names
            if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text, re.IGNORECASE)}


@pytest.mark.parametrize("suite", sorted(builtin_suites()))
def test_builtin_suite_description_names_what_its_matrix_runs(suite: str) -> None:
    """A suite's description (shown by `bench list suites`) names every workload its matrix
    runs and no other, claims 'each/every/all workloads' only when it runs them all, and
    names only backends the matrix uses (the smoke suite once said 'each built-in workload'
    while running 3 of 14)."""
    text = suite_description(builtin_suites()[suite])
    _, planned = load_suite(suite)
    run = {p.case.workload for p in planned}
    assert _named(workloads.names(), text) == run, text
    if re.search(r"\b(each|every|all)\b[^.;:()]*\bworkloads?\b", text, re.IGNORECASE):
        assert run == set(workloads.names()), text
    from harness.backends.base import registry as backends

    used = {p.case.backend.split(":")[0] for p in planned}
    assert _named(backends.names(), text) <= used, text


def test_smoke_suite_loads_and_is_small_and_numpy_only() -> None:
    name, planned = load_suite("smoke")
    assert name == "smoke"
    assert {p.case.workload for p in planned} == {"spin", "gemm", "stream"}
    assert {p.case.backend for p in planned} == {"numpy:cpu"}
    assert all(p.policy.budget == 0.5 and p.policy.target_ci == 0.02 for p in planned)
    assert all(p.policy.warmup_budget == 0.2 for p in planned)
    # ~one small case per workload: it must run in seconds
    assert len(planned) == 3
    assert sum(p.policy.budget + p.policy.warmup_budget for p in planned) < 5


def test_quick_suite_loads_and_validates() -> None:
    name, planned = load_suite("quick")
    assert name == "quick"
    ks = keys(planned)
    assert len(ks) == len(set(ks))
    assert "spin[numpy:cpu](us=10.0)" in ks
    assert "spin[numpy:cpu](us=1000.0)" in ks
    assert "gemm[torch:cpu](dtype=bfloat16,k=512,m=512,n=512)" in ks
    assert {p.case.param_dict["op"] for p in planned if p.case.workload == "stream"} == {
        "copy", "scale", "add", "triad"}
    assert all(p.policy.budget == 2.0 for p in planned)
    # every case is a valid case: rebuilding it from its own values gives the same case
    for p in planned:
        assert make_case(p.case.workload, p.case.backend, p.case.param_dict, "test") == p.case


def test_builtin_suite_by_name_equals_by_path() -> None:
    by_name = load_suite("smoke")
    by_path = load_suite(str(builtin_suites()["smoke"]))
    assert by_name == by_path


def test_unknown_suite_names_the_builtins(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown suite 'nope'.*smoke"):
        load_suite("nope")
    with pytest.raises(UserError, match="unknown suite"):
        load_suite(str(tmp_path))  # a directory is not a suite


# --------------------------------------------------------------------------------------------
# Bad suites: each names the file and the line

# file -> (line, column or None, text the message must hold)
BAD_EXPECTED: dict[str, tuple[int, int | None, tuple[str, ...]]] = {
    "malformed.toml": (5, 26, ("malformed TOML",)),
    "unknown_workload.toml": (8, None, ("unknown workload 'gemmm'", "did you mean 'gemm'")),
    "unknown_param.toml": (7, None, ("'mm'", "gemm: m, n, k, dtype")),
    "wrong_type.toml": (10, None, ("gemm parameter 'm'", "expected an integer", "'big'")),
    "out_of_range.toml": (8, None, ("spin parameter 'us'", "below the minimum")),
    "bad_choice.toml": (6, None, ("'dtype'", "'int8'", "float64, float32")),
    "unknown_matrix_key.toml": (6, None, ("unknown key 'repeats' in [[matrix]]",)),
    "unknown_suite_key.toml": (3, None, ("unknown suite key 'matrixx'",)),
    "bad_timing.toml": (5, None, ("timing setting 'budget'", "positive number")),
    "unknown_timing_key.toml": (4, None, ("unknown timing setting 'budgett'", "budget")),
    "bad_matrix_timing.toml": (9, None, ("timing setting 'target_ci'", "'tight'")),
    "timing_not_table.toml": (2, None, ("timing must be a table",)),
    "min_over_max.toml": (3, None, ("min_samples (50) exceeds max_samples (10)",)),
    "empty.toml": (1, None, ("at least one [[matrix]]",)),
    "matrix_not_table.toml": (2, None, ("must be a table",)),
    "missing_workload.toml": (3, None, ("missing 'workload'",)),
    "unknown_backend.toml": (5, None, ("unknown backend 'cuda'", "numpy")),
    "bad_device.toml": (6, None, ("no device 'gpu'", "numpy:cpu")),
    "bad_exclude.toml": (7, None, ("exclude", "'mm'")),
    "empty_values.toml": (5, None, ("'us'", "empty list")),
    "not_utf8.toml": (3, None, ("UTF-8",)),
}


def test_every_bad_fixture_has_an_expectation() -> None:
    assert {p.name for p in BAD.glob("*.toml")} == set(BAD_EXPECTED)


@pytest.mark.parametrize("fname", sorted(BAD_EXPECTED))
def test_bad_suite_raises_user_error_naming_file_and_line(fname: str) -> None:
    line, col, fragments = BAD_EXPECTED[fname]
    path = BAD / fname
    with pytest.raises(UserError) as info:
        load_suite(str(path))
    msg = str(info.value)
    assert "\n" not in msg, "one line"
    loc = f"{path}:{line}:{col}" if col else f"{path}:{line}"
    assert msg.startswith(loc + ":") or msg.startswith(loc + " "), msg
    assert not re.match(rf"{re.escape(loc)}\d", msg), msg  # line 5, not 50
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert "Traceback" not in msg


def test_malformed_toml_line_is_said_once() -> None:
    with pytest.raises(UserError) as info:
        load_suite(str(BAD / "malformed.toml"))
    assert "at line" not in str(info.value)


def test_bad_lines_are_found_in_their_own_matrix(tmp_path: Path) -> None:
    # The same parameter in two tables: the error points at the second one's line.
    suite = tmp_path / "two.toml"
    suite.write_text(
        '[[matrix]]\nworkload = "gemm"\nparams = { m = 64 }\n\n'
        '[[matrix]]\nworkload = "gemm"\nparams = { m = 0 }\n'
    )
    with pytest.raises(UserError, match=rf"^{re.escape(str(suite))}:7: .*'m'.*minimum"):
        load_suite(str(suite))


def test_nan_timing_setting_is_rejected(tmp_path: Path) -> None:
    suite = tmp_path / "nan.toml"
    suite.write_text('[timing]\ntarget_ci = nan\n\n[[matrix]]\nworkload = "spin"\n')
    with pytest.raises(UserError, match=rf"^{re.escape(str(suite))}:2: .*target_ci"):
        load_suite(str(suite))


# --------------------------------------------------------------------------------------------
# timing_policy (suites and the command line)


def test_timing_policy_overrides_and_types() -> None:
    p = timing_policy(TimingPolicy(), {"budget": 2, "min_samples": 5.0, "target_ci": 0.1}, "x")
    assert p.budget == 2.0 and isinstance(p.budget, float)
    assert p.min_samples == 5 and isinstance(p.min_samples, int)
    assert p.target_ci == 0.1
    assert timing_policy(p, {}, "x") == p
    assert timing_policy(p, {"min_block_time": 0}, "x").min_block_time == 0.0  # 0: check off


@pytest.mark.parametrize("overrides,fragment", [
    ({"budgett": 1}, "unknown timing setting 'budgett'"),
    ({"budget": 0}, "positive"),
    ({"budget": -1.0}, "positive"),
    ({"budget": "2"}, "positive"),
    ({"budget": True}, "positive"),
    ({"target_ci": math.nan}, "positive"),
    ({"budget": math.inf}, "positive"),
    ({"min_block_time": -1e-3}, "a number >= 0"),
    ({"min_block_time": math.inf}, "a number >= 0"),
    ({"min_samples": 2.5}, "whole number"),
    ({"min_samples": 50, "max_samples": 10}, "exceeds"),
])
def test_timing_policy_rejects(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UserError, match=r"^command line: .*") as info:
        timing_policy(TimingPolicy(), overrides, "command line")
    assert fragment in str(info.value)


# --------------------------------------------------------------------------------------------
# expand(), as the command line calls it (strings from -w/-b/-p)


def test_cli_style_expand_with_multiple_workloads_and_param_lists() -> None:
    cases = expand(["spin", "gemm"], None,
                   {"us": ["1", "2.5", "1.0"], "m": ["64", "128"], "dtype": ["float64"]},
                   "command line")
    assert [c.key for c in cases] == [
        "spin[numpy:cpu](us=1.0)",
        "spin[numpy:cpu](us=2.5)",
        "gemm[numpy:cpu](dtype=float64,k=256,m=64,n=256)",
        "gemm[numpy:cpu](dtype=float64,k=256,m=128,n=256)",
    ]


def test_cli_style_expand_backends_are_paired_with_workloads_that_run_on_them() -> None:
    cases = expand(["spin", "gemm"], ["numpy:cpu", "torch:cpu"], {"m": ["64"]}, "cli")
    assert [c.key for c in cases] == [
        "spin[numpy:cpu](us=100.0)",
        "gemm[numpy:cpu](dtype=float32,k=256,m=64,n=256)",
        "gemm[torch:cpu](dtype=float32,k=256,m=64,n=256)",
    ]
    # a bare model name means its default device
    assert [c.backend for c in expand(["gemm"], ["numpy"], {}, "cli")] == ["numpy:cpu"]


def test_expand_scalar_values_and_exclude_with_parsed_values() -> None:
    cases = expand(["stream"], ["numpy:cpu"], {"n": [1024, 2048], "op": "copy"}, "t",
                   exclude=[{"n": "2048"}])
    assert [c.key for c in cases] == ["stream[numpy:cpu](dtype=float64,n=1024,op=copy)"]


@pytest.mark.parametrize("args,fragment", [
    (([], None, {}), "no workload given"),
    ((["nope"], None, {}), "unknown workload 'nope'"),
    ((["spin"], None, {"m": ["64"]}), "no selected workload has a parameter 'm'"),
    ((["spin"], None, {"us": ["fast"]}), "spin parameter 'us'"),
    ((["spin"], None, {"us": ["nan"]}), "spin parameter 'us'"),
    ((["spin"], None, {"us": []}), "empty list"),
    ((["spin"], ["torch:cpu"], {}), "does not run on 'torch:cpu'"),
    ((["spin"], ["nope:cpu"], {}), "unknown backend 'nope'"),
    ((["gemm"], ["numpy:cpu"], {"dtype": ["bfloat16"]}), "numpy has no bfloat16"),
])
def test_expand_errors_are_user_errors(args: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(UserError) as info:
        expand(*args, "command line")
    assert fragment in str(info.value)


def test_expand_exclude_unknown_key_is_an_error() -> None:
    with pytest.raises(UserError, match="exclude names parameter 'mm'"):
        expand(["gemm"], None, {"m": [64]}, "t", exclude=[{"mm": 64}])


def test_function_workload_with_size_parameter_expands() -> None:
    @workload("cfgtest-copy", params={"size": Param("size", "4KiB", min=1)},
              work=lambda p: Work(bytes=2 * p["size"]))
    def _copy(backend: Any, size: int) -> Any:
        data = bytearray(size)
        return lambda: bytes(data)

    cases = expand(["cfgtest-copy"], None, {"size": ["64KiB", "1MiB", "65536"]}, "cli",
                   exclude=[{"size": "1MiB"}])
    assert [c.param_dict["size"] for c in cases] == [65536]
    cls = workloads.get("cfgtest-copy")
    assert cls().work({"size": 65536}).bytes == 131072


# --------------------------------------------------------------------------------------------
# Param parsing


@pytest.mark.parametrize("text,expected", [
    ("4096", 4096), ("64KiB", 65536), ("1MiB", 1 << 20), ("1 MiB", 1 << 20), ("2GiB", 2 << 30),
    ("1TiB", 1 << 40), ("2GB", 2_000_000_000), ("1k", 1000), ("3kb", 3000), ("1.5KiB", 1536),
    ("0", 0), ("12b", 12), ("64kib", 65536), ("0.5KiB", 512),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "KiB", "1XB", "-1", "1.3", "0.3KiB", "1e3", "64 Ki B"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("ptype,value,expected", [
    ("int", "42", 42), ("int", " 7 ", 7), ("int", 5, 5), ("int", 3.0, 3), ("int", "-3", -3),
    ("float", "2.5", 2.5), ("float", 3, 3.0), ("float", "1e-3", 1e-3), ("float", " 4 ", 4.0),
    ("bool", True, True), ("bool", "yes", True), ("bool", "ON", True), ("bool", "1", True),
    ("bool", "false", False), ("bool", "off", False), ("bool", 0, False),
    ("str", "float32", "float32"),
    ("size", "64KiB", 65536), ("size", "1MiB", 1048576), ("size", 4096, 4096),
])
def test_param_parse(ptype: str, value: Any, expected: Any) -> None:
    got = Param(ptype, None).parse(value, "here")
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize("ptype,value", [
    ("int", "4.5"), ("int", 4.5), ("int", "0x10"), ("int", True), ("int", "big"), ("int", None),
    ("float", "fast"), ("float", True), ("float", "nan"), ("float", math.nan), ("float", [1]),
    ("bool", "maybe"), ("bool", 2),
    ("str", 5), ("str", None),
    ("size", "1XB"), ("size", 1.5), ("size", True), ("size", "lots"),
])
def test_param_parse_rejects_wrong_types(ptype: str, value: Any) -> None:
    with pytest.raises(UserError, match=r"^where: "):
        Param(ptype, None).parse(value, "where")


def test_param_choices_and_bounds() -> None:
    p = Param("str", "a", choices=("a", "b"))
    assert p.parse("b", "w") == "b"
    with pytest.raises(UserError, match="'c' is not one of: a, b"):
        p.parse("c", "w")
    n = Param("int", 5, min=1, max=10)
    assert n.parse("1", "w") == 1 and n.parse("10", "w") == 10
    with pytest.raises(UserError, match="below the minimum 1"):
        n.parse("0", "w")
    with pytest.raises(UserError, match="above the maximum 10"):
        n.parse(11, "w")
    f = Param("float", 1.0, min=0.0, max=1.0)
    with pytest.raises(UserError, match="above the maximum"):
        f.parse("inf", "w")
    with pytest.raises(UserError, match="below the minimum"):
        f.parse("-1e-9", "w")
    s = Param("size", "1KiB", min=1024, max=1 << 20)
    assert s.parse("1KiB", "w") == 1024
    with pytest.raises(UserError, match="above the maximum"):
        s.parse("2MiB", "w")
    c = Param("int", 32, choices=(16, 32, 64))
    assert c.parse("64", "w") == 64
    with pytest.raises(UserError, match="not one of: 16, 32, 64"):
        c.parse("48", "w")


def test_param_type_must_be_known_and_describe() -> None:
    with pytest.raises(ValueError):
        Param("complex", 0)
    text = Param("int", 8, "help", min=1, max=64, choices=(8, 16)).describe()
    assert text.startswith("int, default 8")
    assert "one of 8|16" in text and ">= 1" in text and "<= 64" in text


# --------------------------------------------------------------------------------------------
# Derived metrics


def _summary(median: float) -> Any:
    return summarize([median * 0.99, median, median * 1.01])


def test_derive_metrics_names_and_values() -> None:
    s = _summary(2e-3)
    assert s.median == 2e-3
    m = derive_metrics(s, Work(items=4, flops=1e9, bytes=3e6))
    assert set(m) == {"latency_s", "items_per_s", "flops_per_s", "bytes_per_s",
                      "arithmetic_intensity_flop_per_byte"}
    assert m["arithmetic_intensity_flop_per_byte"] == pytest.approx(1e9 / 3e6)
    assert m["latency_s"] == 2e-3
    assert m["items_per_s"] == pytest.approx(2000.0)
    assert m["flops_per_s"] == pytest.approx(5e11)
    assert m["bytes_per_s"] == pytest.approx(1.5e9)


def test_derive_metrics_omits_what_does_not_apply() -> None:
    m = derive_metrics(_summary(1e-3), Work())
    assert m == {"latency_s": 1e-3, "items_per_s": pytest.approx(1000.0)}
    assert set(derive_metrics(_summary(1e-3), Work(items=0, bytes=8.0))) == {
        "latency_s", "bytes_per_s"}


def test_derive_metrics_zero_time_has_no_rates() -> None:
    assert derive_metrics(summarize([0.0, 0.0, 0.0]), Work(items=1, flops=1.0)) == {
        "latency_s": 0.0}


def test_derive_metrics_from_the_builtin_work_models() -> None:
    gemm = workloads.get("gemm")()
    w = gemm.work({"m": 64, "n": 32, "k": 16, "dtype": "float32"})
    m = derive_metrics(_summary(1e-3), w)
    assert m["flops_per_s"] == pytest.approx(2 * 64 * 32 * 16 / 1e-3)
    assert m["bytes_per_s"] == pytest.approx((64 * 16 + 16 * 32 + 64 * 32) * 4 / 1e-3)
    stream = workloads.get("stream")()
    w = stream.work({"n": 1000, "op": "triad", "dtype": "float64"})
    m = derive_metrics(_summary(1e-3), w)
    assert m["bytes_per_s"] == pytest.approx(3 * 8 * 1000 / 1e-3)  # STREAM counts 3 arrays
    assert m["items_per_s"] == pytest.approx(1000 / 1e-3)
    assert m["flops_per_s"] == pytest.approx(2 * 1000 / 1e-3)  # triad: a multiply and an add
    copy = derive_metrics(_summary(1e-3), stream.work({"n": 1000, "op": "copy",
                                                       "dtype": "float64"}))
    assert "flops_per_s" not in copy


def test_defaults_that_choose_nothing_stay_out_of_the_case_key() -> None:
    from harness.workload import make_case

    default = make_case("gemm", "opencl:pocl", {}, "test")
    assert default.key == "gemm[opencl:pocl](dtype=float32,k=256,m=256,n=256)"
    # variant=auto, binary= and build_options= given explicitly are the same case
    same = make_case("gemm", "opencl:pocl", {"variant": "auto", "binary": "",
                                             "build_options": ""}, "test")
    assert same.key == default.key
    chosen = make_case("gemm", "opencl:pocl", {"variant": "cpu", "build_options": "-DRB=4"},
                       "test")
    assert chosen.key == ("gemm[opencl:pocl](build_options=-DRB=4,dtype=float32,k=256,m=256,"
                          "n=256,variant=cpu)")
    assert "left out of the case key when default" in workloads.get("gemm").params[
        "variant"].describe()
