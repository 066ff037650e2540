"""`bench profile summarize` and `bench profile diff`: what the traces of `bench run --profile`
say, read from the stored traces alone (results.profile does the parsing)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.cli.options import open_store, output_options, store_options
from harness.cli.render import emit
from harness.errors import UserError

if TYPE_CHECKING:
    from harness.measurement import Measurement

TRACES_RUN_DIR_HELP = "Folder for run files and their traces [env BENCH_RUN_DIR]."
FORMATS = ("table", "json", "markdown")


def traces_line(measurements: list[Measurement], run_id: str) -> str | None:
    """`bench show`'s link to a run's traces, when it has any."""
    from results.profile import trace_entry

    paths = [Path(p) for m in measurements if (p := trace_entry(m).get("path"))]
    if not paths:
        return None
    folders = sorted({str(p.parent) for p in paths})
    return (f"{len(paths)} profile trace(s) in {', '.join(folders)}; "
            f"`bench profile summarize {run_id[:8]}` reads them")


def _trace_path(m: Measurement, run_id: str, run_dir: Path) -> Path | None:
    from results.profile import find_trace, trace_entry

    entry = trace_entry(m)
    if not entry.get("path"):
        return None

    found = find_trace(entry["path"], run_id, run_dir)
    if found is None:
        moved = run_dir / run_id / "traces" / Path(entry["path"]).name
        raise UserError(f"the trace of {m.case_key} is missing: {entry['path']} (and "
                        f"{moved}); traces live beside the run file in <run-dir>/<run id>/traces")
    return found


def _traces(st: Any, run_ref: str, case: str | None, run_dir: Path) -> dict[str, Path]:
    """case key -> trace path of a run's profiled measurements (matching CASE if given)."""
    from results.profile import trace_entry
    from results.selection import resolve_run

    run_id = resolve_run(st, run_ref)
    found: dict[str, Path] = {}
    problems = []
    for stored in st.measurements([run_id]):
        m = stored.measurement
        key = m.case_key
        if case and not (case in key or fnmatch.fnmatchcase(key, case)):
            continue
        entry = trace_entry(m)
        if entry.get("error"):
            problems.append(f"{key}: {entry['error']}")
        path = _trace_path(m, run_id, run_dir)
        if path is not None:
            found[key] = path
    if not found:
        what = f" matching {case!r}" if case else ""
        why = f" ({'; '.join(problems)})" if problems else ""
        raise UserError(f"run {run_id[:8]} has no profile traces{what}{why}; "
                        "run the case with `bench run --profile`")
    return found


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    return table


def _case_heading(out: Any, key: str) -> None:
    # Rich wraps a table's title at the table's width, mid-word; a case key is copied into
    # commands, so it gets a line of its own that is never wrapped (the terminal may fold it).
    out.print(key, soft_wrap=True, highlight=False, markup=False)


def print_summaries(out: Any, summaries: list[Any]) -> None:
    """`profile summarize`'s tables on a rich console: per case its key, then its operators."""
    from results import profile as prof

    for s in summaries:
        _case_heading(out, s.case_key)
        title = (f"{s.kind} trace, {s.steps} step(s) of {prof.fmt_s(s.step_s)}, "
                 f"{s.basis} self time")
        out.print(_table(title, ["operator", "self / step", "share", "count"],
                         [[o.name, prof.fmt_s(o.per_step_s), f"{o.share:.1%}", str(o.count)]
                          for o in s.ops]))
        if s.ranks:
            out.print(_table("per rank", ["rank", "wait", "in the operation", "wait share"],
                             [[str(r.rank), prof.fmt_s(r.wait_s), prof.fmt_s(r.op_s),
                               f"{r.wait_share:.1%}"] for r in s.ranks]))
        if s.note:
            out.print(s.note, highlight=False, markup=False)


def print_diffs(out: Any, diffs: list[Any]) -> None:
    """`profile diff`'s tables on a rich console: per case its key, then the operators' change."""
    from results import profile as prof

    for d in diffs:
        _case_heading(out, d.case_key)
        title = (f"step {prof.fmt_s(d.a_step_s)} -> {prof.fmt_s(d.b_step_s)} "
                 f"({d.basis} self time per step)")
        out.print(_table(title, ["operator", "A", "B", "B - A", "B / A"],
                         [[o.name, prof.fmt_s(o.a_per_step_s), prof.fmt_s(o.b_per_step_s),
                           prof.fmt_s(o.delta_s),
                           f"{o.ratio:.3g}x" if o.ratio is not None else "-"]
                          for o in d.ops]))


TOP = click.option("--top", type=click.IntRange(min=1), default=15, show_default=True,
                   help="Operators shown per case.")


@click.group("profile")
def profile() -> None:
    """Read the traces that `bench run --profile` kept beside a run.

    \b
    Examples:
      bench run -w gemm -b torch:cpu -p m=512 --profile
      bench profile summarize latest
      bench profile diff latest~1 latest 'gemm[torch*'
    """


@profile.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("case", required=False)
@TOP
@output_options(FORMATS, fail_on=False)
@store_options(run_dir_help=TRACES_RUN_DIR_HELP)
def summarize(run_ref: str, case: str | None, top: int, fmt: str, output: Path | None,
              store: str | None, run_dir: Path) -> None:
    """Top operators/kernels of each profiled case of RUN by self time (device time where the
    trace has it), their share of the step and counts; per-rank wait share of collectives.

    CASE is a substring or glob of case keys, e.g. 'gemm[torch*'.

    \b
    Examples:
      bench profile summarize latest
      bench profile summarize latest 'gemm[torch*' --top 5
      bench profile summarize 3f2a9c1e --format markdown -o profile.md
    """
    from results import profile as prof

    traces = _traces(open_store(store, run_dir), run_ref, case, run_dir)
    summaries = [prof.summarize_file(p, top) for p in traces.values()]
    for key, s in zip(traces, summaries, strict=True):
        s.case_key = s.case_key or key

    emit(fmt, output, table=lambda out: print_summaries(out, summaries),
         json=lambda: [s.to_dict() for s in summaries],
         markdown=lambda: prof.summary_markdown(summaries))


@profile.command("diff")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.argument("case", required=False)
@TOP
@output_options(FORMATS, fail_on=False)
@store_options(run_dir_help=TRACES_RUN_DIR_HELP)
def diff_(run_a: str, run_b: str, case: str | None, top: int, fmt: str, output: Path | None,
          store: str | None, run_dir: Path) -> None:
    """Operator-level differences (per step, B - A) between two profiled runs of the same cases:
    what got slower after `bench compare` says a case regressed.

    \b
    Examples:
      bench profile diff latest~1 latest
      bench profile diff tag:branch=main latest 'gemm[torch*' --format markdown
    """
    from results import profile as prof

    st = open_store(store, run_dir)
    ta, tb = _traces(st, run_a, case, run_dir), _traces(st, run_b, case, run_dir)
    common = [k for k in ta if k in tb]
    if not common:
        raise UserError(f"RUN_A and RUN_B share no profiled case ({len(ta)} vs {len(tb)} "
                        "profiled cases); profile the same cases in both")
    diffs = []
    for key in common:
        a, b = prof.summarize_file(ta[key]), prof.summarize_file(tb[key])
        d = prof.diff(a, b, top)
        d.case_key = key
        diffs.append(d)

    emit(fmt, output, table=lambda out: print_diffs(out, diffs),
         json=lambda: [d.to_dict() for d in diffs],
         markdown=lambda: prof.diff_markdown(diffs))


COMMANDS = [profile]
