"""`bench submit`, `bench jobs`, `bench collect`, `bench site`: the Slurm side of the front end."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import click

from harness.cli_args import parse_counts, parse_kv
from harness.cli_args import split_values as _split
from harness.errors import UserError


def _run_dir_option(f: Any) -> Any:
    return click.option("--run-dir", envvar="BENCH_RUN_DIR", default="bench-runs",
                        type=click.Path(file_okay=False, path_type=Path), show_default=True,
                        help="Results folder on the shared filesystem: run files, job scripts "
                             "and job output [env BENCH_RUN_DIR].")(f)


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
    parsed = parse_kv(params, "-p")
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
    tag_values = {k: ",".join(v) for k, v in parse_kv(tags, "--tag").items()}
    profile = load_site(site)
    run_dir = run_dir.resolve()
    name = job_name or _job_name(suite, _split(workloads))
    counts: list[int | None] = [*parse_counts(scaling, "--scaling")] if scaling else [None]
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


@click.group()
def model() -> None:
    """The alpha-beta (latency-bandwidth) model: fit it to measured sweeps, predict at scale."""


def _size_list(text: str) -> list[int]:
    from harness.params import parse_size

    try:
        return [parse_size(x) for x in _split((text,))]
    except ValueError as exc:
        raise UserError(f"--size: {exc}") from None


@model.command("fit")
@click.argument("run_refs", nargs=-1, required=True, metavar="RUN...")
@click.option("--algorithm", type=click.Choice(["ring", "tree"]), default="ring",
              show_default=True, help="Cost model the collectives are assumed to follow.")
@click.option("--holdout", "holdout_refs", multiple=True, metavar="RUN",
              help="Report the fitted model's error on these runs too (not fitted on).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the fitted fabric profile (JSON) for `bench model predict --fabric`.")
@click.option("--name", default="fitted", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--store", envvar="BENCH_STORE", metavar="PATH|URL")
@_run_dir_option
def model_fit(run_refs: tuple[str, ...], algorithm: str, holdout_refs: tuple[str, ...],
              output: Path | None, name: str, as_json: bool, store: str | None,
              run_dir: Path) -> None:
    """Fit alpha (latency) and beta (bandwidth) to the p2p/collective sweeps of RUN(s).

    \b
    Example:
      bench run -w p2p -b mpi -p size=8B..16MiB*4 --launcher mpirun -n 2
      bench model fit latest -o mpi-loopback.json
    """
    import numpy as np

    from cluster.model import fit, points_from_measurements, relative_errors
    from results.ingest import sync_run_dir
    from results.store import Store

    st = Store(store)
    if run_dir.is_dir():
        sync_run_dir(st, run_dir)
    ids = [st.resolve(r) for r in run_refs]
    points = points_from_measurements(st.measurements(ids))
    fabric = fit(points, algorithm, name)
    result = {"fabric": name, "alpha_us": fabric.alpha_s * 1e6,
              "beta_gbps": fabric.beta_bytes_per_s / 1e9, **fabric.fit,
              "points": [{"collective": p.collective, "ranks": p.ranks, "size": p.size,
                          "measured_s": p.time_s, "error": float(e)}
                         for p, e in zip(points, relative_errors(fabric, points, algorithm),
                                         strict=True)]}
    if holdout_refs:
        held = points_from_measurements(st.measurements([st.resolve(r) for r in holdout_refs]))
        if not held:
            raise UserError("the --holdout runs hold no p2p or collective measurements")
        err = relative_errors(fabric, held, algorithm)
        result["holdout"] = {"points": len(held),
                             "median_abs_rel_error": float(np.median(np.abs(err))),
                             "max_abs_rel_error": float(np.max(np.abs(err)))}
    if output is not None:
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_text(fabric.to_json())
        os.replace(tmp, output)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{name}: alpha = {result['alpha_us']:.3g} us, beta = {result['beta_gbps']:.4g} "
               f"GB/s ({algorithm} cost model, {fabric.fit['points']} points)")
    click.echo(f"fit error: median {fabric.fit['median_abs_rel_error']:.1%}, "
               f"max {fabric.fit['max_abs_rel_error']:.1%} (on the fitted points)")
    if "holdout" in result:
        h = result["holdout"]
        click.echo(f"held-out error: median {h['median_abs_rel_error']:.1%}, "
                   f"max {h['max_abs_rel_error']:.1%} on {h['points']} point(s)")
    if output is not None:
        click.echo(f"wrote {output}", err=True)


@model.command("predict")
@click.option("--fabric", "fabric_ref", required=True, metavar="PRESET|FILE",
              help="hdr, ndr, efa, 100gbe, or a profile from `bench model fit -o`.")
@click.option("--nodes", default="8,16,32,64,128,256,512,1024,2048,4096", show_default=True,
              metavar="N[,N]", help="Node counts (one rank per node).")
@click.option("--size", default="1GiB", show_default=True, metavar="BYTES[,BYTES]",
              help="Buffer size(s), e.g. 8B,1MiB,1GiB.")
@click.option("--collective", type=click.Choice(
    ["allreduce", "allgather", "reduce-scatter", "broadcast", "alltoall"]),
    default="allreduce", show_default=True)
@click.option("--gradient-bytes", metavar="BYTES",
              help="Data-parallel training: gradient size (e.g. 1GB); with --step-time.")
@click.option("--step-time", type=float, metavar="SECONDS",
              help="Data-parallel training: compute time of one step on one node.")
@click.option("--overlap", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of the gradient allreduce hidden behind compute.")
@click.option("--json", "as_json", is_flag=True)
def model_predict(fabric_ref: str, nodes: str, size: str, collective: str,
                  gradient_bytes: str | None, step_time: float | None, overlap: float,
                  as_json: bool) -> None:
    """Predict collective time, bus bandwidth and data-parallel efficiency at scale.

    \b
    Examples:
      bench model predict --fabric ndr --nodes 1024 --size 1GiB
      bench model predict --fabric mpi-loopback.json --gradient-bytes 1GB --step-time 0.5
    """
    from cluster.model import bus_factor, dp_efficiency, load_fabric, predict_time
    from harness.params import parse_size

    fabric = load_fabric(fabric_ref)
    counts = parse_counts(nodes, "--nodes")
    sizes = _size_list(size)
    if (gradient_bytes is None) != (step_time is None):
        raise UserError("give --gradient-bytes and --step-time together")
    grad = None
    if gradient_bytes is not None:
        try:
            grad = parse_size(gradient_bytes)
        except ValueError as exc:
            raise UserError(f"--gradient-bytes: {exc}") from None
    rows = []
    for m in sizes:
        for p in counts:
            row: dict[str, Any] = {"nodes": p, "size": m}
            for alg in ("ring", "tree"):
                t = predict_time(fabric, collective, alg, p, m)
                row[f"{alg}_s"] = t
                row[f"{alg}_busbw_gbps"] = (m / t * bus_factor(collective, p) / 1e9
                                            if t > 0 else None)
            if grad is not None and step_time is not None:
                row["dp_efficiency"] = dp_efficiency(fabric, p, grad, step_time, "ring",
                                                     overlap)
            rows.append(row)
    if as_json:
        click.echo(json.dumps({"fabric": {"name": fabric.name, "alpha_s": fabric.alpha_s,
                                          "beta_bytes_per_s": fabric.beta_bytes_per_s,
                                          "source": fabric.source},
                               "collective": collective, "rows": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from results.report.units import seconds

    table = Table(title=f"{collective} on {fabric.name} (alpha {fabric.alpha_s * 1e6:.3g} us, "
                        f"beta {fabric.beta_bytes_per_s / 1e9:.4g} GB/s, {fabric.source})",
                  title_justify="left")
    cols = ["nodes", "size", "ring time", "ring busbw", "tree time", "tree busbw"]
    if grad is not None:
        cols.append("DP efficiency")
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        cells = [str(r["nodes"]), f"{r['size']:,} B", seconds(r["ring_s"]),
                 f"{r['ring_busbw_gbps']:.3g} GB/s" if r["ring_busbw_gbps"] else "-",
                 seconds(r["tree_s"]),
                 f"{r['tree_busbw_gbps']:.3g} GB/s" if r["tree_busbw_gbps"] else "-"]
        if grad is not None:
            cells.append(f"{r['dp_efficiency']:.1%}")
        table.add_row(*cells)
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(table)
    if fabric.source == "preset":
        click.echo(f"{fabric.description}: nominal figures, not measurements; fit your own "
                   "with `bench model fit RUN -o fabric.json`.", err=True)


def register(cli: click.Group) -> None:
    for command in (submit, jobs, collect, site, model):
        cli.add_command(command)
