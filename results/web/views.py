"""What each page of the results browser shows, as plain data (JSON-able dicts).

The JSON API returns these dicts as they are; the HTML pages and the static site render them
with the templates. Everything is read through the store API (results.store, history,
selection, compare); nothing here writes. Figures are plotly.js figure dicts (data + layout),
drawn in the browser by the plotly.js that ships inside the plotly package; every string in
a figure is HTML-escaped here, since plotly.js reads a few tags in its labels.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.env import mask_secrets
from harness.errors import UserError
from harness.peaks import peak_note
from results.compare import environment_diff, flatten
from results.profile import trace_entry
from results.runfile import jsonable
from results.web.figures import roofline_figure, scaling_figure, sweep_figure

if TYPE_CHECKING:
    from results.store import RunFilter, Store
    from results.stored import StoredMeasurement, StoredRun

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PLOT_POINTS = 2000  # a history plot beyond this shows the min and max of each bucket
MAX_DIST_POINTS = 400  # per case in a run's distribution plot: evenly spaced quantiles
RUN_FIELDS = ("run_id", "started_at", "finished_at", "status", "n_measurements", "suite",
              "host", "git_revision", "git_dirty", "slurm_job_id", "env_hash", "tags",
              "harness_version", "command")
STATUSES = ("complete", "partial", "failed")
METRIC_COLUMNS = ("pct_peak", "pct_expected")


class NotFound(UserError):
    """A page about a run or case the store does not hold: a 404, not an error of the server."""


@dataclass(frozen=True)
class Query:
    """A runs-list request as the page's form sends it (empty strings mean 'not given')."""

    tag: str = ""
    host: str = ""
    backend: str = ""
    status: str = ""
    since: str = ""
    until: str = ""

    def run_filter(self) -> RunFilter:
        from results.store import RunFilter

        tags = []
        for item in (t.strip() for t in self.tag.split(",") if t.strip()):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UserError(f"tag filter {item!r} is not KEY=VALUE (e.g. branch=main)")
            tags.append((key.strip(), value.strip()))
        if self.status and self.status not in STATUSES:
            raise UserError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        return RunFilter(tags=tuple(tags), host=self.host or None,
                         backend=self.backend or None, status=self.status or None,
                         since=self.since or None, until=self.until or None)

    def params(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


def _text(value: Any) -> str:
    """A string for a plotly.js label: its few tags (<b>, <a href>) inert."""
    return html.escape(str(value), quote=False)


def run_summary(run: StoredRun) -> dict[str, Any]:
    """A run's header as pages show it; a password in its command line (a --store URL) masked."""
    out = jsonable({k: getattr(run, k) for k in RUN_FIELDS})
    if isinstance(out.get("command"), str):
        out["command"] = mask_secrets(out["command"])
    return out


def _ab_partner(store: Store, run: StoredRun) -> dict[str, str] | None:
    """{base, head} run ids of the `bench ab` pair this run is a side of, if any."""
    from results.store import RunFilter

    tags = run.tags or {}
    if not tags.get("ab") or tags.get("ab_side") not in ("base", "head"):
        return None
    other = "head" if tags["ab_side"] == "base" else "base"
    _, found = store.find_runs(RunFilter(tags=(("ab", str(tags["ab"])), ("ab_side", other))),
                               limit=1)
    if not found:
        return None
    return {tags["ab_side"]: run.run_id, other: found[0].run_id}


# -- runs list ------------------------------------------------------------------------------------


def runs_view(store: Store, query: Query = Query(), page: int = 1,
              per_page: int = PAGE_SIZE) -> dict[str, Any]:
    """The runs that match, newest first, one page of them."""
    if page < 1 or not 1 <= per_page <= MAX_PAGE_SIZE:
        raise UserError(f"page must be >= 1 and per_page 1..{MAX_PAGE_SIZE}")
    total, rows = store.find_runs(query.run_filter(), (page - 1) * per_page, per_page)
    return {"total": total, "page": page, "per_page": per_page,
            "pages": max(1, math.ceil(total / per_page)), "filters": query.params(),
            "runs": [run_summary(r) for r in rows]}


def ab_pairs(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `bench ab` pairs: {ab, base, head, started_at}."""
    from results.store import RunFilter

    _, bases = store.find_runs(RunFilter(tags=(("ab_side", "base"),)), limit=limit)
    out = []
    for run in bases:
        pair = _ab_partner(store, run)
        if pair:
            out.append({"ab": (run.tags or {}).get("ab"), **pair,
                        "started_at": run.started_at})
    return out


# -- one run --------------------------------------------------------------------------------------


def resolve(store: Store, ref: str) -> str:
    """A run id for a reference (id, prefix, latest~N, tag:K=V); NotFound if none."""
    try:
        return store.resolve(ref)
    except UserError as exc:
        raise NotFound(str(exc)) from None


def _quantiles(x: np.ndarray, k: int = MAX_DIST_POINTS) -> list[float]:
    """At most k values that draw the same distribution: evenly spaced quantiles."""
    if x.size <= k:
        return x.tolist()
    return np.quantile(x, np.linspace(0, 1, k)).tolist()


def run_view(store: Store, ref: str, run_dir: Path | None = None) -> dict[str, Any]:
    """A run: header, environment, measurements (with metrics and traces: `trace_name` is set
    where the trace file exists, found as run_traces finds it) and the distribution of each
    case's samples."""
    run_id = resolve(store, ref)
    header = store.run(run_id)
    ms = store.measurements([run_id])
    trace_files = _traces_of(ms, run_id, run_dir)
    raw = store.samples_of([m.measurement_id for m in ms if m.ok])
    rows, traces = [], []
    for m in ms:
        timing = m.timing
        rows.append(jsonable({
            "case_key": m.case_key, "workload": m.workload, "backend": m.backend,
            "params": m.params, "status": m.status, "error": m.error,
            "summary": m.summary_columns(), "metrics": m.metrics or {},
            "work": m.work or {}, "stop_reason": timing.stop_reason if timing else None,
            "block": timing.block if timing else None,
            "block_rule": timing.block_rule if timing else None,
            "trace": trace_entry(m.measurement).get("path"),
            "trace_name": name if (name := _trace_name(m)) in trace_files else None,
            "peak_note": peak_note(m.metrics or {}, m.info or {}) if m.ok else None,
        }))
        sec = raw.get(m.measurement_id, (np.empty(0), None))[0]
        if sec.size:
            traces.append({"type": "box", "name": _text(m.case_key), "x": _quantiles(sec),
                           "boxpoints": False, "orientation": "h", "hoverinfo": "x+name"})
    figure = {"data": traces, "layout": {
        "title": {"text": "distribution of samples per case (seconds per call)"},
        "xaxis": {"type": "log", "title": {"text": "seconds"}}, "showlegend": False,
        "margin": {"l": 320, "r": 20, "t": 40, "b": 40},
        "height": 120 + 32 * max(1, len(traces)), "yaxis": {"automargin": True}}}
    metrics = [c for c in METRIC_COLUMNS if any(c in (m.metrics or {}) for m in ms)]
    env = header.env or {}
    return {"run": run_summary(header),
            "environment_flat": [[k, mask_secrets(v) if isinstance(v, str) else v]
                                 for k, v in sorted(jsonable(flatten(env)).items())],
            "measurements": rows, "metric_columns": metrics,
            "ab": _ab_partner(store, header), "distribution": figure,
            "sweep": sweep_figure([m.measurement for m in ms]),
            "roofline": roofline_figure([m.measurement for m in ms])}


# -- profile traces -------------------------------------------------------------------------------

TRACE_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,150}\.json(\.gz)?")


def _trace_name(m: StoredMeasurement) -> str | None:
    """The file name of a measurement's recorded trace, if it looks like one that
    `bench run --profile` writes (a name is all that a link to it carries)."""
    path = trace_entry(m.measurement).get("path")
    if not isinstance(path, str):
        return None
    name = PurePath(path).name
    return name if TRACE_NAME.fullmatch(name) else None


def run_traces(store: Store, run_id: str, run_dir: Path | None) -> dict[str, Path]:
    """name -> file of each trace the store records for the run and that exists (where it
    was written, or under run_dir/<run id>/traces when the run folder moved)."""
    return _traces_of(store.measurements([run_id]), run_id, run_dir)


def _traces_of(ms: list[StoredMeasurement], run_id: str, run_dir: Path | None
               ) -> dict[str, Path]:
    from results.profile import find_trace

    out = {}
    for m in ms:
        name = _trace_name(m)
        if name is not None:
            found = find_trace(trace_entry(m.measurement)["path"], run_id, run_dir)
            if found is not None:
                out[name] = found
    return out


def trace_file(store: Store, run_ref: str, name: str, run_dir: Path | None) -> Path:
    """The trace `name` of a run: only a file the store names as one of that run's traces
    (the name picks among them; no path is made from it); NotFound otherwise."""
    run_id = resolve(store, run_ref)
    found = run_traces(store, run_id, run_dir).get(name)
    if found is None:
        raise NotFound(f"run {run_id[:8]} has no trace {name!r}; its page links the ones it "
                       "has")
    return found


# -- a case across runs ---------------------------------------------------------------------------


def _decimate(n: int, values: list[float], keep: set[int], limit: int) -> list[int]:
    """Indices to plot: all of them up to `limit`; beyond, the min and the max of each of
    limit/2 buckets (so spikes stay visible) and every index in `keep`."""
    if n <= limit:
        return list(range(n))
    y = np.asarray(values, dtype=float)
    edges = np.linspace(0, n, limit // 2 + 1).astype(int)
    chosen = set(keep)
    if not np.isfinite(y).all():  # nan breaks the comparisons below: bucket by bucket
        for a, b in itertools.pairwise(edges):
            if b > a:
                chosen.add(a + int(np.argmin(y[a:b])))
                chosen.add(a + int(np.argmax(y[a:b])))
        return sorted(chosen)
    starts = edges[:-1][edges[1:] > edges[:-1]]
    bucket = np.repeat(np.arange(starts.size), np.diff(np.append(starts, n)))
    for reduce in (np.minimum, np.maximum):  # the first index of each bucket's min and max
        hits = np.flatnonzero(y == reduce.reduceat(y, starts)[bucket])
        _, first = np.unique(bucket[hits], return_index=True)
        chosen.update(hits[first].tolist())
    return sorted(chosen)


def case_view(store: Store, case_key: str, query: Query = Query(), last: int | None = None,
              threshold: float = 0.05, plot_points: int | None = MAX_PLOT_POINTS
              ) -> dict[str, Any]:
    """A case's history across the runs that match: every point (as columns), the change
    points and steps `bench history` finds, environment changes; with `plot_points`, the
    page's figure too, downsampled beyond that many points (the API asks for none)."""
    from results.history import case_history

    case = store.case(case_key)
    if case is None:
        raise NotFound(f"no case {case_key!r} in {store.name}; a run's page lists its cases")
    if last is not None and last < 2:
        raise UserError("last must be at least 2")
    if not 0 < threshold < 1:
        raise UserError(f"threshold must be a fraction between 0 and 1, got {threshold}")
    hist = case_history(store, case_key, threshold=threshold, where=query.run_filter(),
                        last=last)
    hashes = hist.env_hashes
    moved = [i for i in range(1, len(hashes)) if hashes[i] != hashes[i - 1]]
    envs = store.environments({h for i in moved for h in (hashes[i - 1], hashes[i])})
    changes = []
    for i in moved:
        a, b = hashes[i - 1], hashes[i]
        diff = environment_diff(envs.get(a) or {}, envs.get(b) or {}) if a and b else []
        changes.append({"index": i, "run_id": hist.run_ids[i], "started_at": hist.started_at[i],
                        "changed": [{"key": k, "before": x, "after": y}
                                    for k, x, y in diff[:20]],
                        "n_changed": len(diff)})
    steps = [{"index": i, "run_id": hist.run_ids[i], "change": c} for i, c in hist.steps()]
    data = jsonable({"case_key": case_key, "threshold": threshold,
                     "n_points": len(hist.medians), "change_points": hist.change_points,
                     "steps": steps, "drift": hist.drift(), "case": case.to_dict(),
                     "environment_changes": changes, "filters": query.params(),
                     "last": last})
    data["points"] = _strict_columns(hist.columns())
    if plot_points is not None:
        data["plot"] = _history_figure(hist, changes, plot_points)
    return data


def _strict_columns(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The columns with inf and nan written as jsonable writes them (strict JSON without a
    walk over every value: a float column is checked whole)."""
    out = {}
    for key, values in columns.items():
        if values and isinstance(values[0], float) and not np.isfinite(values).all():
            values = jsonable(values)
        out[key] = values
    return out


def _history_figure(hist: Any, changes: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    n = len(hist.medians)
    idx = _decimate(n, hist.medians, set(hist.change_points), limit)
    med = [hist.medians[i] for i in idx]
    x = [hist.started_at[i] for i in idx]
    hover = [_text(f"run {hist.run_ids[i][:8]}") for i in idx]
    # SVG "scatter", not "scattergl": a browser without WebGL (headless, remote desktop) draws
    # it too, and the plot never holds more than `limit` points.
    points = {"type": "scatter", "mode": "markers",
              "name": "median", "x": x, "y": med, "text": hover,
              "customdata": [hist.run_ids[i] for i in idx],
              "marker": {"size": 6, "color": "#1f77b4"},
              "error_y": {"type": "data", "symmetric": False,
                          "array": [hist.ci_high[i] - hist.medians[i] for i in idx],
                          "arrayminus": [hist.medians[i] - hist.ci_low[i] for i in idx],
                          "thickness": 1, "width": 2, "color": "#7fa9d6"}}
    levels: list[Any] = []
    level_y: list[Any] = []
    for a, b, level in hist.segments() if n else []:
        levels += [hist.started_at[a], hist.started_at[b - 1], None]
        level_y += [level, level, None]
    shapes, annotations = [], []
    steps = dict(hist.steps())
    for i in hist.change_points:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": hist.started_at[i],
                       "x1": hist.started_at[i], "y0": 0, "y1": 1,
                       "line": {"color": "#b00020" if i in steps else "#aaa", "dash": "dash"}})
        if i in steps:
            annotations.append({"x": hist.started_at[i], "yref": "paper", "y": 1,
                                "text": f"step {steps[i] * 100:+.1f}%", "showarrow": False,
                                "font": {"color": "#b00020"}, "yanchor": "bottom"})
    for c in changes:
        label = ", ".join(ch["key"] for ch in c["changed"][:3]) or "environment"
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": c["started_at"],
                       "x1": c["started_at"], "y0": 0, "y1": 0.06,
                       "line": {"color": "#a66a00", "width": 3}})
        annotations.append({"x": c["started_at"], "yref": "paper", "y": 0.07,
                            "text": _text(f"changed: {label}"), "showarrow": False,
                            "font": {"color": "#a66a00", "size": 10}, "textangle": -30})
    data = [points, {"type": "scatter", "mode": "lines", "name": "segment level",
                     "x": levels, "y": level_y, "line": {"color": "#b00020", "width": 2},
                     "hoverinfo": "skip"}]
    note = (f" (plot: {len(idx)} of {n} points, the min and max of each bucket; the API has "
            "every point)" if len(idx) < n else "")
    return {"data": data, "layout": {
        "title": {"text": _text(f"{hist.case_key}: {n} run(s){note}"), "font": {"size": 13}},
        "xaxis": {"title": {"text": "run started (UTC)"}},
        "yaxis": {"title": {"text": "median seconds per call (95% CI)"}, "rangemode": "tozero"},
        "shapes": shapes, "annotations": annotations, "height": 460,
        "margin": {"l": 70, "r": 20, "t": 50, "b": 50}, "showlegend": False},
        "points": len(idx), "of": n}


# -- two runs -------------------------------------------------------------------------------------


def compare_view(store: Store, base_ref: str, head_ref: str, threshold: float = 0.05,
                 fdr: float = 0.05) -> dict[str, Any]:
    """`bench compare BASE HEAD` as data: the verdict per case, worst first, and a plot of
    each case's change with its interval."""
    from results.selection import compare_runs

    base_id, head_id = resolve(store, base_ref), resolve(store, head_ref)
    rc = compare_runs(store, base_id, head_id, threshold, fdr, files=False)
    data = rc.to_dict()
    cases = list(reversed(data["cases"]))  # worst at the top of the plot
    colours = {"regression": "#b00020", "improvement": "#137333", "noise": "#a66a00",
               "unchanged": "#777"}
    fig = {"data": [{
        "type": "scatter", "mode": "markers", "orientation": "h",
        "x": [(c["ratio"] - 1) * 100 for c in cases],
        "y": [_text(c["case_key"]) for c in cases],
        "text": [c["verdict"] for c in cases],
        "marker": {"color": [colours.get(c["verdict"], "#333") for c in cases], "size": 8},
        "error_x": {"type": "data", "symmetric": False,
                    "array": [_finite((c["ci_high"] - c["ratio"]) * 100) for c in cases],
                    "arrayminus": [_finite((c["ratio"] - c["ci_low"]) * 100) for c in cases]},
    }], "layout": {
        "title": {"text": "change of the median, head vs base (%), 95% CI"},
        "xaxis": {"title": {"text": "change %"}, "zeroline": True},
        "yaxis": {"automargin": True, "type": "category"},
        "shapes": [{"type": "rect", "xref": "x", "yref": "paper", "x0": -threshold * 100,
                    "x1": threshold * 100, "y0": 0, "y1": 1, "fillcolor": "#eee",
                    "line": {"width": 0}, "layer": "below"}],
        "height": 140 + 28 * len(cases), "margin": {"l": 320, "r": 20, "t": 40, "b": 40},
        "showlegend": False}}
    data.update({"plot": fig, "base_run": run_summary(rc.base), "head_run": run_summary(rc.head)})
    return jsonable(data)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


# -- scaling across runs --------------------------------------------------------------------------


def scaling_view(store: Store, refs: list[str]) -> dict[str, Any]:
    """Speed-up and efficiency of each case across runs at different world sizes."""
    from results.report.scaling import scaling_rows

    if len(refs) < 2:
        raise UserError("scaling needs at least two runs (e.g. ?runs=ID1,ID2)")
    ids = [resolve(store, r) for r in refs]
    rows = scaling_rows(store, ids)
    return jsonable({"runs": ids, "rows": rows, "plot": scaling_figure(rows)})
