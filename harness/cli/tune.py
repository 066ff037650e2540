"""`bench tune`: search an OpenCL kernel's parameters on a device and cache the best
(kernels/opencl/tune.py does the search; this wires workloads, backends and output)."""

from __future__ import annotations

from typing import Any

import click

from harness.cli.options import FiniteFloat, Selection, json_option, selection_options
from harness.cli.render import console, print_json
from harness.errors import UserError

TUNABLE_WORKLOADS = ("gemm", "stream", "conv2d")


def _check_selection(selection: Selection) -> None:
    if selection.suite:
        raise UserError("bench tune takes -w/-b/-p, not --suite")
    names = selection.workload_names()
    if not names:
        raise UserError("nothing to tune: give -w gemm or -w stream and -b opencl:PLATFORM")
    for name in names:
        if name not in TUNABLE_WORKLOADS:
            raise UserError(f"bench tune: workload {name!r} has no tunable OpenCL kernel; "
                            f"tunable: {', '.join(TUNABLE_WORKLOADS)}")
    backends = selection.backend_names()
    if not backends:
        raise UserError("bench tune needs an OpenCL backend: -b opencl:PLATFORM[:DEVICE], "
                        "e.g. -b opencl:pocl (see `bench list backends`)")
    for spec in backends:
        if spec.split(":", 1)[0] != "opencl":
            raise UserError(f"bench tune: {spec!r} is not an OpenCL backend; the tuner searches "
                            "OpenCL kernels: -b opencl:PLATFORM[:DEVICE], e.g. opencl:pocl")


def _tunable(backend: Any, workload: str, params: dict[str, Any]) -> Any:
    from kernels.array.opencl import conv2d_tunable, gemm_tunable, stream_tunable

    if params.get("binary") or params.get("build_options"):
        raise UserError(f"bench tune: {workload} with binary= or build_options= has its "
                        "parameters fixed; drop them to tune")
    if workload == "gemm":
        from kernels.opencl.build import GEMM_VARIANTS, gemm_variant_for
        from workloads.gemm import TOLERANCE

        variant = params.get("variant", "auto")
        name = gemm_variant_for(backend.cl_device) if variant == "auto" else variant
        if GEMM_VARIANTS[name].space is None:
            tunable = [n for n, v in GEMM_VARIANTS.items() if v.space is not None]
            raise UserError(f"bench tune: gemm variant {name!r} has no tunable parameters; "
                            f"tunable variants: {', '.join(tunable)}")
        return gemm_tunable(backend, params["m"], params["n"], params["k"], params["dtype"],
                            name, TOLERANCE[params["dtype"]])
    if workload == "conv2d":
        from workloads.conv2d import TOLERANCE as CONV_TOLERANCE
        from workloads.conv2d import Conv2d

        if params.get("variant", "igemm") != "igemm":
            raise UserError(f"bench tune: conv2d variant {params['variant']!r} has no tunable "
                            "parameters; tunable variants: igemm")
        return conv2d_tunable(backend, params["batch"], params["channels"], params["filters"],
                              params["size"], params["kernel"], params["stride"],
                              Conv2d._padding(params), params["dtype"],
                              CONV_TOLERANCE[params["dtype"]])
    from workloads.stream import SCALAR

    return stream_tunable(backend, params["op"], params["n"], params["dtype"], SCALAR)


def _figure(work: Any, seconds: float | None) -> tuple[str, float | None]:
    """(unit, value) of a candidate: GFLOP/s for compute, GB/s for memory-bound work."""
    if work.flops and work.flops >= work.bytes:
        return "GFLOP/s", (work.flops / seconds / 1e9 if seconds else None)
    return "GB/s", (work.bytes / seconds / 1e9 if seconds else None)


def _rows(result: Any, work: Any, top: int) -> list[dict[str, Any]]:
    if result.from_cache:
        listed = [(c.get("params", {}), c.get("seconds"), None)
                  for c in result.entry.get("top", [])] or [
            (result.best.params, result.best.seconds, None)]
    else:
        listed = [(c.params, c.seconds if c.ok else c.single_s, c.error)
                  for c in result.ranked()]
    rows = []
    for params, seconds, error in listed[:top]:
        unit, value = _figure(work, seconds)
        rows.append({"params": params, "seconds": seconds, "unit": unit, "figure": value,
                     "rejected": error})
    return rows


@click.command()
@selection_options()
@click.option("--tune-budget", "budget", type=FiniteFloat(min=0, min_open=True), default=60.0,
              show_default=True, metavar="SECONDS",
              help="Seconds of search per kernel (builds, checks and timing included).")
@click.option("--strategy", type=click.Choice(["auto", "exhaustive", "descent", "random"]),
              default="auto", show_default=True,
              help="auto: every legal candidate when there are few, else coordinate descent "
                   "then random picks.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random order of candidates.")
@click.option("--force", is_flag=True,
              help="Search again even when the cache holds a result for this device.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Candidates to list.")
@json_option()
def tune(selection: Selection, budget: float, strategy: str, seed: int, force: bool, top: int,
         as_json: bool) -> None:
    """Search an OpenCL kernel's parameters on a device; cache the best.

    Every candidate (work-group size, elements per work-item, vector width, tiles, unroll:
    what the kernel declares) is built, run once and checked against a reference, then timed
    by the engine. The best is cached per platform, device, driver, kernel source, dtype and
    size class in $BENCH_TUNE_CACHE (default $XDG_CACHE_HOME/accelbench/opencl-tune.json);
    `bench run` then builds the kernel with it, and each measurement records the parameters
    and whether they came from the cache. A cached result is shown without searching unless
    --force.

    \b
    Examples:
      bench tune -w gemm -b opencl:pocl -p m=2048 -p n=2048 -p k=2048
      bench tune -w stream -b opencl:pocl -p op=triad -p n=16777216 --tune-budget 30
      bench tune -w conv2d -b opencl:pocl -p channels=64 -p filters=64 -p size=56
      bench tune -w gemm -b opencl:0:1 -p variant=tiled --force --json
    """
    selection.load_plugins()
    _check_selection(selection)
    from harness.cli.options import Timing, build_plan
    from harness.workload import registry as workloads
    from kernels.opencl.tune import TuneCache, tune_on

    _, plan = build_plan(selection, Timing(), verb="tune")
    from harness.backends.base import parse_backend

    backends: dict[str, Any] = {}
    for planned in plan:
        spec = planned.case.backend
        if spec not in backends:
            b = parse_backend(spec)
            b.setup()  # a missing package or device: one line, before any search
            backends[spec] = b
    out: list[dict[str, Any]] = []
    show = None if as_json else console()
    for planned in plan:
        case = planned.case
        backend = backends[case.backend]
        params = case.param_dict
        workload = workloads.get(case.workload)()
        workload.validate_device(params, backend)  # float16 on a device without cl_khr_fp16
        work = workload.work(params)
        tunable = _tunable(backend, case.workload, params)
        if show is not None:
            show.print(f"tuning {case.key} on {backend.cl_device.name.strip()} "
                       f"(budget {budget:g} s)", highlight=False)
        result = tune_on(backend, tunable, budget, seed, strategy, force)
        rows = _rows(result, work, top)
        entry = {"case": case.key, "key": result.key.text(), "from_cache": result.from_cache,
                 "cache": str(TuneCache().path), "strategy": result.strategy,
                 "tried": 0 if result.from_cache else len(result.candidates),
                 "legal": result.legal, "elapsed_s": result.elapsed_s,
                 "best": result.best.params, "top": rows}
        out.append(entry)
        if show is not None:
            _print(show, entry)
    if as_json:
        print_json(out)


def _print(show: Any, entry: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    how = ("from the cache (no search; --force searches again)" if entry["from_cache"] else
           f"{entry['strategy']}: {entry['tried']} of {entry['legal']} legal candidates in "
           f"{entry['elapsed_s']:.1f} s")
    show.print(f"{entry['case']}: {how}", highlight=False, markup=False)
    table = Table()
    for col in ("#", "parameters", "figure", "s/call", "note"):
        table.add_column(col, justify="left" if col in ("parameters", "note") else "right")
    for i, row in enumerate(entry["top"], 1):
        params = " ".join(f"{k}={v}" for k, v in row["params"].items())
        figure = f"{row['figure']:.2f} {row['unit']}" if row["figure"] else "-"
        seconds = f"{row['seconds']:.4g}" if row["seconds"] else "-"
        table.add_row(str(i), escape(params), figure, seconds, escape(row["rejected"] or ""))
    show.print(table)
    best = " ".join(f"-D{k}={v}" for k, v in entry["best"].items())
    show.print(f"best: {best}; cached in {entry['cache']}", highlight=False)


COMMANDS = [tune]
