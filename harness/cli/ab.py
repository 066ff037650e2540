"""`bench ab`: a paired, interleaved A/B comparison of two installations or environments."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import click

from harness.cli.args import parse_tags
from harness.cli.options import (
    FiniteFloat,
    Selection,
    Timing,
    build_plan,
    open_store,
    output_options,
    selection_options,
    store_options,
    tag_option,
    timing_options,
)
from harness.errors import UserError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_env(values: tuple[str, ...], option: str) -> tuple[tuple[str, str], ...]:
    """K=V pairs, V verbatim (commas, colons and '=' included)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(key):
            raise UserError(f"{option} {item!r}: write NAME=VALUE with a variable name of "
                            "letters, digits and _ (e.g. OMP_NUM_THREADS=1)")
        out[key] = value
    return tuple(sorted(out.items()))


def _python(path: str | None, option: str) -> str:
    if path is None:
        return sys.executable
    if not path.strip():
        raise UserError(f"{option} is empty; give the path of a Python interpreter")
    if os.sep not in path:
        import shutil

        found = shutil.which(path)
        if found is None:
            raise UserError(f"{option} {path}: no such interpreter on PATH; give its path "
                            "(e.g. base/.venv/bin/python)")
        return found
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise UserError(f"{option} {path}: no such interpreter; give the path of a Python "
                        "that has accelbench installed (e.g. checkout/.venv/bin/python)")
    return path


@click.command()
@selection_options()
@timing_options()
@click.option("--base-python", metavar="PY",
              help="Interpreter of the base side (e.g. base/.venv/bin/python) [default: this one].")
@click.option("--head-python", metavar="PY",
              help="Interpreter of the head side [default: this one].")
@click.option("--base-env", multiple=True, metavar="NAME=VALUE",
              help="Environment variable of the base side (repeatable; VALUE verbatim).")
@click.option("--head-env", multiple=True, metavar="NAME=VALUE",
              help="Environment variable of the head side (repeatable; VALUE verbatim).")
@click.option("--calibrate", is_flag=True,
              help="A/A: both sides equal; store each case's noise floor (the smallest change it "
                   "can detect at this budget) for later warnings.")
@click.option("--threshold", type=FiniteFloat(0.0, 1.0, min_open=True, max_open=True),
              default=0.05, show_default=True,
              help="Smallest change (fraction of the base median) that counts.")
@click.option("--fdr", type=FiniteFloat(0.0, 1.0, min_open=True, max_open=True), default=0.05,
              show_default=True, help="False-discovery rate across cases (Benjamini-Hochberg).")
@output_options()
@tag_option("Label both runs (they also get ab=<id> and ab_side=base|head).")
@click.option("--workers", type=click.IntRange(min=1, max=8), default=3, show_default=True,
              help="Worker processes per side; pairs go through every pairing, so an offset "
                   "between two processes of one code is averaged and allowed for.")
@click.option("--turn", "turn_s", type=FiniteFloat(0.0001, 1.0), default=0.0005,
              show_default=True, metavar="SECONDS",
              help="Length of a turn (samples of one side between switches).")
@click.option("--layouts", type=click.IntRange(min=1, max=64), default=8, show_default=True,
              help="Instances of a case each process holds, at most, each in a memory layout of "
                   "its own, its turns going through them: one unlucky layout (two arrays 4 KiB "
                   "apart) does not read as a change. Only cases that prepare quickly (2% of "
                   "--budget) get more than one; 1 turns this off.")
@click.option("--no-pin", is_flag=True,
              help="Let the scheduler place every turn. By default both turns of a pair of a "
                   "single-threaded case run on one CPU, drawn per pair: a VM's CPUs differ in "
                   "speed for a while at a time.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the random turn order.")
@click.option("--no-store", is_flag=True, help="Write the run files only.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@store_options()
def ab(selection: Selection, timing: Timing, base_python: str | None, head_python: str | None,
       base_env: tuple[str, ...], head_env: tuple[str, ...], calibrate: bool, threshold: float,
       fdr: float, fmt: str, output: Path | None, fail_on: str, tags: tuple[str, ...],
       workers: int, turn_s: float, layouts: int, no_pin: bool, seed: int | None,
       no_store: bool, quiet: bool, store: str | None, run_dir: Path) -> None:
    """Did HEAD get slower than BASE? One paired experiment on this machine.

    Both sides run the same cases as worker processes: two installations (--base-python,
    --head-python: e.g. the venvs of two checkouts) and/or two environments (--base-env,
    --head-env). This parent alternates them in short turns (about half a millisecond), in
    random order within each pair, watches the machine between turns (a canary, CPU pressure,
    steal) and measures disturbed pairs again; the verdict comes from the distribution of paired
    ratios, so drift that moves both sides cancels. A case stops once more pairs would not
    change its verdict, or after --budget seconds of turns (both sides together); what decided
    cases leave goes to the undecided ones at the end. Both sides are stored as ordinary runs
    tagged ab=<id>,
    ab_side=base|head; --timeout ends the run when a worker does not answer for that long.

    \b
    Examples:
      bench ab --suite quick --base-python base/.venv/bin/python \\
               --head-python head/.venv/bin/python --format markdown --fail-on regression
      bench ab -w gemm -b torch:cpu -p m=512 -p n=512 -p k=512 \\
               --base-env OMP_NUM_THREADS=1 --head-env OMP_NUM_THREADS=2
      bench ab -w spin -p us=100,1000 --calibrate      # A/A: each case's noise floor
    """
    from harness.ab import Reporter, Side, run_ab
    from harness.config import PlannedCase

    if timing.rounds is not None:
        raise UserError("--rounds does not apply to bench ab: it alternates the sides in "
                        "turns instead; leave it out")
    suite_name, plan = build_plan(selection, timing, verb="compare")
    plan = [PlannedCase(p.case, p.policy.replace(rounds=1)) for p in plan]  # a suite's rounds
    sides = (Side("base", _python(base_python, "--base-python"),
                  parse_env(base_env, "--base-env")),
             Side("head", _python(head_python, "--head-python"),
                  parse_env(head_env, "--head-env")))
    # Paths as given, not resolved: two venvs' pythons link to one binary but are two
    # installations.
    same = (os.path.abspath(sides[0].python) == os.path.abspath(sides[1].python)
            and sides[0].env == sides[1].env)
    if same and not calibrate:
        raise UserError("both sides are the same: give --base-python/--head-python or "
                        "--base-env/--head-env, or --calibrate for an A/A run that measures "
                        "each case's noise floor")
    if calibrate and not same:
        raise UserError("--calibrate measures the noise floor with both sides equal: leave out "
                        "--base-*/--head-* options")
    tag_values = parse_tags(tags)
    for reserved in ("ab", "ab_side"):
        if reserved in tag_values:
            raise UserError(f"--tag {reserved}=... is set by bench ab itself; choose another key")
    if calibrate:
        from results.noise_floor import CALIBRATION_TAG

        tag_values[CALIBRATION_TAG] = "1"
    outcome = run_ab(plan, sides, run_dir=run_dir,
                     open_store=None if no_store
                     else (lambda: open_store(store, None, create=True)),
                     tags=tag_values, argv=["bench", *sys.argv[1:]], suite=suite_name,
                     plugins=selection.plugins, check=timing.check, threshold=threshold,
                     fdr=fdr, timeout=timing.rank_timeout, reporter=Reporter(quiet), seed=seed,
                     workers=workers, turn_s=turn_s, decide=not calibrate,
                     pin=not no_pin, layouts=layouts)
    if outcome.error:
        click.echo(f"bench: error: {outcome.error}; finished cases kept (runs "
                   f"{outcome.run_ids.get('base', '?')[:8]}, "
                   f"{outcome.run_ids.get('head', '?')[:8]}, partial)", err=True)
    cmp = _comparison(outcome, threshold, fdr)
    if outcome.results:
        render(outcome, cmp, threshold, fmt, output, calibrate)
    if outcome.exit_code:
        sys.exit(outcome.exit_code)
    from harness.cli.render import fail_gate

    fail_gate(cmp.counts(), fail_on, "ab")


def _comparison(outcome: Any, threshold: float, fdr: float) -> Any:
    """The verdicts across the compared cases (their estimates were made during the run)."""
    import numpy as np

    from results.paired import PairedCase, verdicts

    cases = [PairedCase(r.key, float(np.median(r.sides["base"].samples)),
                        float(np.median(r.sides["head"].samples)), len(r.sides["base"].samples),
                        len(r.sides["head"].samples), r.estimate)
             for r in outcome.results if r.compared and r.estimate is not None]
    return verdicts(cases, threshold, fdr)


def render(outcome: Any, cmp: Any, threshold: float, fmt: str, output: Path | None,
           calibrate: bool) -> None:
    from harness.ab import MAX_REDO
    from harness.cli.render import emit
    from results.noise_floor import floor_warning, latest_floors

    by_key = {r.key: r for r in outcome.results}
    failed = {r.key: "; ".join(f"{n}: {r.sides[n].error}" for n in r.failed_on)
              for r in outcome.results if r.failed_on}
    rows = {c.case_key: {"pairs": by_key[c.case_key].estimate.pairs,
                         "disturbed": by_key[c.case_key].pairs_disturbed,
                         "disturbed_kept": by_key[c.case_key].disturbed_kept,
                         "floor": by_key[c.case_key].estimate.floor} for c in cmp.cases}
    warnings = []
    kept = [k for k, row in rows.items() if row["disturbed_kept"]]
    if kept:
        warnings.append(f"{len(kept)} case(s) rest on pairs measured while the machine was "
                        f"disturbed (re-measured {MAX_REDO} times, still disturbed): "
                        + ", ".join(kept[:3]) + (" ..." if len(kept) > 3 else ""))
    if outcome.store is not None and not calibrate:
        run, floors = latest_floors(outcome.store, socket.gethostname())
        w = floor_warning(run, floors, threshold, rows)
        if w:
            warnings.append(w)
    base_id, head_id = outcome.run_ids["base"], outcome.run_ids["head"]

    def as_json() -> dict[str, Any]:
        cases: list[dict[str, Any]] = []
        for c in cmp.worst_first():
            row = rows[c.case_key]
            cases.append({"case_key": c.case_key, "ratio": c.ratio, "ci_low": c.ci_low,
                          "ci_high": c.ci_high, "p_value": c.p_value, "verdict": c.verdict,
                          "pairs": row["pairs"], "disturbed": row["disturbed"],
                          "disturbed_kept": row["disturbed_kept"], "floor": row["floor"],
                          "base_median_s": c.base_median, "head_median_s": c.head_median,
                          "base_run_id": base_id, "head_run_id": head_id})
        for key, why in failed.items():
            cases.append({"case_key": key, "verdict": "failed", "error": why,
                          "base_run_id": base_id, "head_run_id": head_id})
        return {
            "ab_id": outcome.ab_id, "status": outcome.status, "seed": outcome.seed,
            "base": {"run_id": base_id, "run_file": str(outcome.run_files.get("base"))},
            "head": {"run_id": head_id, "run_file": str(outcome.run_files.get("head"))},
            "threshold": threshold, "fdr": cmp.fdr, "counts": cmp.counts(), "cases": cases,
            "warnings": warnings, "calibrate": calibrate,
        }

    def as_markdown() -> str:
        from results.report.markdown import compare_markdown

        return compare_markdown(cmp, base_id, head_id, [], warnings
                                + [f"failed on one side, not compared: {k} ({v})"
                                   for k, v in failed.items()],
                                title="accelbench ab (paired)")

    def as_html() -> str:
        from results.report.html import compare_html

        return compare_html(cmp, base_id, head_id, [], warnings)

    def as_table(console: Any) -> None:
        from rich.markup import escape

        from results.report.table import ab_table

        for w in warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
        console.print(ab_table(cmp, rows, base_id, head_id, failed, calibrate))
        where = ", ".join(f"{n} run {outcome.run_ids[n][:8]}" for n in ("base", "head"))
        console.print(f"{where}; run files in {outcome.run_files['base'].parent}",
                      highlight=False)

    emit(fmt, output, table=as_table, markdown=as_markdown, json=as_json, html=as_html)


COMMANDS = [ab]
