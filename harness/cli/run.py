"""`bench run`: measure cases, in this process or as ranks started by a launcher."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from cluster.launchers import names as launcher_names
from harness.cli.args import parse_counts, parse_tags
from harness.cli.options import (
    Profiling,
    Selection,
    Timing,
    build_plan,
    json_option,
    open_store,
    profile_options,
    selection_options,
    store_options,
    tag_option,
    timing_options,
)
from harness.cli.render import console, print_json, print_sweeps
from harness.errors import UserError
from harness.files import check_run_dir


@click.command()
@selection_options()
@tag_option("Label the run (e.g. --tag branch=main); shown by `bench runs`.")
@timing_options()
@click.option("--dry-run", is_flag=True, help="List the cases that would run, run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--launcher", type=click.Choice(launcher_names()),
              help="Start the ranks with this launcher (with -n or --ranks) [default local].")
@click.option("-n", "--nranks", type=click.IntRange(min=1), metavar="N",
              help="Number of ranks to start (see --launcher).")
@click.option("--ranks", "rank_list", metavar="N[,N]",
              help="Scaling sweep: one run per world size, e.g. --ranks 1,2,4.")
@click.option("--no-store", is_flag=True,
              help="Write the run file only (batch jobs: `bench collect` ingests it later).")
@click.option("--reference", "reference_path", metavar="FILE",
              help="A reference file: each measurement it has an expectation for also stores "
                   "pct_expected (see `bench check`).")
@profile_options()
@store_options()
@json_option()
def run(selection: Selection, tags: tuple[str, ...], timing: Timing, dry_run: bool, quiet: bool,
        launcher: str | None, nranks: int | None, rank_list: str | None, no_store: bool,
        reference_path: str | None, profiling: Profiling, store: str | None, run_dir: Path,
        as_json: bool) -> None:
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
      bench run --suite quick --reference site.toml      # stores pct_expected per case
    """
    selection.load_plugins()  # before the tags, as ever: a broken plugin is the first error
    tag_values = parse_tags(tags)
    suite_name, plan = build_plan(selection, timing)
    reference = None
    if reference_path is not None:  # a malformed file: one line before anything runs
        from results.reference import load as load_reference

        reference = load_reference(reference_path)
    if dry_run:
        if as_json:
            print_json([{"case_key": p.case.key, "policy": p.policy.to_dict()} for p in plan])
        else:
            for p in plan:
                click.echo(p.case.key)
        return

    profile = profiling.request(plan)
    from cluster.launch import ENV_LAUNCHED, placement
    from harness.progress import ProgressReporter
    from harness.runner import EXIT_RANK_FAILED, execute, inject_slow_start, setup_backends
    from results.report.table import measurement_json, measurements_table

    inside = os.environ.get(ENV_LAUNCHED) or placement().launched  # already a rank
    if not inside and (launcher or nranks or rank_list):
        _launch_ranks(launcher or "local", nranks, rank_list, timing.rank_timeout, plan, store,
                      run_dir)  # never returns
    from harness import exiting

    exiting.install()  # a signal from here stops the run, until the run is stored
    comm, rank = _join_ranks(launcher, nranks, timing.rank_timeout)
    inject_slow_start(rank)
    backends = setup_backends(plan)  # a missing package or device fails before any write
    if rank == 0:  # a run folder that cannot be written: one line before the store is made
        check_run_dir(run_dir)
    st = open_store(store, None, create=True) if rank == 0 and not no_store else None
    reporter = ProgressReporter(quiet=quiet)
    result = execute(plan, st, run_dir, reporter, tags=tag_values, suite=suite_name,
                     argv=["bench", *sys.argv[1:]], backends=backends, comm=comm,
                     check=timing.check, run_id=os.environ.get("BENCH_RUN_ID"),
                     profile=profile, reference=reference)
    if result.error:
        kept = rank == 0 and result.status == "partial"
        from harness.cli import error_line

        click.echo(error_line(result.error + (f"; finished cases kept (run {result.run_id}, "
                                              "partial)" if kept else "")), err=True)
    interrupted = result.exit_code >= 128 and not result.error
    if interrupted and rank == 0 and not os.environ.get(exiting.ENV_EXIT_FILE):
        click.echo(exiting.interrupted_line(result.exit_code - 128, result.run_id), err=True)
    # A rank stopped inside a collective leaves the backend's threads running (Gloo's, MPI's):
    # the interpreter's shutdown would destroy them joinable ("terminate called without an
    # active exception", an abort). What is kept is kept by now: end without it.
    hard = result.exit_code == EXIT_RANK_FAILED or (interrupted and comm.size > 1)
    if rank != 0:
        _end(result.exit_code, hard=hard)
    measured = result.measurements
    if as_json:
        print_json({"run_id": result.run_id, "status": result.status,
                    "run_file": str(result.path), "store": st.name if st else None,
                    "measurements": [measurement_json(m) for m in measured]})
    else:
        out = console()
        out.print(measurements_table(measured, title=f"run {result.run_id} ({result.status})"))
        print_sweeps(out, measured)
        where = f"stored in {st.name}; " if st and result.ingested else ""
        out.print(f"{where}run file {result.path}", highlight=False)
    note = exiting.late_note(result.run_id, result.status)
    if note and not os.environ.get(exiting.ENV_EXIT_FILE):  # else the launching bench says it
        click.echo(note, err=True)
    _end(result.exit_code, hard=hard)


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
    table = {json.dumps([m.workload, sorted(m.params.items())]): m.metrics.get("samples_per_s")
             for m in record.run.measurements if m.ok}
    fd, path = tempfile.mkstemp(prefix="bench-scaling-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(table, fh)
    return {BASELINE_ENV: path}


def _launch_ranks(launcher: str, nranks: int | None, rank_list: str | None, timeout: float,
                  plan: list[Any], store: str | None, run_dir: Path) -> None:
    """Start the ranks (once per world size of --ranks), then exit with rank 0's exit code."""
    import uuid

    from cluster.launch import ENV_RUN_ID, launch
    from harness import exiting

    exiting.install()  # until the ranks start, a signal ends this bench in one line
    from harness.distributed import startup_timeout

    startup_timeout()  # a malformed $BENCH_STARTUP_TIMEOUT: one line here, not one per rank
    if nranks and rank_list:
        raise UserError("give either -n N or --ranks N,N,..., not both")
    from cluster import launchers
    from harness.backends.base import parse_backend

    needs_mpi = sorted({p.case.backend for p in plan
                        if parse_backend(p.case.backend).needs_mpi_world})
    if needs_mpi and not launchers.get(launcher).mpi_world:
        able = [n for n in launchers.names() if launchers.get(n).mpi_world]
        raise UserError(f"backend {needs_mpi[0]} needs MPI ranks: use --launcher "
                        f"{' or '.join(able)}, not {launcher}")
    sizes = parse_counts(rank_list, "--ranks") if rank_list else [nranks or 1]
    from harness.runner import setup_backends

    setup_backends(plan)  # a missing package or device: one line here, not one per rank
    check_run_dir(run_dir)  # (and a run folder rank 0 could not write)
    run_ids, code, extra = [], 0, {}
    for n in sizes:
        run_ids.append(str(uuid.uuid4()))
        code = launch(launcher, n, sys.argv[1:], timeout, {ENV_RUN_ID: run_ids[-1], **extra})
        if code != 0 or exiting.noted() is not None:  # a signal as a run ended ends the sweep
            break
        if rank_list and len(run_ids) == 1:  # later sizes store efficiency against this one
            extra = _scaling_baseline(run_dir / f"{run_ids[0]}.jsonl")
    if rank_list and code == 0 and exiting.noted() is None:  # (a cut sweep: no table)
        from results.report.scaling import scaling_table

        st = open_store(store, run_dir, create=True)
        console().print(scaling_table(st, run_ids))
    late = exiting.noted()
    if late is not None and code < 128:
        click.echo(f"bench: {signal.Signals(late).name} came as the run ended; it is stored, "
                   f"exit code {code}", err=True)
    # Not sys.exit: the interpreter's shutdown puts the default handlers back, and a signal
    # that came as the run ended would then kill this process (-2) after a stored run.
    exiting.exit_now(code)


COMMANDS = [run]
