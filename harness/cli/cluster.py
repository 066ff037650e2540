"""`bench submit`, `bench jobs`, `bench collect`, `bench site`: the Slurm side of the front end."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import click

from harness.cli.args import parse_counts, parse_tags
from harness.cli.options import (
    Profiling,
    Selection,
    Timing,
    build_plan,
    ingest_command,
    json_option,
    profile_options,
    selection_options,
    store_options,
    tag_option,
    timing_options,
)
from harness.cli.render import console
from harness.errors import UserError

JOB_RUN_DIR_HELP = ("Results folder on the shared filesystem: run files, job scripts and job "
                    "output [env BENCH_RUN_DIR].")


def _job_name(suite: str | None, workloads: list[str]) -> str:
    base = "bench-" + (Path(suite).stem if suite else "-".join(workloads))
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", base)[:100]


@click.command()
@selection_options()
@timing_options()
@profile_options()
@tag_option("Tags for the runs.")
@click.option("--site", metavar="NAME|FILE",
              help="Site: the cluster's partitions, launcher, modules and env (see `bench site "
                   "list`).")
@click.option("--job-name", help="Slurm job name [default bench-<suite or workloads>].")
@click.option("--nodes", type=click.IntRange(min=1))
@click.option("--ntasks", type=click.IntRange(min=1))
@click.option("--ntasks-per-node", type=click.IntRange(min=1))
@click.option("--cpus-per-task", type=click.IntRange(min=1))
@click.option("--gpus-per-node", metavar="[TYPE:]N")
@click.option("--partition")
@click.option("--account")
@click.option("--qos")
@click.option("--time", "time_limit", metavar="D-HH:MM:SS")
@click.option("--constraint")
@click.option("--exclusive", is_flag=True)
@click.option("--array", "array_param", metavar="PARAM",
              help="One array task per value of this -p parameter (a sweep).")
@click.option("--scaling", metavar="N[,N]", help="One job per count, e.g. --scaling 1,2,4.")
@click.option("--scaling-by", type=click.Choice(["nodes", "tasks"]), default="nodes",
              show_default=True, help="What --scaling counts.")
@click.option("--nodelist", metavar="NODES", help="Run on these nodes (sbatch --nodelist).")
@click.option("--each-node", is_flag=True,
              help="Qualify: one single-node run per node of the allocation (srun -w), each "
                   "tagged nodes=NODE, for `bench triage`.")
@click.option("--pairs", metavar="ring|all|k=N",
              help="Qualify: one two-node run (a rank on each) per node pair: ring (each node "
                   "and the next), all, or k=N (each node and the next N); tagged nodes=A,B.")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, show_default=True,
              help="--each-node/--pairs: go over the nodes or pairs this many times.")
@click.option("--reference", "reference_path", metavar="FILE",
              help="A reference file: the runs store pct_expected [default: the site's].")
@click.option("--dry-run", is_flag=True, help="Print the sbatch script(s); submit nothing.")
@json_option()
@store_options(run_dir_help=JOB_RUN_DIR_HELP)
def submit(selection: Selection, timing: Timing, profiling: Profiling, tags: tuple[str, ...],
           site: str | None, job_name: str | None, nodes: int | None, ntasks: int | None,
           ntasks_per_node: int | None, cpus_per_task: int | None, gpus_per_node: str | None,
           partition: str | None, account: str | None, qos: str | None,
           time_limit: str | None, constraint: str | None, exclusive: bool,
           array_param: str | None, scaling: str | None, scaling_by: str, nodelist: str | None,
           each_node: bool, pairs: str | None, repeat: int, reference_path: str | None,
           dry_run: bool, as_json: bool, store: str | None, run_dir: Path) -> None:
    """Submit cases to Slurm as batch jobs; results come back as run files in --run-dir.

    Takes the same case selection, timing and profiling options as `bench run` and passes
    every one given on to the job's `bench run`; sbatch options go under Slurm's own names.
    The cases and values are validated here, before anything is submitted. Collect results
    with `bench collect`; follow jobs with `bench jobs`.

    \b
    Examples:
      bench submit --suite quick --partition debug --time 00:30:00
      bench submit -w gemm -b torch:cuda -p m=1024,2048,4096 --array m --gpus-per-node 1
      bench submit -w allreduce -b nccl --scaling 1,2,4,8 --ntasks-per-node 4 --site mycluster
      bench submit -w spin -p us=10 --rounds 3 --no-check --dry-run
      bench submit -w gemm -b numpy:cpu --nodes 16 --each-node --repeat 2 --tag qual=rack3
      bench submit -w p2p -b gloo -p size=1MiB --nodes 16 --pairs ring --tag qual=rack3
    """
    from cluster import slurm
    from cluster.sites import load_site

    # Validate every case and value now: a bad one must fail here, not in the queue. The
    # backends are not set up: their devices are on the compute nodes, not necessarily here.
    build_plan(selection, timing, verb="submit")
    array_values: list[str] = []
    if array_param:
        parsed = selection.parsed_params()
        if selection.suite or array_param not in parsed:
            raise UserError(f"--array {array_param}: give the values to sweep with "
                            f"-p {array_param}=V1,V2,... (not with --suite)")
        array_values = parsed[array_param]
    profiling.validate()
    stepped = each_node or pairs is not None
    if stepped:
        if pairs is not None:
            slurm.pair_stride(pairs)  # a malformed --pairs: one line, now
        clash = [n for n, v in (("--array", array_param), ("--scaling", scaling),
                                ("--ntasks", ntasks)) if v]
        if clash:
            raise UserError(f"--each-node/--pairs run their own steps; leave out {clash[0]}")
        if not nodes and not nodelist:
            raise UserError("--each-node/--pairs need the nodes to go over: --nodes N or "
                            "--nodelist NODES")
        if pairs is not None and nodes == 1:
            raise UserError("--pairs needs at least 2 nodes (--nodes 2 or more)")
        ntasks_per_node = ntasks_per_node or 1
    elif repeat != 1:
        raise UserError("--repeat is for --each-node/--pairs")
    args = [*selection.run_args(omit_param=array_param), *timing.run_args(),
            *profiling.run_args()]
    tag_values = parse_tags(tags)
    chosen_site = load_site(site)
    reference_file = reference_path or chosen_site.reference
    if reference_file is not None:  # checked here (one line), passed on as an absolute path
        from results.reference import load as load_reference

        load_reference(reference_file)
        args += ["--reference", str(Path(reference_file).resolve())]
    run_dir = run_dir.resolve()
    name = job_name or _job_name(selection.suite, selection.workload_names())
    counts: list[int | None] = [*parse_counts(scaling, "--scaling")] if scaling else [None]
    requests = []
    for count in counts:
        req = slurm.JobRequest(
            job_name=name if count is None else f"{name}-{scaling_by[0]}{count}",
            bench_args=args, run_dir=run_dir, workdir=Path.cwd(), site=chosen_site,
            nodes=count if scaling_by == "nodes" and count else nodes,
            ntasks=count if scaling_by == "tasks" and count else ntasks,
            ntasks_per_node=ntasks_per_node, cpus_per_task=cpus_per_task,
            gpus_per_node=gpus_per_node, partition=partition, account=account, qos=qos,
            time=time_limit, constraint=constraint, exclusive=exclusive,
            array_param=array_param, array_values=array_values,
            tags={**tag_values, **({"scaling": f"{scaling_by}={count}"} if count else {})},
            nodelist=nodelist, each_node=each_node, pairs=pairs, repeat=repeat)
        requests.append((req, slurm.render(req)))
    if dry_run:
        if as_json:
            click.echo(json.dumps([{"job_name": r.job_name, "script": s} for r, s in requests],
                                  indent=2))
        else:
            click.echo("\n".join(s for _, s in requests))
        return
    submitted = []
    scripts = run_dir / "jobs"
    for req, script in requests:
        scripts.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        path = scripts / f"{req.job_name}-{stamp}.sbatch"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(script)
        os.replace(tmp, path)
        job_id = slurm.submit(path)
        entry = {"job_id": job_id, "job_name": req.job_name, "script": str(path),
                 "submitted_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                 "array_values": array_values, "request": slurm.as_dict(req)}
        slurm.record_job(run_dir, entry)
        submitted.append(entry)
        if not as_json:
            click.echo(f"submitted job {job_id} ({req.job_name}); script {path}")
    if as_json:
        click.echo(json.dumps([{k: e[k] for k in ("job_id", "job_name", "script")}
                               for e in submitted], indent=2))


def _runs_by_job(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Run files in the results folder, by the Slurm job that wrote them (from their header)."""
    from results.runfile import PART, SUFFIX

    out: dict[str, list[dict[str, Any]]] = {}
    if not run_dir.is_dir():
        return out
    for path in sorted([*run_dir.glob(f"*{SUFFIX}"), *run_dir.glob(f"*{PART}")]):
        try:
            with open(path, encoding="utf-8") as fh:
                header = json.loads(fh.readline())
        except (OSError, json.JSONDecodeError):
            continue
        job = (header.get("tags") or {}).get("slurm_job")
        if job:
            out.setdefault(str(job), []).append(
                {"run_id": header.get("run_id"), "file": path.name,
                 "status": "running or killed" if path.name.endswith(PART) else "finished"})
    return out


@click.command()
@click.option("--cancel", "cancel_id", metavar="JOB_ID", help="Cancel this job (scancel).")
@json_option()
@store_options(store=False, run_dir_help=JOB_RUN_DIR_HELP)
def jobs(cancel_id: str | None, as_json: bool, run_dir: Path) -> None:
    """Submitted jobs with their Slurm state, the reason a job failed, and their run files.

    \b
    Examples:
      bench jobs
      bench jobs --json --run-dir /scratch/me/bench-runs
      bench jobs --cancel 12345
    """
    from cluster import slurm

    if cancel_id:
        slurm.cancel(cancel_id)
        click.echo(f"cancelled job {cancel_id}")
        return
    recorded = slurm.recorded_jobs(run_dir)
    if not recorded:
        click.echo(f"no jobs submitted from {run_dir} yet (bench submit ...)", err=True)
        if as_json:
            click.echo("[]")
        return
    states = slurm.job_states([j["job_id"] for j in recorded])
    runs = _runs_by_job(run_dir)
    rows = []
    for j in recorded:
        tasks = states.get(j["job_id"]) or []
        failed = [t for t in tasks if t.state in ("FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                                                   "TIMEOUT", "BOOT_FAIL")]
        rows.append({
            "job_id": j["job_id"], "job_name": j["job_name"], "submitted_at": j["submitted_at"],
            "states": [{"task": t.job_id, "state": t.state, "reason": t.reason,
                        "exit_code": t.exit_code, "source": t.source} for t in tasks],
            "state": (",".join(sorted({t.state for t in tasks})) if tasks else "UNKNOWN"),
            "failure": "; ".join(sorted({slurm.failure_reason(run_dir, t) for t in failed})),
            "runs": runs.get(j["job_id"], []),
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for col in ("job", "name", "submitted (UTC)", "state", "runs", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["job_id"], escape(r["job_name"]), r["submitted_at"][:19].replace("T", " "),
                      r["state"], str(len(r["runs"])), escape(r["failure"]))
    console().print(table)


@click.command()
@store_options(run_dir_help=JOB_RUN_DIR_HELP)
def collect(store: str | None, run_dir: Path) -> None:
    """Ingest the run files that batch jobs wrote to --run-dir into the store.

    \b
    Examples:
      bench collect
      bench collect --run-dir /scratch/me/bench-runs --store team.db
    """
    if not run_dir.is_dir():
        raise UserError(f"no results folder {run_dir}; give --run-dir (the folder the jobs "
                        "wrote to)")
    ingest_command(store, [run_dir], "no run files yet")


@click.group()
def site() -> None:
    """Sites: partitions, launcher, MPI type, modules and env per cluster.

    \b
    Examples:
      bench site list
      bench site check local
      bench site check ./mycluster.toml
    """


@site.command("list")
def site_list() -> None:
    """Built-in sites.

    \b
    Examples:
      bench site list
    """
    from cluster.sites import builtin_sites, load_site

    for name in builtin_sites():
        click.echo(f"{name:16s} {load_site(name).description}")


@site.command("check")
@click.argument("ref", metavar="NAME|FILE")
def site_check(ref: str) -> None:
    """Validate a site, and against the local Slurm when there is one.

    \b
    Examples:
      bench site check local
      bench site check ./mycluster.toml
    """
    import shutil
    import subprocess

    from cluster.sites import load_site

    chosen_site = load_site(ref)
    click.echo(f"site {chosen_site.name}: valid ({chosen_site.description})")
    if chosen_site.reference is not None:  # a reference it names must be one
        from results.reference import load as load_reference

        named = load_reference(chosen_site.reference)
        click.echo(f"reference {chosen_site.reference}: {len(named.expectations)} expectation(s)")
    if shutil.which("sinfo") is None:
        click.echo("no Slurm client here: partitions not checked against a cluster")
        return
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True,
                              timeout=20)
    except subprocess.TimeoutExpired:
        raise UserError("sinfo did not answer within 20 s; is slurmctld running?") from None
    if proc.returncode != 0:
        raise UserError(f"sinfo failed: {' '.join(proc.stderr.split())}")
    have = set(proc.stdout.split())
    missing = [p for p in chosen_site.partitions if p not in have]
    if missing:
        raise UserError(f"site {chosen_site.name}: partition(s) {', '.join(missing)} do not exist "
                        f"on this cluster (it has: {', '.join(sorted(have))})")
    click.echo(f"partitions present: {', '.join(chosen_site.partitions) or '(none listed)'}")


COMMANDS = [submit, jobs, collect, site]
