"""The CLI package itself: every command's help, parser errors as one line, the shared option
groups and the plan builder, the output format registry. In this process (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from harness.cli import COMMAND_MODULES, cli


def _walk(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name in group.list_commands(click.Context(group)):
        command = group.get_command(click.Context(group), name)
        out.append((*path, name))
        if isinstance(command, click.Group):
            out += _walk(command, (*path, name))
    return out


COMMANDS = _walk(cli)


def test_walk_finds_every_command():
    names = {" ".join(c) for c in COMMANDS}
    assert {"run", "submit", "compare", "profile summarize", "site check", "model fit"} <= names
    assert len(COMMANDS) >= 22


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_help_has_examples(bench_inproc, path):
    res = bench_inproc(*path, "--help")
    assert res.rc == 0, res.stderr
    assert f"Usage: bench {' '.join(path)}" in res.stdout
    assert "Examples:" in res.stdout, res.stdout


def test_bare_group_prints_its_help(bench_inproc):
    for args in ([], ["site"], ["profile"]):
        res = bench_inproc(*args)
        assert res.rc == 0 and res.stderr == "", res.stderr
        assert res.stdout.startswith("Usage: bench")


USAGE_ERRORS = {
    "rounds 0": (["run", "--rounds", "0"], "--rounds", "bench run --help"),
    "rounds 21": (["run", "--rounds", "21"], "--rounds", "bench run --help"),
    "budget word": (["run", "--budget", "fast"], "--budget", "bench run --help"),
    "runs -n 0": (["runs", "-n", "0"], "--limit", "bench runs --help"),
    "launcher": (["run", "--launcher", "foo"], "--launcher", "bench run --help"),
    "nranks 0": (["run", "-n", "0"], "--nranks", "bench run --help"),
    "timeout below": (["run", "--timeout", "0.1"], "--timeout", "bench run --help"),
    "unknown option": (["run", "--budgt", "1"], "--budgt", "bench run --help"),
    "unknown command": (["nope"], "No such command", "bench --help"),
    "unknown subcommand": (["site", "nope"], "No such command", "bench site --help"),
    "missing argument": (["compare", "x"], "HEAD", "bench compare --help"),
    "compare format": (["compare", "a", "b", "--format", "pdf"], "--format",
                       "bench compare --help"),
    "fail-on": (["compare", "a", "b", "--fail-on", "x"], "--fail-on", "bench compare --help"),
    "history last": (["history", "c", "--last", "1"], "--last", "bench history --help"),
    "export format": (["export", "-o", "x.csv", "--format", "xls"], "--format",
                      "bench export --help"),
    "export no -o": (["export"], "--output", "bench export --help"),
    "scaling-by": (["submit", "-w", "spin", "--scaling-by", "x"], "--scaling-by",
                   "bench submit --help"),
    "profile top": (["profile", "summarize", "latest", "--top", "0"], "--top",
                    "bench profile summarize --help"),
    "overlap": (["fabric-model", "predict", "--fabric", "ndr", "--overlap", "2"], "--overlap",
                "bench fabric-model predict --help"),
    "list what": (["list", "gizmos"], "gizmos", "bench list --help"),
}


@pytest.mark.parametrize("args,needle,see", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_error_is_one_line(bench_inproc, workdir, args, needle, see):
    res = bench_inproc(*args)
    assert res.rc == 2, (res.rc, res.stderr)
    (line,) = res.err_lines
    assert line.startswith("bench: error: ") and needle in line, line
    assert line.endswith(f"(see '{see}')"), line
    assert res.stdout == "" and list(workdir.iterdir()) == []


NOT_FINITE = [
    ["run", "-w", "spin", "--timeout", "nan"],
    ["run", "-w", "spin", "--timeout", "inf"],
    ["run", "-w", "spin", "--budget", "nan"],
    ["run", "-w", "spin", "--budget", "-inf"],
    ["run", "-w", "spin", "--target-ci", "inf"],
    ["run", "-w", "spin", "--min-block-time", "nan"],
    ["run", "-w", "spin", "--profile", "--profile-max-mb", "inf"],
    ["run", "-w", "spin", "--budget", "1e999"],
    ["submit", "-w", "spin", "--dry-run", "--budget", "nan"],
    ["submit", "-w", "spin", "--dry-run", "--timeout", "inf"],
    ["compare", "a", "b", "--threshold", "nan"],
    ["compare", "a", "b", "--fdr", "inf"],
    ["history", "c", "--threshold", "inf"],
    ["fabric-model", "predict", "--fabric", "ndr", "--step-time", "nan"],
    ["fabric-model", "predict", "--fabric", "ndr", "--overlap", "nan"],
]


@pytest.mark.parametrize("args", NOT_FINITE, ids=[" ".join(a) for a in NOT_FINITE])
def test_float_options_refuse_nan_and_infinity(bench_inproc, workdir, args):
    res = bench_inproc(*args)
    assert res.rc == 2, (res.rc, res.stderr)
    (line,) = res.err_lines
    assert line.startswith("bench: error: ") and "is not a finite number" in line, line
    assert list(workdir.iterdir()) == []


def test_every_float_option_is_finite():
    from harness.cli.options import FiniteFloat

    def params(command: click.Command) -> list[tuple[str, click.Parameter]]:
        out = [(command.name or "", p) for p in command.params]
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                out += params(sub)
        return out

    floats = [(name, p.name) for name, p in params(cli)
              if isinstance(p.type, click.types.FloatParamType)
              and not isinstance(p.type, FiniteFloat)]
    assert floats == []


def test_finite_float_type():
    from harness.cli.options import FiniteFloat

    assert FiniteFloat().convert("1.5", None, None) == 1.5
    assert FiniteFloat(min=0.5).convert(0.5, None, None) == 0.5
    for bad in ("nan", "inf", "-inf", "NaN", "1e400"):
        with pytest.raises(click.BadParameter, match="finite"):
            FiniteFloat().convert(bad, None, None)
    with pytest.raises(click.BadParameter, match="range"):
        FiniteFloat(min=0.5).convert("0.1", None, None)


# -- the shared option groups and the plan builder -------------------------------------------------


def test_shared_groups_are_importable_and_documented():
    from harness.cli import options

    for name in ("selection_options", "timing_options", "store_options", "output_options",
                 "profile_options", "build_plan"):
        fn = getattr(options, name)
        assert fn.__doc__ and len(fn.__doc__.split()) > 10, name
    assert "selection: Selection" in options.selection_options.__doc__
    assert "timing: Timing" in options.timing_options.__doc__


def test_timing_fields_are_timing_policy_fields():
    from dataclasses import fields

    from harness.cli.options import POLICY_FIELDS, Timing
    from harness.timing import TimingPolicy

    assert set(POLICY_FIELDS) <= {f.name for f in fields(TimingPolicy)}
    assert set(POLICY_FIELDS) <= {f.name for f in fields(Timing)}


def test_a_new_command_with_the_shared_groups(tmp_path):
    """What `bench ab` will be: the four groups and the plan builder on a fresh command."""
    from click.testing import CliRunner

    from harness.cli.options import (
        build_plan,
        output_options,
        selection_options,
        store_options,
        timing_options,
    )

    seen = {}

    @click.command()
    @selection_options()
    @timing_options()
    @store_options()
    @output_options()
    def ab(selection, timing, store, run_dir, fmt, output, fail_on):
        """A/B."""
        seen.update(plan=build_plan(selection, timing), store=store, run_dir=run_dir, fmt=fmt,
                    output=output, fail_on=fail_on, timing=timing)

    res = CliRunner().invoke(ab, ["-w", "spin", "-p", "us=10,20", "--rounds", "2",
                                  "--budget", "0.5", "--store", "x.db", "--format", "json",
                                  "--fail-on", "regression"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    suite, cases = seen["plan"]
    assert suite is None and [c.case.key for c in cases] == ["spin[numpy:cpu](us=10.0)",
                                                             "spin[numpy:cpu](us=20.0)"]
    assert {(c.policy.rounds, c.policy.budget) for c in cases} == {(2, 0.5)}
    assert seen["store"] == "x.db" and seen["run_dir"] == Path("bench-runs")
    assert (seen["fmt"], seen["output"], seen["fail_on"]) == ("json", None, "regression")
    assert seen["timing"].check and seen["timing"].rank_timeout == 60.0
    help_text = CliRunner().invoke(ab, ["--help"]).output
    for flag in ("--suite", "--plugin", "--target-ci", "--max-samples", "--no-check",
                 "--timeout", "--store", "--run-dir", "--format", "--output", "--fail-on"):
        assert flag in help_text, flag


def test_build_plan_suite_with_overrides():
    from harness.cli.options import Selection, Timing, build_plan

    suite, cases = build_plan(Selection(suite="smoke"), Timing(rounds=3))
    assert suite == "smoke" and cases and all(c.policy.rounds == 3 for c in cases)


@pytest.mark.parametrize("selection,needle", [
    ({}, "nothing to run"),
    ({"suite": "smoke", "workloads": ("spin",)}, "not both"),
    ({"workloads": ("spin",), "params": ("us",)}, "key=value"),
])
def test_build_plan_refuses(selection, needle):
    from harness.cli.options import Selection, Timing, build_plan
    from harness.errors import UserError

    with pytest.raises(UserError, match=needle):
        build_plan(Selection(**selection), Timing())


def test_timing_run_args_round_trip():
    from harness.cli.options import Timing

    t = Timing(target_ci=0.02, budget=1.0, min_block_time=0.0, min_samples=5, max_samples=50,
               rounds=3, check=False, timeout=30.0)
    assert t.run_args() == ["--target-ci", "0.02", "--budget", "1.0", "--min-block-time",
                            "0.0", "--min-samples", "5", "--max-samples", "50", "--rounds", "3",
                            "--no-check", "--timeout", "30.0"]
    assert Timing().run_args() == [] and Timing().overrides() == {}


def test_command_modules_register_every_command():
    import importlib

    registered = set(cli.commands)
    from_modules = {c.name for m in COMMAND_MODULES
                    for c in importlib.import_module(f"harness.cli.{m}").COMMANDS}
    assert registered == from_modules


# -- the output format registry --------------------------------------------------------------------


def test_emit_formats(capsys, tmp_path):
    from harness.cli.render import FORMATTERS, emit
    from harness.errors import UserError

    assert set(FORMATTERS) == {"table", "markdown", "json", "html", "junit"}
    producers = {"table": lambda out: out.print("a table"), "markdown": lambda: "# md\n",
                 "json": lambda: {"x": Path("p"), "y": 1.5}, "html": lambda: "<p>h</p>"}
    emit("json", None, **producers)
    assert json.loads(capsys.readouterr().out) == {"x": "p", "y": 1.5}
    emit("markdown", None, **producers)
    assert capsys.readouterr().out == "# md\n"
    emit("table", tmp_path / "t.txt", **producers)
    assert (tmp_path / "t.txt").read_text().strip() == "a table"
    emit("html", tmp_path / "r.html", **producers)
    assert (tmp_path / "r.html").read_text() == "<p>h</p>"
    with pytest.raises(UserError, match="needs -o"):
        emit("html", None, **producers)
    with pytest.raises(UserError, match="not offered"):
        emit("html", None, table=producers["table"])
    assert not list(tmp_path.glob(".*.tmp"))
