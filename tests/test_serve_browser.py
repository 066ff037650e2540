"""`bench serve` and `bench publish` in a real browser: Debian's Chromium driven by Playwright
(the system browser as its executable; Playwright downloads nothing). Every page must load
with no console error and no request beyond the server (or file://, for the static site).

Screenshots of the run, case-history and compare pages are saved in a folder of the test run
(its path is printed) and copied to /tmp/serve-shots/."""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_store import CASE, INJECTED, N_CASE_RUNS, ServedStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run "
    "installs it)")
SHOTS_COPY = Path("/tmp/serve-shots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("serve-shots")
    yield folder
    SHOTS_COPY.mkdir(parents=True, exist_ok=True)
    for shot in folder.glob("*.png"):
        shutil.copy2(shot, SHOTS_COPY / shot.name)
    print(f"\nscreenshots: {folder} (copied to {SHOTS_COPY})")


class Watched:
    """A browser page that records console errors, page errors and foreign requests."""

    def __init__(self, page: Any, allowed: str) -> None:
        self.page = page
        self.errors: list[str] = []
        self.foreign: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r: Any) -> None:
            if r.request.url.startswith(allowed):
                r.continue_()
            else:
                self.foreign.append(r.request.url)
                r.abort()

        page.route("**/*", route)

    def ready(self) -> None:
        """Wait until app.js has drawn every plot of the page."""
        self.page.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
        assert self.page.evaluate("document.body.dataset.ready") == "1", self.errors

    def check(self) -> None:
        assert self.errors == []
        assert self.foreign == []


@pytest.fixture
def served_page(browser: Any, served: ServedStore) -> Iterator[Watched]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), served.url)
    yield w
    w.check()
    ctx.close()


def test_runs_list_then_a_run_shows_its_table(served_page: Watched, served: ServedStore,
                                              shots: Path):
    page = served_page.page
    page.goto(f"{served.url}/runs")
    rows = page.locator("#runs tbody tr")
    assert rows.count() == len(served.run_ids)
    # the injected tag is text on the page, and never ran
    assert INJECTED in page.locator("#runs tbody td.tags").first.inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    newest_case_run = served.case_run_ids[-1]
    page.locator(f"a.run-link[href='/runs/{newest_case_run}']").click()
    served_page.ready()
    assert page.url.endswith(f"/runs/{newest_case_run}")
    table = page.locator("#measurements tbody tr")
    assert table.count() == 1 and CASE in table.first.inner_text()
    assert INJECTED in page.locator("#run-tags").inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.getElementById('distribution').data.length") == 1
    page.screenshot(path=str(shots / "run.png"), full_page=True)


def test_tables_sort_by_a_column(served_page: Watched, served: ServedStore):
    page = served_page.page
    page.goto(f"{served.url}/runs")

    def first_run() -> str:
        return page.locator("#runs tbody tr a.run-link").first.get_attribute("href")

    newest = first_run()
    header = page.locator("#runs thead th", has_text="started")
    header.click()  # ascending: the oldest first
    assert first_run() == f"/runs/{served.run_ids[-1]}"
    header.click()
    assert first_run() == newest


def test_case_history_has_a_point_per_run(served_page: Watched, served: ServedStore,
                                          shots: Path):
    page = served_page.page
    page.goto(f"{served.url}/runs/{served.case_run_ids[0]}")
    served_page.ready()
    page.locator("a.case-link").first.click()
    served_page.ready()
    assert page.evaluate("document.getElementById('history').data[0].x.length") == N_CASE_RUNS
    assert page.locator("#steps tbody tr").count() == 1
    assert page.locator("#env-changes tbody tr").count() == 1
    # the change point and the environment change are marked on the plot's time axis
    shapes = page.evaluate("document.getElementById('history').layout.shapes.length")
    assert shapes >= 2
    page.screenshot(path=str(shots / "case-history.png"), full_page=True)


def test_compare_page_shows_the_verdicts(served_page: Watched, served: ServedStore,
                                         shots: Path):
    page = served_page.page
    page.goto(f"{served.url}/compare")
    page.fill("input[name=base]", served.case_run_ids[0])
    page.fill("input[name=head]", served.case_run_ids[-1])
    page.click("form.filters button")
    served_page.ready()
    verdicts = page.locator("#verdicts tbody td.verdict")
    assert verdicts.count() == 1 and verdicts.first.inner_text() == "regression"
    assert "1 regression" in page.locator("#counts").inner_text()
    page.screenshot(path=str(shots / "compare.png"), full_page=True)


def test_unknown_run_is_a_404_page(served_page: Watched, served: ServedStore):
    page = served_page.page
    resp = page.goto(f"{served.url}/runs/no-such-run")
    assert resp is not None and resp.status == 404
    assert "no run" in page.locator("#error-message").inner_text()
    served_page.errors.clear()  # the browser logs the 404 status of the page itself


def test_published_site_works_from_file_urls(browser: Any, bench, served: ServedStore,
                                             tmp_path: Path, shots: Path):
    site = tmp_path / "site"
    r = bench("publish", "--store", str(served.db), "-o", str(site), timeout=120)
    assert r.rc == 0, r.stderr
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(ctx.new_page(), "file://")
    page = w.page
    page.goto((site / "index.html").as_uri())
    assert page.locator("#runs tbody tr").count() == len(served.run_ids)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.locator("a.run-link").nth(1).click()  # the newest run of the case
    w.ready()
    assert urllib.parse.urlsplit(page.url).scheme == "file"
    assert CASE in page.locator("#measurements tbody tr").first.inner_text()
    page.locator("a.case-link").first.click()
    w.ready()
    assert page.evaluate("document.getElementById('history').data[0].x.length") == N_CASE_RUNS
    page.go_back()
    page.go_back()
    compare = page.locator("#runs a[href^='compare/']").first
    compare.click()
    w.ready()
    assert page.locator("#verdicts tbody tr").count() == 1
    page.screenshot(path=str(shots / "published-compare.png"), full_page=True)
    w.check()
    ctx.close()
