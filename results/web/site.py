"""`bench publish`: the pages of `bench serve` as a static site (a CI artifact, GitHub Pages).

Links are relative, so the site works from file:// and from any folder it is copied to:

    index.html, page-N.html     the runs list, newest first
    runs/<run>.html             each run
    cases/<hash>.html           each case's history
    compare/<base>_<head>.html  each run against the one before it, and every `bench ab` pair
    static/                     app.js, app.css and plotly.min.js (from the plotly package)
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError
from results.web import pages, views

if TYPE_CHECKING:
    from results.store import Store


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def publish(store: Store, output: Path, query: views.Query | None = None,
            per_page: int = views.PAGE_SIZE, run_dir: Path | None = None) -> dict[str, int]:
    """Write the site into `output`; returns how many pages of each kind were written (and
    how many traces copied: those the store records for the runs, found as bench serve
    finds them)."""
    query = query or views.Query()
    if output.exists() and not output.is_dir():
        raise UserError(f"-o {output} is a file; give a folder for the site")
    total, runs = store.find_runs(query.run_filter())
    if not total:
        raise UserError(f"no runs to publish in {store.name}"
                        + (" with these filters" if query.params() else "")
                        + "; see `bench runs`")
    output.mkdir(parents=True, exist_ok=True)
    name = store.name

    # which comparisons get a page: each run vs the one before it, and each ab pair
    wanted = {(older.run_id, newer.run_id) for newer, older in itertools.pairwise(runs)}
    pairs = views.ab_pairs(store, limit=len(runs))
    wanted |= {(p["base"], p["head"]) for p in pairs}
    compared: dict[tuple[str, str], dict[str, Any]] = {}
    for base, head in sorted(wanted):
        try:
            compared[(base, head)] = views.compare_view(store, base, head)
        except UserError:
            continue  # nothing in common: no page, and no link to one
    links = pages.SiteLinks(0, set(compared))
    counts = {"runs": 0, "cases": 0, "compare": 0, "index": 0, "traces": 0}

    n_pages = max(1, -(-total // per_page))
    for page in range(1, n_pages + 1):
        data = views.runs_view(store, query, page, per_page)
        data["filters"] = {}  # the static pages have no filter form
        html = pages.render("runs.html", links, store=name, statuses=views.STATUSES,
                            ab_pairs=pairs if page == 1 else [], **data)
        _write(output / (links.home(page=page)), html)
        counts["index"] += 1

    sub = links.at(1)
    case_keys: set[str] = set()
    for run in runs:
        data = views.run_view(store, run.run_id, run_dir)
        case_keys.update(m["case_key"] for m in data["measurements"])
        traces = views.run_traces(store, run.run_id, run_dir)
        for m in data["measurements"]:
            if m["trace_name"] in traces:
                dest = output / urllib.parse.unquote(pages.trace_file(run.run_id,
                                                                      m["trace_name"]))
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(traces[m["trace_name"]], dest)
                counts["traces"] += 1
        _write(output / "runs" / pages.run_file(run.run_id),
               pages.render("run.html", sub, store=name, **data))
        counts["runs"] += 1
    for key in sorted(case_keys):
        try:
            data = views.case_view(store, key, query)
        except UserError:
            continue
        _write(output / "cases" / pages.case_file(key), pages.case_page(sub, data, name))
        counts["cases"] += 1
    for (base, head), data in compared.items():
        _write(output / "compare" / pages.compare_file(base, head),
               pages.render("compare.html", sub, store=name, base_ref=base, head_ref=head,
                            **data))
        counts["compare"] += 1
    for asset in ("plotly.min.js", *pages.ASSETS):
        _write(output / "static" / asset, pages.asset(asset))
    return counts
