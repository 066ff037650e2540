"""`bench submit`, `bench jobs`, `bench collect`, `bench site`: the Slurm side of the front end."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import click

from harness.errors import UserError


def _run_dir_option(f: Any) -> Any:
    return click.option("--run-dir", envvar="BENCH_RUN_DIR", default="bench-runs",
                        type=click.Path(file_okay=False, path_type=Path), show_default=True,
                        help="Results folder on the shared filesystem: run files, job scripts "
                             "and job output [env BENCH_RUN_DIR].")(f)


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _params(items: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"-p {item!r} is not key=value (e.g. -p m=64,128)")
        out.setdefault(key.strip(), []).extend(v.strip() for v in value.split(","))
    return out


def _job_name(suite: str | None, workloads: list[str]) -> str:
    base = "bench-" + (Path(suite).stem if suite else "-".join(workloads))
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", base)[:100]


@click.command()
@click.option("--suite", "-s", metavar="NAME|FILE", help="A built-in suite or a suite file.")
@click.option("-w", "--workload", "workloads", multiple=True, metavar="NAME[,NAME]")
@click.option("-b", "--backend", "backends", multiple=True, metavar="MODEL:DEVICE[,...]")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=V1[,V2]")
@click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False))
@click.option("--budget", type=float, metavar="SECONDS", help="Per-case sampling budget.")
@click.option("--target-ci", type=float, metavar="FRACTION")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tags for the runs.")
@click.option("--site", metavar="NAME|FILE", help="Site profile (see `bench site list`).")
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
@click.option("--dry-run", is_flag=True, help="Print the sbatch script(s); submit nothing.")
@click.option("--json", "as_json", is_flag=True)
@_run_dir_option
def submit(suite: str | None, workloads: tuple[str, ...], backends: tuple[str, ...],
           params: tuple[str, ...], plugins: tuple[str, ...], budget: float | None,
           target_ci: float | None, tags: tuple[str, ...], site: str | None,
           job_name: str | None, nodes: int | None, ntasks: int | None,
           ntasks_per_node: int | None, cpus_per_task: int | None, gpus_per_node: str | None,
           partition: str | None, account: str | None, qos: str | None,
           time_limit: str | None, constraint: str | None, exclusive: bool,
           array_param: str | None, scaling: str | None, scaling_by: str, dry_run: bool,
           as_json: bool, run_dir: Path) -> None:
    """Submit cases to Slurm as batch jobs; results come back as run files in --run-dir.

    Takes the same case selection as `bench run`, and sbatch options under Slurm's own names.
    The cases are validated here, before anything is submitted. Collect results with
    `bench collect`; follow jobs with `bench jobs`.

    \b
    Examples:
      bench submit --suite quick --partition debug --time 00:30:00
      bench submit -w gemm -b torch:cuda -p m=1024,2048,4096 --array m --gpus-per-node 1
      bench submit -w allreduce -b nccl --scaling 1,2,4,8 --ntasks-per-node 4 --site mycluster
    """
    from cluster import slurm
    from cluster.sites import load_site
    from harness.config import expand, load_suite
    from harness.registry import load_plugin

    for plugin in plugins:
        load_plugin(plugin)
    if suite and (workloads or backends or params):
        raise UserError("give either --suite or -w/-b/-p, not both")
    if not suite and not workloads:
        raise UserError("nothing to submit: give --suite NAME or -w WORKLOAD")
    parsed = _params(params)
    array_values: list[str] = []
    if array_param:
        if suite or array_param not in parsed:
            raise UserError(f"--array {array_param}: give the values to sweep with "
                            f"-p {array_param}=V1,V2,... (not with --suite)")
        array_values = parsed[array_param]
    # Validate every case now: a bad value must fail here, not in the queue.
    if suite:
        load_suite(suite)
    else:
        expand(_split(workloads), _split(backends) or None, parsed, "command line")
    args: list[str] = [a for p in plugins for a in ("--plugin", str(Path(p).resolve()))]
    if suite:
        args += ["--suite", suite if not Path(suite).is_file() else str(Path(suite).resolve())]
    else:
        args += ["-w", ",".join(_split(workloads))]
        if backends:
            args += ["-b", ",".join(_split(backends))]
        for key, values in parsed.items():
            if key != array_param:
                args += ["-p", f"{key}={','.join(values)}"]
    if budget is not None:
        args += ["--budget", repr(budget)]
    if target_ci is not None:
        args += ["--target-ci", repr(target_ci)]
    tag_values = {k: ",".join(v) for k, v in _params(tags).items()} if tags else {}
    profile = load_site(site)
    run_dir = run_dir.resolve()
    name = job_name or _job_name(suite, _split(workloads))
    counts: list[int | None] = [None]
    if scaling:
        try:
            counts = [int(x) for x in _split((scaling,))]
        except ValueError:
            counts = []
        if not counts or min(counts) < 1:
            raise UserError(f"--scaling {scaling!r} is not a list of positive whole numbers")
    requests = []
    for count in counts:
        req = slurm.JobRequest(
            job_name=name if count is None else f"{name}-{scaling_by[0]}{count}",
            bench_args=args, run_dir=run_dir, workdir=Path.cwd(), site=profile,
            nodes=count if scaling_by == "nodes" and count else nodes,
            ntasks=count if scaling_by == "tasks" and count else ntasks,
            ntasks_per_node=ntasks_per_node, cpus_per_task=cpus_per_task,
            gpus_per_node=gpus_per_node, partition=partition, account=account, qos=qos,
            time=time_limit, constraint=constraint, exclusive=exclusive,
            array_param=array_param, array_values=array_values,
            tags={**tag_values, **({"scaling": f"{scaling_by}={count}"} if count else {})})
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
@click.option("--json", "as_json", is_flag=True)
@_run_dir_option
def jobs(cancel_id: str | None, as_json: bool, run_dir: Path) -> None:
    """Submitted jobs with their Slurm state, the reason a job failed, and their run files."""
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
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for col in ("job", "name", "submitted (UTC)", "state", "runs", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["job_id"], escape(r["job_name"]), r["submitted_at"][:19].replace("T", " "),
                      r["state"], str(len(r["runs"])), escape(r["failure"]))
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(table)


@click.command()
@click.option("--store", envvar="BENCH_STORE", metavar="PATH|URL",
              help="Results store [env BENCH_STORE; default ./bench.db].")
@_run_dir_option
def collect(store: str | None, run_dir: Path) -> None:
    """Ingest the run files that batch jobs wrote to --run-dir into the store."""
    from results.ingest import ingest_paths
    from results.store import Store

    if not run_dir.is_dir():
        raise UserError(f"no results folder {run_dir}; give --run-dir (the folder the jobs "
                        "wrote to)")
    counts = ingest_paths(Store(store), [run_dir])
    click.echo(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no run files yet")


@click.group()
def site() -> None:
    """Site profiles: partitions, launcher, MPI type, modules and env per cluster."""


@site.command("list")
def site_list() -> None:
    """Built-in site profiles."""
    from cluster.sites import builtin_sites, load_site

    for name in builtin_sites():
        click.echo(f"{name:16s} {load_site(name).description}")


@site.command("check")
@click.argument("ref", metavar="NAME|FILE")
def site_check(ref: str) -> None:
    """Validate a profile, and against the local Slurm when there is one."""
    import shutil
    import subprocess

    from cluster.sites import load_site

    profile = load_site(ref)
    click.echo(f"site {profile.name}: profile is valid ({profile.description})")
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
    missing = [p for p in profile.partitions if p not in have]
    if missing:
        raise UserError(f"site {profile.name}: partition(s) {', '.join(missing)} do not exist "
                        f"on this cluster (it has: {', '.join(sorted(have))})")
    click.echo(f"partitions present: {', '.join(profile.partitions) or '(none listed)'}")


def register(cli: click.Group) -> None:
    for command in (submit, jobs, collect, site):
        cli.add_command(command)
