"""`bench`: the command line. Imports no framework at load; each command imports what it needs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from harness import __version__
from harness.cli_args import parse_counts
from harness.cli_args import parse_kv as _parse_kv
from harness.cli_args import split_values as _split
from harness.errors import UserError

RUN_DIR_ENV = "BENCH_RUN_DIR"
STORE_HELP = (
    "Results store: a SQLite file path or SQLAlchemy URL [env BENCH_STORE; default ./bench.db]"
)
RUN_DIR_HELP = "Folder for run files [env BENCH_RUN_DIR; default ./bench-runs]"

store_option = click.option("--store", envvar="BENCH_STORE", metavar="PATH|URL", help=STORE_HELP)
run_dir_option = click.option("--run-dir", envvar=RUN_DIR_ENV, default="bench-runs",
                              type=click.Path(file_okay=False, path_type=Path),
                              show_default=True, help=RUN_DIR_HELP)
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print machine-readable JSON on stdout.")


def _console() -> Any:
    """stdout console; when piped, wide enough that tables do not fold."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def _open_store(store: str | None, run_dir: Path | None) -> Any:
    """Open the store and pick up run files waiting in the run folder."""
    from results.ingest import sync_run_dir
    from results.store import Store

    st = Store(store)
    if run_dir is not None:
        sync_run_dir(st, run_dir)
    return st


def _print_json(data: Any) -> None:
    from results.runfile import jsonable

    click.echo(json.dumps(jsonable(data), indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bench")
def cli() -> None:
    """accelbench: measure accelerators and interconnects honestly.

    \b
    Typical use:
      bench list                          what workloads, backends and suites exist here
      bench run --suite quick             run a suite into ./bench.db and print the results
      bench run -w gemm -b numpy:cpu,torch:cpu -p m=256,1024 -p n=1024 -p k=1024
      bench runs                          runs in the store
      bench show latest                   one run's measurements (latest, latest~1, id prefix)
      bench export latest --format csv -o out.csv

    Exit codes: 0 ok, 1 a case failed, 2 bad input, 130/143 interrupted (partial run kept).
    """


@cli.command()
@click.option("--suite", "-s", metavar="NAME|FILE", help="A built-in suite or a suite TOML file.")
@click.option("-w", "--workload", "workloads", multiple=True, metavar="NAME[,NAME]",
              help="Workload(s) to run; see `bench list workloads`.")
@click.option("-b", "--backend", "backends", multiple=True, metavar="MODEL:DEVICE[,...]",
              help="Backend(s), e.g. numpy:cpu, torch:cpu, torch:cuda:0. Default: the workload's.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=V1[,V2]",
              help="Parameter values; commas and repeated -p expand to the matrix of cases.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Label the run (e.g. --tag branch=main); shown by `bench runs`.")
@click.option("--target-ci", type=float, metavar="FRACTION",
              help="Stop a case when the median's 95% CI is within ± this fraction "
                   "[default 0.01].")
@click.option("--budget", type=float, metavar="SECONDS",
              help="Time budget of timed sampling per case [default 5].")
@click.option("--min-block-time", type=float, metavar="SECONDS",
              help="A sample of a short operation spans at least this long (many calls back to "
                   "back), so calls that are slow every few calls count [default 0.001; 0: "
                   "time calls singly where the overhead allows].")
@click.option("--min-samples", type=int, help="Samples taken before the stopping rule applies "
              "[default 10].")
@click.option("--max-samples", type=int, help="Stop after this many samples [default 100000].")
@click.option("--rounds", type=click.IntRange(min=1, max=20), metavar="N",
              help="Measure every case N times, interleaved, each with budget/N; compare then "
                   "allows for how much cases move between rounds [default 1].")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False),
              help="A Python file defining workloads with @harness.workload.")
@click.option("--dry-run", is_flag=True, help="List the cases that would run, run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--launcher", type=click.Choice(["local", "mpirun", "srun", "torchrun"]),
              help="Start the ranks with this launcher (with -n or --ranks) [default local].")
@click.option("-n", "--nranks", type=click.IntRange(min=1), metavar="N",
              help="Number of ranks to start (see --launcher).")
@click.option("--ranks", "rank_list", metavar="N[,N]",
              help="Scaling sweep: one run per world size, e.g. --ranks 1,2,4.")
@click.option("--timeout", "rank_timeout", type=click.FloatRange(min=0.5), default=60.0,
              show_default=True, metavar="SECONDS",
              help="Many ranks: end the job when a rank makes no progress for this long.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Verify each case's result (on every rank) before timing it.")
@click.option("--no-store", is_flag=True,
              help="Write the run file only (batch jobs: `bench collect` ingests it later).")
@click.option("--profile", is_flag=True,
              help="After each case's timed iterations, profile a few more and keep the trace "
                   "beside the run file (see `bench profile`).")
@click.option("--profile-iters", type=int, metavar="N",
              help="Profiled iterations per case, 1..100 [default 5].")
@click.option("--profile-max-mb", type=float, metavar="MB",
              help="Keep no trace larger than this, uncompressed [default 256].")
@store_option
@run_dir_option
@json_option
def run(suite: str | None, workloads: tuple[str, ...], backends: tuple[str, ...],
        params: tuple[str, ...], tags: tuple[str, ...], target_ci: float | None,
        budget: float | None, min_block_time: float | None, min_samples: int | None,
        max_samples: int | None, rounds: int | None,
        plugins: tuple[str, ...], dry_run: bool, quiet: bool, launcher: str | None,
        nranks: int | None, rank_list: str | None, rank_timeout: float, check: bool,
        no_store: bool, profile: bool, profile_iters: int | None,
        profile_max_mb: float | None, store: str | None, run_dir: Path, as_json: bool) -> None:
    """Measure cases: a suite, or workloads x backends x parameters.

    Each case warms up until its times settle, then samples until the 95% confidence interval
    of the median is within --target-ci, or --budget seconds run out. Results go to a run file
    in --run-dir and into the store.

    \b
    Examples:
      bench run --suite quick
      bench run -w spin -p us=10,100,1000 --json
      bench run -w stream -b torch:cpu -p op=copy,triad -p n=16777216 --budget 2
      bench run -w allreduce -b mpi -p size=8B..64MiB*4 --launcher mpirun -n 2
      bench run -w dp-train -b gloo --ranks 1,2
    """
    from harness.config import PlannedCase, expand, load_suite, timing_policy
    from harness.registry import load_plugin
    from harness.timing import TimingPolicy

    for plugin in plugins:
        load_plugin(plugin)
    overrides = {k: v for k, v in (("target_ci", target_ci), ("budget", budget),
                                   ("min_block_time", min_block_time),
                                   ("min_samples", min_samples), ("max_samples", max_samples),
                                   ("rounds", rounds))
                 if v is not None}
    tag_values = {k: ",".join(v) for k, v in _parse_kv(tags, "--tag").items()}
    if suite and (workloads or backends or params):
        raise UserError("give either --suite or -w/-b/-p, not both")
    if suite:
        suite_name, plan = load_suite(suite)
        plan = [PlannedCase(p.case, timing_policy(p.policy, overrides, "command line"))
                for p in plan]
    elif workloads:
        suite_name = None
        policy = timing_policy(TimingPolicy(), overrides, "command line")
        cases = expand(_split(workloads), _split(backends) or None,
                       _parse_kv(params, "-p"), "command line")
        plan = [PlannedCase(c, policy) for c in cases]
    else:
        raise UserError("nothing to run: give --suite NAME or -w WORKLOAD "
                        "(see `bench list`)")
    if dry_run:
        if as_json:
            _print_json([{"case_key": p.case.key, "policy": p.policy.to_dict()} for p in plan])
        else:
            for p in plan:
                click.echo(p.case.key)
        return

    from harness.cli_profile import profile_request

    profiling = profile_request(profile, profile_iters, profile_max_mb, plan)
    from cluster.launch import ENV_LAUNCHED, placement
    from harness.progress import ProgressReporter
    from harness.runner import execute, setup_backends
    from results.report.table import measurement_json, measurements_table

    inside = os.environ.get(ENV_LAUNCHED) or placement().launcher != "local"  # already a rank
    if not inside and (launcher or nranks or rank_list):
        _launch_ranks(launcher or "local", nranks, rank_list, rank_timeout, plan, store,
                      run_dir)  # never returns
    comm, rank = _join_ranks(launcher, nranks, rank_timeout)
    backends = setup_backends(plan)  # a missing package or device fails before any write
    st = _open_store(store, None) if rank == 0 and not no_store else None
    reporter = ProgressReporter(quiet=quiet)
    result = execute(plan, st, run_dir, reporter, tags=tag_values, suite=suite_name,
                     argv=["bench", *sys.argv[1:]], backends=backends, comm=comm, check=check,
                     run_id=os.environ.get("BENCH_RUN_ID"), profile=profiling)
    if result.error:
        click.echo(f"bench: error: {result.error}"
                   + (f"; finished cases kept (run {result.run_id}, partial)" if rank == 0
                      else ""), err=True)
    if rank != 0:
        _end(result.exit_code, hard=result.error is not None)
    if as_json:
        _print_json({"run_id": result.run_id, "status": result.status,
                     "run_file": str(result.path), "store": st.name if st else None,
                     "measurements": [measurement_json(m) for m in result.measurements]})
    else:
        console = _console()
        console.print(measurements_table(result.measurements,
                                         title=f"run {result.run_id} ({result.status})"))
        _print_sweeps(console, result.measurements)
        where = f"stored in {st.name}; " if st else ""
        console.print(f"{where}run file {result.path}", highlight=False)
    _end(result.exit_code, hard=result.error is not None)


def _end(code: int, hard: bool) -> None:
    """Exit; after a rank failure without the interpreter's shutdown, where MPI_Finalize or a
    gRPC server could wait for the rank that is gone."""
    if hard:
        from harness.exiting import exit_now

        exit_now(code)
    sys.exit(code)


def _join_ranks(launcher: str | None, nranks: int | None, timeout: float) -> tuple[Any, int]:
    """In a rank: where we are, checked against what the launching command asked for."""
    from cluster.launch import ENV_WORLD, placement
    from harness.distributed import world

    where = placement()
    want = os.environ.get(ENV_WORLD) or (str(nranks) if nranks else None)
    if want is not None and int(want) != where.world_size:
        raise UserError(f"{want} rank(s) were asked for but the launcher started "
                        f"{where.world_size}; give -n the launcher's number of ranks")
    return world(where.rank, where.world_size, timeout), where.rank


def _scaling_baseline(run_file: Path) -> dict[str, str]:
    """Throughput per case of the first run of a --ranks sweep, in a file the later runs read."""
    import tempfile

    from results.runfile import read_run_file
    from workloads.dp_train import BASELINE_ENV

    try:
        record = read_run_file(run_file)
    except (OSError, UserError):
        return {}
    table = {json.dumps([m["workload"], sorted(m["params"].items())]):
             (m.get("metrics") or {}).get("samples_per_s")
             for m in record.measurements if m.get("status") == "ok"}
    fd, path = tempfile.mkstemp(prefix="bench-scaling-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(table, fh)
    return {BASELINE_ENV: path}


def _launch_ranks(launcher: str, nranks: int | None, rank_list: str | None, timeout: float,
                  plan: list[Any], store: str | None, run_dir: Path) -> None:
    """Start the ranks (once per world size of --ranks), then exit with rank 0's exit code."""
    import uuid

    from cluster.launch import ENV_RUN_ID, launch

    if nranks and rank_list:
        raise UserError("give either -n N or --ranks N,N,..., not both")
    needs_mpi = sorted({p.case.backend for p in plan if p.case.backend.startswith("mpi:")})
    if needs_mpi and launcher not in ("mpirun", "srun"):
        raise UserError(f"backend {needs_mpi[0]} needs MPI ranks: use --launcher mpirun "
                        f"(or srun), not {launcher}")
    sizes = parse_counts(rank_list, "--ranks") if rank_list else [nranks or 1]
    from harness.runner import setup_backends

    setup_backends(plan)  # a missing package or device: one line here, not one per rank
    run_ids, code, extra = [], 0, {}
    for n in sizes:
        run_ids.append(str(uuid.uuid4()))
        code = launch(launcher, n, sys.argv[1:], timeout, {ENV_RUN_ID: run_ids[-1], **extra})
        if code != 0:
            break
        if rank_list and len(run_ids) == 1:  # later sizes store efficiency against this one
            extra = _scaling_baseline(run_dir / f"{run_ids[0]}.jsonl")
    if rank_list and code == 0:
        from results.report.scaling import scaling_table

        st = _open_store(store, run_dir)
        _console().print(scaling_table(st, run_ids))
    sys.exit(code)


@cli.command("list")
@click.argument("what", type=click.Choice(["workloads", "backends", "suites", "all"]),
                default="all")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False),
              help="Also load workloads from this Python file.")
@json_option
def list_(what: str, plugins: tuple[str, ...], as_json: bool) -> None:
    """What exists: workloads (with parameters), backends (usable here or why not), suites."""
    from rich.markup import escape
    from rich.table import Table

    from harness.backends.base import parse_backend
    from harness.backends.base import registry as backends
    from harness.config import builtin_suites, suite_description
    from harness.registry import load_plugin
    from harness.workload import registry as workloads

    for plugin in plugins:
        load_plugin(plugin)
    data: dict[str, Any] = {}
    if what in ("workloads", "all"):
        data["workloads"] = []
        for name in workloads.names():
            cls = workloads.get(name)
            data["workloads"].append({
                "name": name, "description": cls.description, "models": list(cls.models),
                "params": {k: {"type": p.type, "default": p.default, "help": p.help,
                               "spec": p.describe()} for k, p in cls.params.items()},
                **({"supports": cls.supports_by_model()} if hasattr(cls, "supports_by_model")
                   else {})})
    if what in ("backends", "all"):
        data["backends"] = []
        for name in backends.names():
            cls = backends.get(name)
            for device in cls.devices:
                spec = f"{name}:{device}" if device != "*" else f"{name}:<platform>[:<device>]"
                reason = parse_backend(f"{name}:{device if device != '*' else '0'}") \
                    .unusable_reason()
                data["backends"].append({"backend": spec, "usable": reason is None,
                                         "reason": reason, "description": cls.description})
    if what in ("suites", "all"):
        data["suites"] = [{"name": n, "path": str(p), "description": suite_description(p)}
                          for n, p in builtin_suites().items()]
    if as_json:
        _print_json(data)
        return
    console = _console()
    if "workloads" in data:
        t = Table(title="workloads", title_justify="left")
        for col in ("workload", "backends", "parameters", "description"):
            t.add_column(col, overflow="fold")
        for w in data["workloads"]:
            ps = "\n".join(f"{k} ({v['spec']})" for k, v in w["params"].items())
            t.add_row(w["name"], ", ".join(w["models"]), escape(ps), escape(w["description"]))
        console.print(t)
    if "backends" in data:
        t = Table(title="backends", title_justify="left")
        for col in ("backend", "usable here", "description / why not"):
            t.add_column(col, overflow="fold")
        for b in data["backends"]:
            t.add_row(b["backend"], "[green]yes[/green]" if b["usable"] else "[red]no[/red]",
                      escape(b["description"] if b["usable"] else b["reason"]))
        console.print(t)
    if "suites" in data:
        t = Table(title="suites", title_justify="left")
        t.add_column("suite")
        t.add_column("description", overflow="fold")
        for s in data["suites"]:
            t.add_row(s["name"], escape(s["description"]))
        console.print(t)


@cli.command()
@click.option("--backend", "-b", "backends", multiple=True, metavar="MODEL:DEVICE",
              help="Also describe these backends' devices (imports their frameworks).")
@json_option
def env(backends: tuple[str, ...], as_json: bool) -> None:
    """The environment fingerprint stored with every run."""
    from harness.backends.base import parse_backend
    from harness.env import env_hash, fingerprint, git_revision

    described = []
    for spec in _split(backends):
        b = parse_backend(spec)
        b.setup()
        described.append(b.describe())
    from cluster.fabric import detect

    fp = fingerprint(described)
    fp["fabric"] = detect()
    data = {"env_hash": env_hash(fp), "git": git_revision(), **fp}
    if as_json:
        _print_json(data)
        return
    cpu = fp["cpu"]
    lines = [
        ("hash", data["env_hash"]),
        ("host", fp["host"]),
        ("os", f"{fp['os']['system']} {fp['os']['release']} ({fp['os']['machine']})"),
        ("cpu", f"{cpu['model']}: {cpu['logical_cores']} logical, {cpu['physical_cores']} "
                f"physical, {cpu['usable_cores']} usable"),
        ("cpu flags", " ".join(f for f in cpu["flags"] if f.startswith(("avx", "fma", "amx",
                                                                       "sse4", "neon", "sve")))),
        ("memory", f"{(fp['memory_bytes'] or 0) / 2**30:.1f} GiB"),
        ("python", fp["python"]["version"]),
        ("libraries", ", ".join(f"{k} {v}" for k, v in fp["libraries"].items())),
        ("accelerators", json.dumps(fp["accelerators"]) if fp["accelerators"] else "none seen"),
        ("fabric", _fabric_line(fp["fabric"])),
        ("env vars", ", ".join(f"{k}={v}" for k, v in fp["env"].items()) or "none set"),
        ("git", (data["git"] or {}).get("revision", "not in a git repository")),
    ]
    lines += [(f"backend {d['backend']}", json.dumps({k: v for k, v in d.items()
                                                      if k != "backend"})) for d in described]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        click.echo(f"{k:<{width}}  {v}")


def _fabric_line(f: dict[str, Any]) -> str:
    ports = [f"{d['name']}:{p['port']} {p['state']} {p['rate'] or ''}".strip()
             for d in f["rdma_devices"] for p in d["ports"]]
    nics = [f"{n['name']} {n['operstate']}" + (f" {n['speed_mbps']} Mb/s" if n["speed_mbps"]
                                                else "") for n in f["nics"]]
    return f"{f['fabric']}; " + ", ".join(ports + nics)


@cli.command()
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@store_option
@run_dir_option
@json_option
def runs(limit: int, store: str | None, run_dir: Path, as_json: bool) -> None:
    """Runs in the store, newest first."""
    from results.report.table import runs_table

    rows = _open_store(store, run_dir).runs(limit)
    if as_json:
        _print_json(rows)
    elif not rows:
        click.echo("no runs yet: try `bench run --suite smoke`", err=True)
    else:
        _console().print(runs_table(rows))


@cli.command()
@click.argument("run_ref", metavar="RUN", default="latest")
@store_option
@run_dir_option
@json_option
def show(run_ref: str, store: str | None, run_dir: Path, as_json: bool) -> None:
    """One run: its header, environment and measurements. RUN is an id, prefix, latest~N."""
    from results.report.table import info_lines, measurement_json, measurements_table

    st = _open_store(store, run_dir)
    run_id = st.resolve(run_ref)
    header = st.run(run_id)
    rows = []
    for m in st.measurements([run_id]):
        rows.append({**m, "summary": {c: m[c] for c in ("n", "median", "p5", "p95", "ci_low",
                                                         "ci_high", "min", "max", "mean",
                                                         "stdev", "p25", "p75", "p99", "iqr",
                                                         "ci_level", "outliers")}})
    if as_json:
        _print_json({**{k: v for k, v in header.items()},
                     "measurements": [measurement_json(r) for r in rows]})
        return
    console = _console()
    env = header.get("env") or {}
    console.print(f"run {run_id}  [{header['status']}]  started {header['started_at']}",
                  highlight=False)
    console.print(f"command: {header['command']}", highlight=False, markup=False)
    if env:
        console.print(f"host {env.get('host')}, {env.get('cpu', {}).get('model')}, "
                      f"env {header['env_hash']}", highlight=False, markup=False)
    console.print(measurements_table(rows))
    for line in info_lines(rows):
        console.print(line, highlight=False, markup=False)
    _print_sweeps(console, rows)
    from harness.cli_profile import traces_line

    if line := traces_line(rows, run_id):
        console.print(line, highlight=False, markup=False)


def _print_sweeps(console: Any, rows: list[dict[str, Any]]) -> None:
    """Collectives: nccl-tests' size-sweep table too."""
    from results.report.collectives import sweep_table, sweeps

    for title, ms in sweeps(rows):
        console.print(sweep_table(title, ms))


@cli.command()
@click.argument("run_refs", metavar="[RUN]...", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet", "nccl-tests"]),
              default=None, help="Output format [default: from the file extension]; "
              "nccl-tests: collectives as nccl-tests prints them.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--samples", "long", is_flag=True,
              help="One row per raw sample instead of per measurement (JSON and Parquet rows "
              "carry them as a list column either way).")
@store_option
@run_dir_option
def export(run_refs: tuple[str, ...], fmt: str | None, output: Path, long: bool,
           store: str | None, run_dir: Path) -> None:
    """Export measurements (of the given runs, or all) as CSV, JSON or Parquet."""
    from results.frame import FORMATS, export, load, samples

    fmt = fmt or output.suffix.lstrip(".").lower()
    if fmt == "nccl-tests":
        from results.report.collectives import nccl_tests_text, sweeps

        st = _open_store(store, run_dir)
        ids = [st.resolve(r) for r in run_refs] or [st.resolve("latest")]
        rows = st.measurements(ids)
        if not sweeps(rows):
            raise UserError(f"run(s) {', '.join(i[:8] for i in ids)} hold no collective "
                            "measurements to export in nccl-tests format")
        output.write_text(nccl_tests_text(rows, ids))
        click.echo(f"wrote {sum(len(m) for _, m in sweeps(rows))} measurement(s) to {output}",
                   err=True)
        return
    if fmt not in FORMATS:
        raise UserError(f"cannot tell the format of {output}; add --format csv|json|parquet")
    st = _open_store(store, run_dir)
    refs = list(run_refs) or None
    df = samples(st, refs) if long else load(st, refs, samples=fmt != "csv")
    export(df, fmt, output)
    click.echo(f"wrote {len(df)} {'sample' if long else 'measurement'}(s) to {output}", err=True)


@cli.command()
@click.argument("base_ref", metavar="BASE")
@click.argument("head_ref", metavar="HEAD")
@click.option("--threshold", type=float, default=0.05, show_default=True,
              help="Smallest change (fraction of the base median) that counts.")
@click.option("--fdr", type=float, default=0.05, show_default=True,
              help="False-discovery rate across all cases (Benjamini-Hochberg).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "html"]),
              default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout (required for html).")
@click.option("--fail-on", type=click.Choice(["regression", "noise", "never"]), default="never",
              show_default=True, help="Exit 1 on a regression (or, with noise, also on noise).")
@store_option
@run_dir_option
def compare(base_ref: str, head_ref: str, threshold: float, fdr: float, fmt: str,
            output: Path | None, fail_on: str, store: str | None, run_dir: Path) -> None:
    """Did HEAD get slower than BASE? Case by case, with confidence intervals.

    BASE and HEAD are run ids, unique prefixes, latest~N, tag:KEY=VALUE or run files. Per case:
    the ratio of median times (head/base) with a 95% distribution-free interval. `regression`
    or `improvement` only when the change lies beyond --threshold with the false-discovery rate
    controlled across cases; `unchanged` when the interval lies within it; `noise` otherwise.

    \b
    Examples:
      bench compare tag:branch=main latest --format markdown >> "$GITHUB_STEP_SUMMARY"
      bench compare latest~1 latest --fail-on regression
    """
    from results.compare import REGRESSION
    from results.selection import compare_runs

    st = _open_store(store, run_dir)
    rc = compare_runs(st, base_ref, head_ref, threshold, fdr)
    result, base, head, env_diff = rc.comparison, rc.base, rc.head, rc.env_diff
    if fmt == "html" and output is None:
        raise UserError("--format html needs -o FILE")
    if fmt == "table":
        from rich.console import Console
        from rich.markup import escape

        from results.report.table import comparison_table

        console = _console() if output is None else Console(record=True, width=200,
                                                            file=open(os.devnull, "w"))  # noqa: SIM115
        for warning in rc.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
        for key, b, h in env_diff:
            console.print(f"[yellow]environment differs:[/yellow] {escape(key)}: "
                          f"{escape(repr(b))} -> {escape(repr(h))}", highlight=False)
        console.print(comparison_table(result, base, head))
        if output is not None:
            _write_text(console.export_text(), output)
    else:
        if fmt == "markdown":
            from results.report.markdown import compare_markdown

            text = compare_markdown(result, base, head, env_diff, rc.warnings)
        elif fmt == "json":
            from results.runfile import jsonable

            text = json.dumps(jsonable({
                "base": {"run_id": base["run_id"], "started_at": base["started_at"]},
                "head": {"run_id": head["run_id"], "started_at": head["started_at"]},
                "threshold": threshold, "fdr": fdr, "counts": result.counts(),
                "cases": [c.to_dict() for c in result.worst_first()],
                "only_base": result.only_base, "only_head": result.only_head,
                "environment_diff": [{"key": k, "base": b, "head": h} for k, b, h in env_diff],
                "warnings": rc.warnings,
            }), indent=2, default=str)
        else:
            from results.report.html import compare_html

            text = compare_html(result, base, head, env_diff, rc.warnings)
        _write_text(text, output)
    counts = result.counts()
    failing = counts[REGRESSION] + (counts["noise"] if fail_on == "noise" else 0)
    if fail_on != "never" and failing:
        click.echo(f"bench compare: {failing} case(s) fail the gate (--fail-on {fail_on})",
                   err=True)
        sys.exit(1)


@cli.command()
@click.argument("case", metavar="CASE")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Only runs with this tag (e.g. --tag branch=main).")
@click.option("--last", type=click.IntRange(min=2), default=50, show_default=True,
              help="How many of the newest matching runs to use.")
@click.option("--threshold", type=float, default=0.05, show_default=True,
              help="Smallest level change (fraction) reported as a step or a drift.")
@json_option
@store_option
@run_dir_option
def history(case: str, tags: tuple[str, ...], last: int, threshold: float, as_json: bool,
            store: str | None, run_dir: Path) -> None:
    """A case's median across runs, with change points and drift.

    CASE is a case key as `bench show` prints it (e.g. 'gemm[torch:cpu](dtype=float32,...)')
    or a part of one that matches a single case.

    \b
    Examples:
      bench history 'spin[numpy:cpu](us=10.0)'
      bench history 'gemm[torch:cpu]' --tag branch=main --last 30
    """
    from results.history import case_history
    from results.report.units import percent, seconds

    st = _open_store(store, run_dir)
    wanted = {k: ",".join(v) for k, v in _parse_kv(tags, "--tag").items()}
    runs = [r for r in st.runs()
            if all(str((r.get("tags") or {}).get(k)) == v for k, v in wanted.items())][:last]
    if not runs:
        raise UserError("no runs match" + (f" the tags {wanted}" if wanted else "")
                        + "; see `bench runs`")
    ids = [r["run_id"] for r in runs]
    keys = sorted({m["case_key"] for m in st.measurements(ids)})
    matches = [k for k in keys if k == case] or [k for k in keys if case in k]
    if not matches:
        raise UserError(f"no case matches {case!r} in the selected runs; "
                        "`bench show latest` lists case keys")
    if len(matches) > 1:
        shown = "; ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise UserError(f"{case!r} matches {len(matches)} cases ({shown}); give more of the key")
    hist = case_history(st, matches[0], ids, threshold)
    steps = hist.steps()
    if as_json:
        _print_json({"case_key": hist.case_key, "threshold": threshold,
                     "runs": [{"run_id": r, "started_at": t, "median": m, "ci_low": lo,
                               "ci_high": hi} for r, t, m, lo, hi in
                              zip(hist.run_ids, hist.started_at, hist.medians, hist.ci_low,
                                  hist.ci_high, strict=True)],
                     "change_points": hist.change_points,
                     "steps": [{"index": i, "run_id": hist.run_ids[i], "change": c}
                               for i, c in steps],
                     "drift": hist.drift()})
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"{hist.case_key}: {len(hist.medians)} run(s)"),
                  title_justify="left")
    for col in ("run", "started (UTC)", "median", "95% CI", "change"):
        table.add_column(col)
    starts = dict(steps)
    for i, (rid, t, m, lo, hi) in enumerate(zip(hist.run_ids, hist.started_at, hist.medians,
                                                 hist.ci_low, hist.ci_high, strict=True)):
        mark = f"[red]step {starts[i] * 100:+.1f}%[/red]" if i in starts else ""
        width = max(m - lo, hi - m) / m if m else float("inf")
        table.add_row(rid[:8], t[:19].replace("T", " "), seconds(m), percent(width), mark)
    console = _console()
    console.print(table)
    drift = hist.drift()
    console.print(f"{len(steps)} step(s) beyond ±{threshold:.0%}; drift first → last level "
                  f"{drift * 100:+.1f}%" + (" [red](beyond threshold)[/red]"
                                            if abs(drift) > threshold else ""), highlight=False)


def _write_text(text: str, output: Path | None) -> None:
    """To stdout, or to a file through a temporary name (never half-written)."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    folder = output.resolve().parent
    if not folder.is_dir():
        raise UserError(f"cannot write {output}: folder {folder} does not exist")
    tmp = folder / f".{output.name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, output)
    click.echo(f"wrote {output}", err=True)


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[KIND] RUN...")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (e.g. report.html).")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write each plot as PNG and SVG into this folder.")
@store_option
@run_dir_option
def report(args: tuple[str, ...], output: Path, plots_dir: Path | None, store: str | None,
           run_dir: Path) -> None:
    """Write a report of one or more runs. KIND is one of the report kinds (default html).

    \b
    Examples:
      bench report latest -o report.html           self-contained HTML with plots
      bench report html latest~1 latest -o ab.html
    """
    from results.report import KINDS, render

    kind, refs = ("html", list(args)) if args[0] not in KINDS else (args[0], list(args[1:]))
    if not refs:
        raise UserError(f"bench report {kind}: give at least one RUN (e.g. latest)")
    st = _open_store(store, run_dir)
    ids = [st.resolve(r) for r in refs]
    options: dict[str, Any] = {"plots_dir": plots_dir} if plots_dir else {}
    if kind == "html":
        options["run_dir"] = run_dir  # where moved run folders keep their traces
    render(kind, st, ids, output, **options)
    click.echo(f"wrote {output}", err=True)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@store_option
def ingest(paths: tuple[Path, ...], store: str | None) -> None:
    """Load run files (or folders of them) into the store; loading twice changes nothing."""
    from results.ingest import ingest_paths
    from results.store import Store

    counts = ingest_paths(Store(store), list(paths))
    click.echo(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no run files found")


def _register_cluster_commands() -> None:
    from harness.cli_cluster import register
    from harness.cli_profile import register as register_profile

    register(cli)
    register_profile(cli)


_register_cluster_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes end with one line on stderr and exit code 2."""
    code = 1
    try:
        _main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:
        from harness.exiting import report_exit

        report_exit(code)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="bench", standalone_mode=False)
    except UserError as exc:
        click.echo(f"bench: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("bench: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"bench: error: {exc.format_message()}", err=True)
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(f"Try '{exc.ctx.command_path} --help'.", err=True)
        sys.exit(2)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
