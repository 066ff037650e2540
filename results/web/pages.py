"""The HTML pages: Jinja2 templates (autoescape on) over the views' data, for the server and
the static site alike. Only `Links` differs between them: the server links to its routes, the
static site to relative file names (so that it works from file:// and from any folder)."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2

from harness.units import percent, seconds

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
ASSETS = ("app.js", "app.css")  # beside plotly.min.js, which comes from the plotly package


class Links:
    """Where the server's pages are."""

    static = False

    def home(self, **query: Any) -> str:
        q = {k: v for k, v in query.items() if v not in (None, "")}
        return "/runs" + (f"?{urlencode(q)}" if q else "")

    def run(self, run_id: str) -> str:
        return f"/runs/{quote(run_id, safe='')}"

    def case(self, case_key: str) -> str:
        return f"/cases/{quote(case_key, safe='')}"

    def compare(self, base: str, head: str) -> str | None:
        return f"/compare?{urlencode({'base': base, 'head': head})}"

    def trace(self, run_id: str, name: str) -> str:
        return f"/runs/{quote(run_id, safe='')}/traces/{quote(name, safe='')}"

    def asset(self, name: str) -> str:
        return f"/static/{name}"

    def api(self, path: str) -> str | None:
        return path


def _safe_name(text: str) -> str:
    """A file name for a run id or case key: itself when it is plain, else a hash of it."""
    if re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._-]{0,99}", text):
        return text
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class SiteLinks(Links):
    """Where `bench publish` writes the pages: relative to the page being written (`depth`
    folders below the site's root). Compare pages exist for the pairs it wrote."""

    static = True

    def __init__(self, depth: int = 0, compared: set[tuple[str, str]] | None = None) -> None:
        self.up = "../" * depth
        self.compared = compared if compared is not None else set()

    def at(self, depth: int) -> SiteLinks:
        return SiteLinks(depth, self.compared)

    def home(self, page: int = 1, **_query: Any) -> str:
        return self.up + ("index.html" if int(page) == 1 else f"page-{int(page)}.html")

    def run(self, run_id: str) -> str:
        return f"{self.up}runs/{quote(run_file(run_id))}"

    def case(self, case_key: str) -> str:
        return f"{self.up}cases/{quote(case_file(case_key))}"

    def compare(self, base: str, head: str) -> str | None:
        if (base, head) not in self.compared:
            return None
        return f"{self.up}compare/{quote(compare_file(base, head))}"

    def trace(self, run_id: str, name: str) -> str:
        return f"{self.up}{trace_file(run_id, name)}"

    def asset(self, name: str) -> str:
        return f"{self.up}static/{name}"

    def api(self, path: str) -> str | None:
        return None


def run_file(run_id: str) -> str:
    return f"{_safe_name(run_id)}.html"


def trace_file(run_id: str, name: str) -> str:
    """Where the site keeps a run's trace, relative to its root (URL-quoted)."""
    return f"traces/{quote(_safe_name(run_id))}/{quote(_safe_name(name))}"


def case_file(case_key: str) -> str:
    return f"{hashlib.sha256(case_key.encode()).hexdigest()[:20]}.html"


def compare_file(base: str, head: str) -> str:
    return f"{_safe_name(base)}_{_safe_name(head)}.html"


def _seconds(value: Any) -> str:
    try:
        return seconds(float(value)) if value is not None else ""
    except (TypeError, ValueError):
        return str(value)


def _pct(value: Any) -> str:
    try:
        return f"{float(value):.1f}%"
    except (TypeError, ValueError):
        return ""


def _ci(summary: dict[str, Any]) -> str:
    med, lo, hi = (summary.get(k) for k in ("median", "ci_low", "ci_high"))
    if not isinstance(med, (int, float)) or not isinstance(lo, (int, float)) or not med:
        return ""
    if not isinstance(hi, (int, float)):
        return ""
    return percent(max(med - lo, hi - med) / med)


def _tags(tags: dict[str, Any] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in (tags or {}).items())


def _when(text: Any) -> str:
    return str(text or "")[:19].replace("T", " ")


def _headline(metrics: dict[str, Any], work: dict[str, Any]) -> str:
    from harness.units import headline_metric

    try:
        return headline_metric(metrics or {}, (work or {}).get("item_unit", "items"))
    except (TypeError, ValueError):
        return ""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(seconds=_seconds, pct=_pct, ci=_ci, tags=_tags, when=_when,
                       headline=_headline, short=lambda s: str(s or "")[:8])
    return env


PLOT_TEMPLATES = ("run.html", "case.html", "compare.html", "scaling.html")
NEWEST = 50  # points in the case page's table (the plot and the JSON have them all)


def render(template: str, links: Links, **context: Any) -> str:
    """A page: `context` is a view's data (every value escaped by the template engine)."""
    return environment().get_template(template).render(
        links=links, plots=template in PLOT_TEMPLATES, **context)


def case_page(links: Links, data: dict[str, Any], store: str, api_path: str = "") -> str:
    """The case page; a click on a point of its history opens that run's page."""
    plot = dict(data["plot"])
    points = dict(plot["data"][0])
    points["customdata"] = [links.run(r) for r in points.get("customdata", [])]
    plot["data"] = [points, *plot["data"][1:]]
    cols, n = data["points"], data["n_points"]
    newest = [{k: cols[k][i] for k in cols} for i in range(n - 1, max(0, n - NEWEST) - 1, -1)]
    return render("case.html", links, store=store, api_path=api_path, newest=newest,
                  **{**data, "plot": plot})


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js as the plotly package ships it (served from here: no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def asset(name: str) -> str:
    """The text of a static asset: plotly.min.js, app.js or app.css."""
    if name == "plotly.min.js":
        return plotly_js()
    if name not in ASSETS:
        raise KeyError(name)
    return (STATIC / name).read_text(encoding="utf-8")


def api_case_path(case_key: str) -> str:
    return f"/api/cases/{quote(case_key, safe='')}/history"


def api_compare_path(base: str, head: str) -> str:
    return f"/api/compare?{urlencode({'base': base, 'head': head})}"
