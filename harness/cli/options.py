"""Option groups that several commands take, as decorators, and the plan they describe.

Each group is a decorator factory, applied with parentheses under the command decorator. A
command that measures the same cases as `bench run` (run, submit, ab) is written:

    @click.command()
    @selection_options()
    @timing_options()
    @store_options()
    @output_options()
    def ab(selection: Selection, timing: Timing, store: str | None, run_dir: Path,
           fmt: str, output: Path | None, fail_on: str) -> None:
        suite, cases = build_plan(selection, timing)

`selection_options` and `timing_options` hand the command one object each (Selection, Timing),
which know how to become the plan (`build_plan`) and how to be written back as `bench run`
arguments (`run_args`, for batch jobs); the other groups hand over plain values. Every float
option uses `FiniteFloat`, so nan and inf are refused with one line, exit 2.

Nothing here imports more than click at load: `bench --help` stays instant.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click

from harness.cli.args import parse_kv, split_values
from harness.errors import UserError

if TYPE_CHECKING:
    from harness.config import PlannedCase
    from harness.profiling import ProfileRequest

F = TypeVar("F", bound=Callable[..., Any])

RUN_DIR_ENV = "BENCH_RUN_DIR"
STORE_HELP = (
    "Results store: a SQLite file path or SQLAlchemy URL [env BENCH_STORE; default ./bench.db]"
)
RUN_DIR_HELP = "Folder for run files [env BENCH_RUN_DIR; default ./bench-runs]"
DEFAULT_RANK_TIMEOUT = 60.0
FORMATS = ("table", "markdown", "json", "html")


class FiniteFloat(click.FloatRange):
    """A float option's type: a finite number (nan, inf and -inf are refused), optionally within
    [min, max]. Every float option of `bench` uses it."""

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None, *,
                 min_open: bool = False, max_open: bool = False) -> None:
        super().__init__(min, max, min_open=min_open, max_open=max_open)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        return "" if self.min is None and self.max is None else super()._describe_range()


def _options(f: F, options: list[Callable[[F], F]]) -> F:
    """Apply click options so that --help lists them in the order given."""
    for option in reversed(options):
        f = option(f)
    return f


def _collect(f: F, into: str, build: Callable[..., Any], names: tuple[str, ...]) -> F:
    """Wrap a command function: the keyword arguments `names` become one, `into`."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs[into] = build(**{n: kwargs.pop(n) for n in names})
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# -- selection ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The cases a command was asked for (`selection_options`), as given on the command line."""

    suite: str | None = None
    workloads: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()

    def load_plugins(self) -> None:
        from harness.registry import load_plugin

        for plugin in self.plugins:
            load_plugin(plugin)

    def workload_names(self) -> list[str]:
        return split_values(self.workloads)

    def backend_names(self) -> list[str]:
        return split_values(self.backends)

    def parsed_params(self) -> dict[str, list[str]]:
        """-p values by parameter, sweeps expanded: {"us": ["10", "100"]}."""
        return parse_kv(self.params, "-p")

    def run_args(self, omit_param: str | None = None) -> list[str]:
        """The same selection as `bench run` arguments for a job that starts in another folder
        (plugin and suite files as absolute paths); without -p `omit_param` (an array job sets
        it per task)."""
        args = [a for p in self.plugins for a in ("--plugin", str(Path(p).resolve()))]
        if self.suite:
            is_file = Path(self.suite).is_file()
            return [*args, "--suite", str(Path(self.suite).resolve()) if is_file else self.suite]
        args += ["-w", ",".join(self.workload_names())]
        if self.backends:
            args += ["-b", ",".join(self.backend_names())]
        for key, values in self.parsed_params().items():
            if key != omit_param:
                args += ["-p", f"{key}={','.join(values)}"]
        return args


def selection_options() -> Callable[[F], F]:
    """Adds --suite/-s, -w/--workload, -b/--backend, -p/--param and --plugin (as `bench run`).

    The command function receives one keyword argument, `selection: Selection` (its fields:
    suite, workloads, backends, params, plugins, the raw values). `build_plan` turns it and a
    Timing into the plan; nothing is loaded or checked before that."""

    def decorate(f: F) -> F:
        f = _collect(f, "selection", Selection,
                     ("suite", "workloads", "backends", "params", "plugins"))
        return _options(f, [
            click.option("--suite", "-s", metavar="NAME|FILE",
                         help="A built-in suite or a suite TOML file."),
            click.option("-w", "--workload", "workloads", multiple=True, metavar="NAME[,NAME]",
                         help="Workload(s) to run; see `bench list workloads`."),
            click.option("-b", "--backend", "backends", multiple=True,
                         metavar="MODEL:DEVICE[,...]",
                         help="Backend(s), e.g. numpy:cpu, torch:cpu, torch:cuda:0. "
                              "Default: the workload's."),
            click.option("-p", "--param", "params", multiple=True, metavar="KEY=V1[,V2]",
                         help="Parameter values; commas and repeated -p expand to the matrix "
                              "of cases."),
            click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False),
                         help="A Python file defining workloads with @harness.workload."),
        ])

    return decorate


# -- timing ---------------------------------------------------------------------------------------

# The TimingPolicy settings a command line may override: (field, flag, type, metavar, help).
# `timing_options` declares them, `Timing.run_args` writes them back: one list, so a setting
# added here reaches `bench submit`'s job scripts too.
_POLICY_OPTIONS: tuple[tuple[str, str, Any, str, str], ...] = (
    ("target_ci", "--target-ci", FiniteFloat(), "FRACTION",
     "Stop a case when the median's 95% CI is within ± this fraction [default 0.01]."),
    ("budget", "--budget", FiniteFloat(), "SECONDS",
     "Time budget of timed sampling per case [default 5]."),
    ("min_block_time", "--min-block-time", FiniteFloat(), "SECONDS",
     "A sample of a short operation spans at least this long (many calls back to back), so "
     "calls that are slow every few calls count [default 0.001; 0: time calls singly where the "
     "overhead allows]."),
    ("min_samples", "--min-samples", click.INT, "N",
     "Samples taken before the stopping rule applies [default 10]."),
    ("max_samples", "--max-samples", click.INT, "N",
     "Stop after this many samples [default 100000]."),
    ("rounds", "--rounds", click.IntRange(min=1, max=20), "N",
     "Measure every case N times, interleaved, each with budget/N; compare then allows for how "
     "much cases move between rounds [default 1]."),
)
POLICY_FIELDS = tuple(name for name, *_ in _POLICY_OPTIONS)


@dataclass(frozen=True)
class Timing:
    """How each case is measured (`timing_options`): the TimingPolicy settings given on the
    command line (None: not given, the suite's or the default applies), whether results are
    checked before timing, and the ranks' no-progress timeout (None: not given)."""

    target_ci: float | None = None
    budget: float | None = None
    min_block_time: float | None = None
    min_samples: int | None = None
    max_samples: int | None = None
    rounds: int | None = None
    check: bool = True
    timeout: float | None = None

    def overrides(self) -> dict[str, float | int]:
        """The TimingPolicy fields given, for harness.config.timing_policy."""
        return {k: v for k in POLICY_FIELDS if (v := getattr(self, k)) is not None}

    @property
    def rank_timeout(self) -> float:
        return DEFAULT_RANK_TIMEOUT if self.timeout is None else self.timeout

    def run_args(self) -> list[str]:
        """Every setting given, as `bench run` arguments (what `bench submit` forwards)."""
        flags = {name: flag for name, flag, *_ in _POLICY_OPTIONS}
        args = [a for k, v in self.overrides().items() for a in (flags[k], repr(v))]
        if not self.check:
            args.append("--no-check")
        if self.timeout is not None:
            args += ["--timeout", repr(self.timeout)]
        return args


def timing_options(timeout: bool = True) -> Callable[[F], F]:
    """Adds --target-ci, --budget, --min-block-time, --min-samples, --max-samples, --rounds,
    --check/--no-check and (with timeout=True) --timeout.

    The command function receives one keyword argument, `timing: Timing`; settings not given
    are None (`timing.overrides()` holds those given, `timing.rank_timeout` is --timeout or
    60 s). Values are range-checked by `build_plan` (the same rules as a suite's [timing])."""

    def decorate(f: F) -> F:
        names = (*POLICY_FIELDS, "check", *(("timeout",) if timeout else ()))
        f = _collect(f, "timing", Timing, names)
        options = [click.option(flag, name, type=kind, metavar=metavar, help=text)
                   for name, flag, kind, metavar, text in _POLICY_OPTIONS]
        options.append(click.option("--check/--no-check", default=True, show_default=True,
                                    help="Verify each case's result (on every rank) before "
                                         "timing it."))
        if timeout:
            options.append(click.option(
                "--timeout", "timeout", type=FiniteFloat(min=0.5), metavar="SECONDS",
                help="Many ranks: end the job when a rank makes no progress for this long "
                     "(start-up, which loads the backends, may take up to 120 s) "
                     f"[default {DEFAULT_RANK_TIMEOUT:g}]."))
        return _options(f, options)

    return decorate


# -- profiling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profiling:
    """`bench run --profile` and its settings (`profile_options`); None: not given."""

    profile: bool = False
    profile_iters: int | None = None
    profile_max_mb: float | None = None

    def validate(self) -> ProfileRequest | None:
        """The ProfileRequest the settings describe (None without --profile); bad settings are
        one UserError. Checks no backend (see `request`)."""
        from harness.profiling import DEFAULT_ITERS, DEFAULT_MAX_BYTES, ProfileRequest

        iters, max_mb = self.profile_iters, self.profile_max_mb
        if not self.profile:
            if iters is not None or max_mb is not None:
                raise UserError("--profile-iters and --profile-max-mb need --profile")
            return None
        if max_mb is not None and max_mb <= 0:
            raise UserError(f"--profile-max-mb must be positive, got {max_mb:g}")
        return ProfileRequest(iters=DEFAULT_ITERS if iters is None else iters,
                              max_bytes=int(max_mb * 2**20) if max_mb else DEFAULT_MAX_BYTES)

    def request(self, plan: list[PlannedCase]) -> ProfileRequest | None:
        """`validate`, and a backend of the plan whose profiler is missing is refused here, with
        what to install (this sets the backends up)."""
        request = self.validate()
        if request is None:
            return None
        from harness.runner import setup_backends

        for backend in setup_backends(plan).values():
            missing = backend.profiler_missing()
            if missing:
                raise UserError(missing)
        return request

    def run_args(self) -> list[str]:
        args = ["--profile"] if self.profile else []
        if self.profile_iters is not None:
            args += ["--profile-iters", str(self.profile_iters)]
        if self.profile_max_mb is not None:
            args += ["--profile-max-mb", repr(self.profile_max_mb)]
        return args


def profile_options() -> Callable[[F], F]:
    """Adds --profile, --profile-iters and --profile-max-mb.

    The command function receives one keyword argument, `profiling: Profiling`."""

    def decorate(f: F) -> F:
        f = _collect(f, "profiling", Profiling, ("profile", "profile_iters", "profile_max_mb"))
        return _options(f, [
            click.option("--profile", is_flag=True,
                         help="After each case's timed iterations, profile a few more and keep "
                              "the trace beside the run file (see `bench profile`)."),
            click.option("--profile-iters", type=int, metavar="N",
                         help="Profiled iterations per case, 1..100 [default 5]."),
            click.option("--profile-max-mb", type=FiniteFloat(), metavar="MB",
                         help="Keep no trace larger than this, uncompressed [default 256]."),
        ])

    return decorate


# -- the plan -------------------------------------------------------------------------------------


class Plan(NamedTuple):
    """What `build_plan` returns: the suite's name (None for -w/-b/-p) and the cases."""

    suite: str | None
    cases: list[PlannedCase]


def build_plan(selection: Selection, timing: Timing, *, verb: str = "run") -> Plan:
    """The cases `selection` names, each with its timing policy (the suite's or the default,
    overridden by what `timing` gives), every case and value validated; plugins are loaded
    first. Bad input is one UserError ("nothing to {verb}: ..." when nothing is selected).
    Imports the registry and the workloads, not the backends' frameworks."""
    from harness.config import PlannedCase, expand, load_suite, timing_policy
    from harness.timing import TimingPolicy

    selection.load_plugins()
    overrides = timing.overrides()
    if selection.suite and (selection.workloads or selection.backends or selection.params):
        raise UserError("give either --suite or -w/-b/-p, not both")
    if selection.suite:
        suite_name, planned = load_suite(selection.suite)
        return Plan(suite_name, [PlannedCase(p.case, timing_policy(p.policy, overrides,
                                                                   "command line"))
                                 for p in planned])
    if not selection.workloads:
        raise UserError(f"nothing to {verb}: give --suite NAME or -w WORKLOAD "
                        "(see `bench list`)")
    policy = timing_policy(TimingPolicy(), overrides, "command line")
    cases = expand(selection.workload_names(), selection.backend_names() or None,
                   selection.parsed_params(), "command line")
    return Plan(None, [PlannedCase(c, policy) for c in cases])


# -- store, output and small ones -----------------------------------------------------------------


def store_options(store: bool = True, run_dir: bool = True,
                  run_dir_help: str = RUN_DIR_HELP) -> Callable[[F], F]:
    """Adds --store (env BENCH_STORE) and --run-dir (env BENCH_RUN_DIR, default ./bench-runs);
    store=False or run_dir=False leaves one out.

    The command function receives `store: str | None` and `run_dir: Path`; `open_store(store,
    run_dir)` opens the store with the run files waiting in the folder ingested."""

    def decorate(f: F) -> F:
        options = []
        if store:
            options.append(click.option("--store", envvar="BENCH_STORE", metavar="PATH|URL",
                                        help=STORE_HELP))
        if run_dir:
            options.append(click.option("--run-dir", envvar=RUN_DIR_ENV, default="bench-runs",
                                        type=click.Path(file_okay=False, path_type=Path),
                                        show_default=True, help=run_dir_help))
        return _options(f, options)

    return decorate


def open_store(store: str | None, run_dir: Path | None, *, create: bool = False) -> Any:
    """Open the store and pick up run files waiting in the run folder (None: none). Only a
    command that measures passes create=True: a reading command given a store file that does
    not exist says so and creates nothing (./bench.db, the default, is made either way)."""
    from results.ingest import sync_run_dir
    from results.store import Store

    st = Store(store, create=create)
    if run_dir is not None:
        sync_run_dir(st, run_dir)
    return st


def ingest_command(store: str | None, paths: list[Path], nothing: str,
                   require_files: bool = False) -> None:
    """What `bench ingest` and `bench collect` do: ingest, print the counts, and give each
    file that could not be stored one error line; exit 2 when there was one. With
    `require_files`, no run file at all is an error, and makes no store."""
    from harness.text import printable
    from results.ingest import ingest_paths
    from results.runfile import find_run_files
    from results.store import Store, store_url

    def some_files() -> None:
        if require_files and not find_run_files(paths):
            shown = ", ".join(str(p) for p in paths)
            raise UserError(f"no run files (*.jsonl, *.jsonl.part) in {shown}; give the "
                            "folder that `bench run --run-dir` wrote to")

    url = store_url(store)
    new_file = url.get_backend_name() == "sqlite" and not Path(str(url.database)).exists()
    if new_file:  # a store is made only for something to put in it
        some_files()
    st = Store(store)
    if not new_file:  # (a store that cannot be opened is said first)
        some_files()
    bad: list[str] = []
    counts = ingest_paths(st, paths, on_bad=lambda exc: bad.append(str(exc)))
    if any(n for k, n in counts.items() if k != "rejected") or not bad:
        click.echo(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or nothing)
    for line in bad:
        click.echo(f"bench: error: {printable(line)}", err=True)
    if bad:
        sys.exit(UserError.exit_code)


def output_options(formats: tuple[str, ...] = FORMATS, fail_on: bool = True) -> Callable[[F], F]:
    """Adds --format (one of `formats`, default the first), -o/--output FILE and, with
    fail_on=True, --fail-on regression|noise|never.

    The command function receives `fmt: str`, `output: Path | None` and (with fail_on)
    `fail_on: str`. --format html without -o is refused before the command runs. Render with
    `harness.cli.render.emit(fmt, output, ...)`, gate with `render.fail_gate(...)`."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from harness.cli.render import NEEDS_FILE

            if kwargs["fmt"] in NEEDS_FILE and kwargs["output"] is None:
                raise UserError(f"--format {kwargs['fmt']} needs -o FILE")
            if kwargs["output"] is not None:  # refused before any work, not after it
                from harness.files import check_output_file

                check_output_file(kwargs["output"])
            return f(*args, **kwargs)

        options = [
            click.option("--format", "fmt", type=click.Choice(list(formats)),
                         default=formats[0], show_default=True, help="Output format."),
            click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                         help="Write to this file instead of stdout"
                              + (" (required for html)." if "html" in formats else ".")),
        ]
        if fail_on:
            options.append(click.option(
                "--fail-on", type=click.Choice(["regression", "noise", "never"]),
                default="never", show_default=True,
                help="Exit 1 on a regression (or, with noise, also on noise)."))
        return _options(wrapper, options)  # type: ignore[arg-type]

    return decorate


def json_option() -> Callable[[F], F]:
    """Adds --json; the command function receives `as_json: bool`."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON on stdout.")


def tag_option(help: str) -> Callable[[F], F]:
    """Adds repeatable --tag KEY=VALUE; the command function receives `tags: tuple[str, ...]`
    (harness.cli.args.parse_tags makes them a dict)."""
    return click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help=help)

