"""Qualifying a system: `bench reference create`, `bench check` (runs against a reference) and
`bench triage` (the nodes and links of a cluster against each other)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.cli.args import split_values
from harness.cli.options import FiniteFloat, open_store, output_options, store_options
from harness.cli.render import emit
from harness.errors import UserError

if TYPE_CHECKING:
    from harness.measurement import Measurement
    from results.stored import StoredRun

CHECK_FORMATS = ("table", "markdown", "json", "junit")


def _tolerance(text: str) -> float:
    from results.reference import parse_tolerance

    return parse_tolerance(text, "--tolerance")


def _measurements(store: str | None, run_dir: Path, refs: tuple[str, ...]
                  ) -> tuple[list[str], list[Measurement]]:
    from results.selection import resolve_run

    st = open_store(store, run_dir)
    ids = list(dict.fromkeys(resolve_run(st, r) for r in refs))
    return ids, [m.measurement for m in st.measurements(ids)]


def site_reference(site: str | None) -> str | None:
    """The reference file a site names, or None."""
    if site is None:
        return None
    from cluster.sites import load_site

    chosen_site = load_site(site)
    if chosen_site.reference is None:
        raise UserError(f"site {chosen_site.name} names no reference file; add reference = "
                        "\"FILE.toml\" to it, or give --reference FILE")
    return chosen_site.reference


@click.group()
def reference() -> None:
    """References: what each case's metric should be on a system (see `bench check`).

    \b
    Examples:
      bench reference create latest~2 latest~1 latest -o site.toml
      bench reference create latest --from peaks --peak-floor 70 -o peaks.toml
      bench reference show site.toml
    """


@reference.command("create")
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@click.option("--metric", "metrics", multiple=True, metavar="M[,M]",
              help="Metric(s) to expect [default latency_s].")
@click.option("--tolerance", default="5%", show_default=True, metavar="PCT",
              help="Tolerance of each expectation (at least the runs' own spread).")
@click.option("--from", "sources", multiple=True,
              type=click.Choice(["measured", "peaks", "model"]),
              help="Where expectations come from: the runs' figures, a floor of % of peak "
                   "(pct_peak), or the alpha-beta model's collective time (needs --fabric) "
                   "[default measured].")
@click.option("--peak-floor", type=FiniteFloat(0.0, 1000.0, min_open=True), default=70.0,
              show_default=True, metavar="PCT", help="--from peaks: pct_peak at least this.")
@click.option("--fabric", metavar="PRESET|FILE",
              help="--from model: a preset (hdr, ndr, efa, 100gbe) or a "
                   "`bench fabric-model fit -o` file.")
@click.option("--algorithm", type=click.Choice(["ring", "tree"]), default="ring",
              show_default=True, help="--from model: the collective algorithm modelled.")
@click.option("--system", default="", help="The system's name, recorded in the file.")
@click.option("--partition", default=None, help="The partition, recorded in the file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The reference file to write (TOML).")
@store_options()
def reference_create(run_refs: tuple[str, ...], metrics: tuple[str, ...], tolerance: str,
                     sources: tuple[str, ...], peak_floor: float, fabric: str | None,
                     algorithm: str, system: str, partition: str | None, output: Path,
                     store: str | None, run_dir: Path) -> None:
    """Write a reference file from measured runs (the median of the runs' medians per case).

    Each case of the runs gets an expectation per --metric: the median over the runs, with a
    tolerance of --tolerance or the runs' own spread (their distance from the median, each
    one's 95% CI), whichever is larger. Times are expected at most (<=), rates at least (>=).

    \b
    Examples:
      bench reference create latest~2 latest~1 latest -o site.toml --system mycluster
      bench reference create latest --metric busbw_gbps --tolerance 10% -o fabric.toml
      bench reference create latest --from model --fabric hdr -o model.toml
      bench reference create latest --from measured --from peaks --peak-floor 60 -o all.toml
    """
    from harness.files import check_output_file, write_text_atomic
    from results import reference as refs

    check_output_file(output)
    tol = _tolerance(tolerance)
    chosen = list(dict.fromkeys(sources)) or ["measured"]
    if fabric is not None and "model" not in chosen:
        raise UserError("--fabric is for --from model; add --from model")
    if "model" in chosen and fabric is None:
        raise UserError("--from model needs --fabric PRESET|FILE (e.g. --fabric hdr)")
    model = None
    if fabric is not None:
        from cluster.fabric_model import COLLECTIVES, load_fabric, predict_time

        model = load_fabric(fabric)

        def predict(workload: str, ranks: int, size: float) -> float | None:
            if workload not in COLLECTIVES:
                return None
            return predict_time(model, workload, algorithm, ranks, size)  # type: ignore[arg-type]
    metric_names = split_values(metrics) or ["latency_s"]
    ids, rows = _measurements(store, run_dir, run_refs)
    expectations: list[refs.Expectation] = []
    if "measured" in chosen:
        made = refs.from_measurements(rows, metric_names, tol, len(ids))
        have = {e.metric for e in made}
        lacking = [m for m in metric_names if m not in have]
        if lacking:
            raise UserError(f"no successful measurement of the run(s) has metric "
                            f"{lacking[0]!r}; `bench show RUN --json` lists each case's metrics")
        expectations += made
    if "peaks" in chosen:
        made = refs.from_peaks(rows, peak_floor)
        if not made:
            raise UserError("--from peaks: no measurement of the run(s) has pct_peak (compute "
                            "workloads such as gemm and stream have it)")
        expectations += made
    if model is not None:
        made = refs.from_model(rows, predict, tol, f"{model.name} ({algorithm})")
        if not made:
            raise UserError("--from model: no collective measurement (time_s, ranks, "
                            "size_bytes) in the run(s)")
        expectations += made
    if not expectations:
        raise UserError(f"run(s) {', '.join(i[:8] for i in ids)} hold no successful "
                        "measurement to make a reference from")
    ref = refs.Reference(system=system, partition=partition,
                         description=f"from run(s) {', '.join(i[:8] for i in ids)}",
                         expectations=tuple(expectations), path=str(output))
    write_text_atomic(output, refs.dump(ref))
    click.echo(f"wrote {len(expectations)} expectation(s) to {output}", err=True)


@reference.command("show")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
def reference_show(path: Path) -> None:
    """Validate a reference file and list its expectations.

    \b
    Examples:
      bench reference show site.toml
    """
    from harness.text import printable
    from results.reference import load

    ref = load(path)
    where = ref.system + (f"/{ref.partition}" if ref.partition else "")
    click.echo(printable(f"{path}: {len(ref.expectations)} expectation(s)"
                         + (f" for {where}" if where else "")))
    for e in ref.expectations:
        click.echo(printable(f"  {e.case}: {e.text()}" + (f"  ({e.source})" if e.source else "")))


@click.command()
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@click.option("--reference", "reference_path", metavar="FILE",
              help="The reference file (see `bench reference create`).")
@click.option("--site", metavar="NAME|FILE", help="Use the reference file this site names.")
@click.option("--fail-on-missing", is_flag=True,
              help="Also exit 1 when a case of the runs has no expectation.")
@output_options(formats=CHECK_FORMATS, fail_on=False)
@store_options()
def check(run_refs: tuple[str, ...], reference_path: str | None, site: str | None,
          fail_on_missing: bool, fmt: str, output: Path | None, store: str | None,
          run_dir: Path) -> None:
    """Hold runs against a reference: per case, expected, measured, % of expected, pass/fail.

    With several RUNs a case's measured value is the median of theirs. Cases no expectation
    covers are listed as missing. Exit 0 when every checked case passes, 1 when one fails,
    2 when the reference is malformed, has an expectation that matches no case of the runs,
    or wants a metric a case lacks.

    \b
    Examples:
      bench check latest --reference site.toml
      bench check latest --site mycluster --format markdown >> "$GITHUB_STEP_SUMMARY"
      bench check latest --reference site.toml --format junit -o bench-check.xml
    """
    from results import reference as refs
    from results.report.check import check_json, check_markdown, check_table

    if (reference_path is None) == (site is None):
        raise UserError("give --reference FILE or --site NAME (a site that names one)")
    path = reference_path or site_reference(site)
    ref = refs.load(path)  # type: ignore[arg-type]
    ids, rows = _measurements(store, run_dir, run_refs)
    if not rows:
        raise UserError(f"run(s) {', '.join(i[:8] for i in ids)} hold no measurements")
    result = refs.check(ref, rows)
    emit(fmt, output,
         table=lambda out: out.print(check_table(result)),
         markdown=lambda: check_markdown(result),
         json=lambda: check_json(result),
         junit=lambda: refs.junit_xml(result))
    counts = result.counts()
    failing = counts[refs.FAIL] + (counts[refs.MISSING] if fail_on_missing else 0)
    if failing:
        from harness.text import printable

        names = printable(", ".join(r.case_key for r in result.failed[:3]))
        click.echo(f"bench check: {failing} case(s) fail" + (f": {names}" if names else "")
                   + (" ..." if len(result.failed) > 3 else ""), err=True)
        raise SystemExit(1)


def triage_units(header: StoredRun) -> str | None:
    """The node (one) or link (`A--B`) a run measured: its `nodes` tag (what `bench submit
    --each-node/--pairs` sets), else the node Slurm ran it on, else its host; None for a run
    across more than two nodes."""
    from results.triage import link_name

    tags = header.tags or {}
    cluster = (header.env or {}).get("cluster") or {}
    text = tags.get("nodes") or cluster.get("nodes") or cluster.get("slurm_nodename") \
        or header.host
    if not text:
        return None
    nodes = sorted({n.strip() for n in str(text).split(",") if n.strip()})
    if len(nodes) == 1:
        return nodes[0]
    return link_name(*nodes) if len(nodes) == 2 else None


@click.command()
@click.argument("run_refs", metavar="[RUN]...", nargs=-1)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Also every run with this tag (e.g. --tag slurm_job=1234).")
@click.option("--threshold", type=FiniteFloat(0.0, 10.0, min_open=True), default=0.1,
              show_default=True, metavar="FRACTION",
              help="A unit is slower only beyond this fraction of the others' times.")
@click.option("--fdr", type=FiniteFloat(0.0, 1.0, min_open=True, max_open=True),
              default=0.05, show_default=True,
              help="False-discovery rate held across all node x case tests.")
@click.option("--drain", is_flag=True,
              help="Run the drain list's scontrol commands (else they are only printed).")
@output_options(formats=("table", "markdown", "json"), fail_on=False)
@store_options()
def triage(run_refs: tuple[str, ...], tags: tuple[str, ...], threshold: float, fdr: float,
           drain: bool, fmt: str, output: Path | None, store: str | None,
           run_dir: Path) -> None:
    """Find the slow nodes and links: each case's figures across nodes (and links) compared.

    Takes single-node runs (the unit is the node) and two-node runs (the unit is the link),
    e.g. those of `bench submit --each-node` and `--pairs`; a run's node(s) come from its
    `nodes` tag. Per case, each unit's times are rank-tested against the other units' (slower
    by more than --threshold), with the false-discovery rate held across all tests. A node
    whose links are all slow takes the blame for them. Prints the suspects, worst first, with
    their evidence, and a drain list; exit 1 when there is a suspect.

    \b
    Examples:
      bench triage --tag slurm_job=1234 --tag slurm_job=1235
      bench triage latest~7 latest~6 latest~5 latest~4 latest~3 latest~2 latest~1 latest
      bench triage --tag qualify=rack3 --threshold 0.2 --format markdown
      bench triage --tag qualify=rack3 --drain
    """
    import subprocess

    from harness.cli.args import parse_kv
    from harness.text import printable
    from results.report.triage import drain_lines, triage_markdown, triage_table
    from results.selection import resolve_run
    from results.triage import Observation
    from results.triage import triage as run_triage

    wanted = parse_kv(tags, "--tag")
    if not run_refs and not wanted:
        raise UserError("give the runs to triage: RUN... or --tag KEY=VALUE (e.g. "
                        "--tag slurm_job=1234)")
    st = open_store(store, run_dir)
    ids = [resolve_run(st, r) for r in run_refs]
    for key, values in wanted.items():
        matched = [r.run_id for r in st.runs() if str((r.tags or {}).get(key)) in values]
        if not matched:
            raise UserError(f"no run tagged {key}={','.join(values)}; see `bench runs`")
        ids += matched
    ids = list(dict.fromkeys(ids))
    headers = {i: st.run(i) for i in ids}
    units = {i: triage_units(h) for i, h in headers.items()}
    rows = [m for m in st.measurements(ids) if m.ok and units[m.run_id]]
    samples = st.samples_of([m.measurement_id for m in rows])
    observations = [Observation(m.case_key, units[m.run_id] or "",
                                float(m.median),  # type: ignore[arg-type]  (ok: stored)
                                tuple(samples.get(m.measurement_id, ((), None))[0]),
                                m.run_id) for m in rows]
    if len({o.unit for o in observations}) < 3:
        raise UserError(f"{len(ids)} run(s) cover {len({o.unit for o in observations})} "
                        "node(s)/link(s); triage compares at least 3 (run on more nodes: "
                        "`bench submit --each-node`, `--pairs ring`)")
    result = run_triage(observations, threshold, fdr)

    def table(out: Any) -> None:
        out.print(triage_table(result))
        for line in drain_lines(result):
            out.print(printable(line), highlight=False, markup=False)

    emit(fmt, output, table=table, markdown=lambda: triage_markdown(result),
         json=lambda: {**result.to_dict(), "drain": drain_lines(result), "runs": ids})
    if drain:
        for cmd in result.drain_commands():
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise UserError(f"{cmd[0]} could not be run: {exc}") from None
            if proc.returncode != 0:
                raise UserError(f"{' '.join(cmd[:3])} failed: {' '.join(proc.stderr.split())}")
            click.echo(f"drained {cmd[2].split('=', 1)[1]}", err=True)
    if result.suspects:
        click.echo(printable(f"bench triage: {len(result.suspects)} suspect(s): "
                             + ", ".join(f"{s.kind} {s.name} ({s.why})"
                                         for s in result.suspects)), err=True)
        raise SystemExit(1)


COMMANDS = [reference, check, triage]
