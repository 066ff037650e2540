"""The reading side: `bench runs`, `show`, `export`, `compare`, `history`, `report`, `ingest`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.cli.args import parse_tags
from harness.cli.options import (
    FiniteFloat,
    ingest_command,
    json_option,
    open_store,
    output_options,
    store_options,
    tag_option,
)
from harness.cli.render import console, emit, emit_to, fail_gate, print_json, print_sweeps
from harness.errors import UserError


@click.command()
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs to list, newest first; more than the store holds lists all "
                   "of them.")
@store_options()
@json_option()
def runs(limit: int, store: str | None, run_dir: Path, as_json: bool) -> None:
    """Runs in the store, newest first.

    \b
    Examples:
      bench runs
      bench runs -n 5 --json
      bench runs --store postgresql+psycopg://bench@dbhost/bench
    """
    from results.report.table import runs_table

    rows = open_store(store, run_dir).runs(limit)
    if as_json:
        print_json([r.to_dict() for r in rows])
    elif not rows:
        click.echo("no runs yet: try `bench run --suite smoke`", err=True)
    else:
        console().print(runs_table(rows))


@click.command()
@click.argument("run_ref", metavar="RUN", default="latest")
@store_options()
@json_option()
def show(run_ref: str, store: str | None, run_dir: Path, as_json: bool) -> None:
    """One run: its header, environment and measurements. RUN is an id, prefix, latest~N.

    \b
    Examples:
      bench show
      bench show latest~1
      bench show 3f2a9c1e --json
    """
    from results.report.table import info_lines, measurements_table, stored_measurement_json

    st = open_store(store, run_dir)
    run_id = st.resolve(run_ref)
    header = st.run(run_id)
    stored = st.measurements([run_id])
    if as_json:
        print_json({**header.to_dict(), "env": header.env,
                    "measurements": [stored_measurement_json(m) for m in stored]})
        return
    from harness.text import printable

    rows = [m.measurement for m in stored]
    out = console()
    env = header.env or {}
    tags = " ".join(f"{k}={v}" for k, v in (header.tags or {}).items())
    lines = [f"run {run_id}  [{header.status}]  started {header.started_at}",
             f"command: {header.command}",
             *([f"tags: {tags}"] if tags else []),
             *([f"host {env.get('host')}, {(env.get('cpu') or {}).get('model')}, "
                f"env {header.env_hash}"] if env else [])]
    for line in lines:  # names, tags and values from the store: control characters escaped
        out.print(printable(line), highlight=False, markup=False)
    out.print(measurements_table(rows))
    for line in info_lines(rows):
        out.print(line, highlight=False, markup=False)
    print_sweeps(out, rows)
    from harness.cli.profile import traces_line

    if line := traces_line(rows, run_id):
        out.print(printable(line), highlight=False, markup=False)


@click.command()
@click.argument("run_refs", metavar="[RUN]...", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet", "nccl-tests"]),
              default=None, help="Output format [default: from the file extension]; "
              "nccl-tests: collectives as nccl-tests prints them.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--samples", "long", is_flag=True,
              help="One row per raw sample instead of per measurement (JSON and Parquet rows "
              "carry them as a list column either way).")
@store_options()
def export(run_refs: tuple[str, ...], fmt: str | None, output: Path, long: bool,
           store: str | None, run_dir: Path) -> None:
    """Export measurements (of the given runs, or all) as CSV, JSON or Parquet.

    \b
    Examples:
      bench export -o all.csv
      bench export latest --format parquet -o latest.parquet
      bench export latest --format nccl-tests -o allreduce.txt
      bench export latest --samples -o samples.csv     # one row per raw sample
    """
    from harness.files import check_output_file, write_text_atomic
    from results.frame import FORMATS, export, load, samples

    fmt = fmt or output.suffix.lstrip(".").lower()
    if fmt in (*FORMATS, "nccl-tests"):
        check_output_file(output)
    if fmt == "nccl-tests":
        from results.report.collectives import nccl_tests_text, sweeps

        st = open_store(store, run_dir)
        ids = [st.resolve(r) for r in run_refs] or [st.resolve("latest")]
        rows = [m.measurement for m in st.measurements(ids)]
        if not sweeps(rows):
            raise UserError(f"run(s) {', '.join(i[:8] for i in ids)} hold no collective "
                            "measurements to export in nccl-tests format")
        write_text_atomic(output, nccl_tests_text(rows, ids))
        click.echo(f"wrote {sum(len(m) for _, m in sweeps(rows))} measurement(s) to {output}",
                   err=True)
        return
    if fmt not in FORMATS:
        raise UserError(f"cannot tell the format of {output}; add --format csv|json|parquet")
    st = open_store(store, run_dir)
    refs = list(run_refs) or None
    df = samples(st, refs) if long else load(st, refs, samples=fmt != "csv")
    export(df, fmt, output)
    click.echo(f"wrote {len(df)} {'sample' if long else 'measurement'}(s) to {output}", err=True)


@click.command()
@click.argument("base_ref", metavar="BASE")
@click.argument("head_ref", metavar="HEAD")
@click.option("--threshold", type=FiniteFloat(), default=0.05, show_default=True,
              help="Smallest change (fraction of the base median) that counts.")
@click.option("--fdr", type=FiniteFloat(), default=0.05, show_default=True,
              help="False-discovery rate across all cases (Benjamini-Hochberg).")
@output_options()
@store_options()
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
    from results.selection import compare_runs

    st = open_store(store, run_dir)
    rc = compare_runs(st, base_ref, head_ref, threshold, fdr)
    result, base, head, env_diff = rc.comparison, rc.base, rc.head, rc.env_diff

    def table(out: Any) -> None:
        from results.report.table import comparison_table, escape

        for warning in rc.warnings:
            out.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
        for key, b, h in env_diff:
            out.print(f"[yellow]environment differs:[/yellow] {escape(key)}: "
                      f"{escape(repr(b))} -> {escape(repr(h))}", highlight=False)
        out.print(comparison_table(result, base.run_id, head.run_id))

    def markdown() -> str:
        from results.report.markdown import compare_markdown

        return compare_markdown(result, base.run_id, head.run_id, env_diff, rc.warnings)

    def html() -> str:
        from results.report.html import compare_html

        return compare_html(result, base.run_id, head.run_id, env_diff, rc.warnings)

    def json() -> dict[str, Any]:
        return rc.to_dict()

    emit(fmt, output, table=table, markdown=markdown, json=json, html=html)
    fail_gate(result.counts(), fail_on, "compare")


@click.command()
@click.argument("case", metavar="CASE")
@tag_option("Only runs with this tag (e.g. --tag branch=main).")
@click.option("--last", type=click.IntRange(min=2), default=50, show_default=True,
              help="How many of the newest matching runs to use.")
@click.option("--threshold", type=FiniteFloat(0.0, min_open=True), default=0.05,
              show_default=True, metavar="FRACTION",
              help="Smallest level change (fraction, > 0) reported as a step or a drift.")
@output_options(("table", "markdown", "json"), fail_on=False)
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Same as --format json.")
@store_options()
def history(case: str, tags: tuple[str, ...], last: int, threshold: float, fmt: str,
            output: Path | None, as_json: bool, store: str | None, run_dir: Path) -> None:
    """A case's median across runs, with change points and drift.

    CASE is a case key as `bench show` prints it (e.g. 'gemm[torch:cpu](dtype=float32,...)')
    or a part of one that matches a single case.

    \b
    Examples:
      bench history 'spin[numpy:cpu](us=10.0)'
      bench history 'gemm[torch:cpu]' --tag branch=main --last 30
      bench history 'gemm[torch:cpu]' --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from results.history import case_history
    from results.report.history import history_markdown, history_table

    st = open_store(store, run_dir)
    wanted = parse_tags(tags)
    runs = [r for r in st.runs()
            if all(str((r.tags or {}).get(k)) == v for k, v in wanted.items())][:last]
    if not runs:
        raise UserError("no runs match" + (f" the tags {wanted}" if wanted else "")
                        + "; see `bench runs`")
    ids = [r.run_id for r in runs]
    keys = sorted({m.case_key for m in st.measurements(ids)})
    matches = [k for k in keys if k == case] or [k for k in keys if case in k]
    if not matches:
        raise UserError(f"no case matches {case!r} in the selected runs; "
                        "`bench show latest` lists case keys")
    if len(matches) > 1:
        shown = "; ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        raise UserError(f"{case!r} matches {len(matches)} cases ({shown}); give more of the key")
    hist = case_history(st, matches[0], ids, threshold)
    emit("json" if as_json else fmt, output, table=lambda out: history_table(out, hist),
         markdown=lambda: history_markdown(hist), json=hist.to_dict)


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[KIND] RUN...")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (e.g. report.html).")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write each plot as PNG and SVG into this folder.")
@store_options()
def report(args: tuple[str, ...], output: Path, plots_dir: Path | None, store: str | None,
           run_dir: Path) -> None:
    """Write a report of one or more runs. KIND is one of the report kinds (default html).

    \b
    Examples:
      bench report latest -o report.html           self-contained HTML with plots
      bench report html latest~1 latest -o ab.html
    """
    from harness.files import check_output_dir, check_output_file, os_error_line
    from results.report import KINDS, check_output_name, render

    kind, refs = ("html", list(args)) if args[0] not in KINDS else (args[0], list(args[1:]))
    if not refs:
        raise UserError(f"bench report {kind}: give at least one RUN (e.g. latest)")
    check_output_name(kind, output)
    check_output_file(output)
    if plots_dir is not None:
        check_output_dir(plots_dir, "--plots")
    st = open_store(store, run_dir)
    ids = [st.resolve(r) for r in refs]
    options: dict[str, Any] = {"plots_dir": plots_dir} if plots_dir else {}
    if kind == "html":
        options["run_dir"] = run_dir  # where moved run folders keep their traces
    wrote: list[Path] = []

    def write(path: Path, **producers: Any) -> None:
        emit_to(path, **producers)  # says "wrote PATH" itself
        wrote.append(path)

    try:
        render(kind, st, ids, output, write=write, **options)
    except OSError as exc:  # e.g. the disk filled, or --plots could not be made after all
        where = Path(exc.filename).resolve() if exc.filename else None
        plots = plots_dir.resolve() if plots_dir is not None else None
        if where is not None and plots is not None and (where == plots
                                                         or plots in where.parents):
            raise UserError(os_error_line(exc, plots_dir, "--plots")) from None  # type: ignore[arg-type]
        raise UserError(os_error_line(exc, output, "-o")) from None
    if not wrote:
        click.echo(f"wrote {output}", err=True)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@store_options(run_dir=False)
def ingest(paths: tuple[Path, ...], store: str | None) -> None:
    """Load run files (or folders of them) into the store; loading twice changes nothing.

    \b
    Examples:
      bench ingest bench-runs
      bench ingest /scratch/me/bench-runs/3f2a9c1e.jsonl --store team.db
    """
    ingest_command(store, list(paths), "no run files found", require_files=True)


COMMANDS = [runs, show, export, compare, history, report, ingest]
