"""`bench fabric-model fit` and `bench fabric-model predict`: the alpha-beta (latency-bandwidth)
model of a fabric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from harness.cli.args import parse_counts, split_values
from harness.cli.options import FiniteFloat, json_option, open_store, store_options
from harness.cli.render import console
from harness.errors import UserError
from harness.workmodel import SCALABLE


@click.group("fabric-model")
def fabric_model() -> None:
    """The fabric model (alpha-beta: latency and bandwidth): fit it to measured sweeps, predict
    collective time and scaling at any node count.

    \b
    Examples:
      bench fabric-model fit latest -o mpi-loopback.json
      bench fabric-model predict --fabric ndr --nodes 1024 --size 1GiB
    """


# What a prediction is asked about: beyond these it says nothing about any machine.
MAX_NODES = 1_000_000
MAX_BYTES = 2**60  # 1 EiB
MAX_STEP_S = 86400.0  # a training step longer than a day


def _size(text: str, option: str) -> int:
    from harness.params import parse_size

    try:
        size = parse_size(text)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None
    if not 1 <= size <= MAX_BYTES:
        raise UserError(f"{option} {text!r} must be between 1 byte and 1 EiB")
    return size


def _size_list(text: str) -> list[int]:
    sizes = [_size(x, "--size") for x in split_values((text,))]
    if not sizes:
        raise UserError(f"--size {text!r} names no size; e.g. --size 8B,1MiB,1GiB")
    return sizes


def _node_counts(text: str) -> list[int]:
    counts = parse_counts(text, "--nodes")
    if max(counts) > MAX_NODES:
        raise UserError(f"--nodes {max(counts)} is more than {MAX_NODES:,} nodes; the model "
                        "predicts for machines that exist")
    return counts


@fabric_model.command("fit")
@click.argument("run_refs", nargs=-1, required=True, metavar="RUN...")
@click.option("--algorithm", type=click.Choice(["ring", "tree"]), default="ring",
              show_default=True, help="Cost model the collectives are assumed to follow.")
@click.option("--holdout", "holdout_refs", multiple=True, metavar="RUN",
              help="Report the fitted model's error on these runs too (not fitted on).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the fitted fabric file (JSON) for `bench fabric-model predict --fabric`.")
@click.option("--name", default="fitted", show_default=True)
@json_option()
@store_options()
def fabric_model_fit(run_refs: tuple[str, ...], algorithm: str, holdout_refs: tuple[str, ...],
              output: Path | None, name: str, as_json: bool, store: str | None,
              run_dir: Path) -> None:
    """Fit alpha (latency) and beta (bandwidth) to the p2p/collective sweeps of RUN(s).

    \b
    Examples:
      bench run -w p2p -b mpi -p size=8B..16MiB*4 --launcher mpirun -n 2
      bench fabric-model fit latest -o mpi-loopback.json
    """
    import numpy as np

    from cluster.fabric_model import fit, points_from_measurements, relative_errors
    from harness.files import check_output_file, write_text_atomic

    if output is not None:
        check_output_file(output)
    st = open_store(store, run_dir)
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
        write_text_atomic(output, fabric.to_json())
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


@fabric_model.command("predict")
@click.option("--fabric", "fabric_ref", required=True, metavar="PRESET|FILE",
              help="hdr, ndr, efa, 100gbe, or a fabric file from `bench fabric-model fit -o`.")
@click.option("--nodes", default="8,16,32,64,128,256,512,1024,2048,4096", show_default=True,
              metavar="N[,N]", help="Node counts (one rank per node).")
@click.option("--size", default="1GiB", show_default=True, metavar="BYTES[,BYTES]",
              help="Buffer size(s), e.g. 8B,1MiB,1GiB.")
@click.option("--collective", type=click.Choice(SCALABLE), default="allreduce",
              show_default=True)
@click.option("--gradient-bytes", metavar="BYTES",
              help="Data-parallel training: gradient size (e.g. 1GB); with --step-time.")
@click.option("--step-time", type=FiniteFloat(0.0, MAX_STEP_S, min_open=True), metavar="SECONDS",
              help="Data-parallel training: compute time of one step on one node.")
@click.option("--overlap", type=FiniteFloat(0, 1), default=0.0, show_default=True,
              help="Fraction of the gradient allreduce hidden behind compute.")
@json_option()
def fabric_model_predict(fabric_ref: str, nodes: str, size: str, collective: str,
                  gradient_bytes: str | None, step_time: float | None, overlap: float,
                  as_json: bool) -> None:
    """Predict collective time, bus bandwidth and data-parallel efficiency at scale.

    \b
    Examples:
      bench fabric-model predict --fabric ndr --nodes 1024 --size 1GiB
      bench fabric-model predict --fabric mpi-loopback.json --gradient-bytes 1GB --step-time 0.5
    """
    from cluster.fabric_model import bus_factor, dp_efficiency, load_fabric, predict_time

    fabric = load_fabric(fabric_ref)
    counts = _node_counts(nodes)
    sizes = _size_list(size)
    if (gradient_bytes is None) != (step_time is None):
        raise UserError("give --gradient-bytes and --step-time together")
    grad = None if gradient_bytes is None else _size(gradient_bytes, "--gradient-bytes")
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
    from rich.table import Table

    from harness.units import seconds

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
    console().print(table)
    if fabric.source == "preset":
        click.echo(f"{fabric.description}: nominal figures, not measurements; fit your own "
                   "with `bench fabric-model fit RUN -o fabric.json`.", err=True)


# The name it had before (scripts keep working); not listed in `bench --help`.
model_alias = click.Group("model", commands=fabric_model.commands, hidden=True,
                          help=f"The former name of `bench fabric-model`.\n\n{fabric_model.help}")

COMMANDS = [fabric_model, model_alias]
