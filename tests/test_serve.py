"""`bench serve` and `bench publish` over a store filled by real `bench run`s: the JSON API and
the pages through the real server, the safety rules (escaping, 404s, one-line errors, the
loopback default), and the views' own logic (downsampling, masking). The browser tests are in
test_serve_browser.py and share the store made here (tests/serve_store.py)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from serve_store import CASE, INJECTED, N_CASE_RUNS, ServedStore


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


# -- the JSON API and the pages, through the real server ---------------------------------------


def test_api_runs_lists_every_run_newest_first(served: ServedStore):
    code, body = get(f"{served.url}/api/runs")
    assert code == 200
    data = json.loads(body)
    assert data["total"] == len(served.run_ids)
    assert [r["run_id"] for r in data["runs"]] == served.run_ids  # newest first
    code, body = get(f"{served.url}/api/runs?per_page=2&page=2")
    assert [r["run_id"] for r in json.loads(body)["runs"]] == served.run_ids[2:4]


def test_api_runs_filters(served: ServedStore):
    def ids(query: str) -> list[str]:
        code, body = get(f"{served.url}/api/runs?{query}")
        assert code == 200, body
        return [r["run_id"] for r in json.loads(body)["runs"]]

    assert ids("backend=numpy:cpu&status=complete") == served.run_ids
    assert len(ids("tag=" + q("phase=slow"))) == 2
    assert ids("tag=" + q("phase=none")) == []
    assert ids("since=2999-01-01") == []
    assert ids("until=2999-01-01") == served.run_ids


def test_api_run_and_history_and_compare(served: ServedStore):
    code, body = get(f"{served.url}/api/runs/{served.case_run_ids[-1]}")
    assert code == 200
    run = json.loads(body)
    assert run["run"]["tags"]["note"] == INJECTED
    assert [m["case_key"] for m in run["measurements"]] == [CASE]

    code, body = get(f"{served.url}/api/cases/{q(CASE)}/history")
    assert code == 200, body
    hist = json.loads(body)
    points = hist["points"]  # every point, as columns, oldest first
    assert hist["n_points"] == N_CASE_RUNS
    assert points["run_id"] == served.case_run_ids
    assert {len(col) for col in points.values()} == {N_CASE_RUNS}
    from results.store import Store

    stored = {m.run_id: m.summary for m in Store(str(served.db), create=False).measurements(
        served.case_run_ids)}
    assert points["median"] == [stored[r].median for r in served.case_run_ids]
    assert points["ci_high"] == [stored[r].ci_high for r in served.case_run_ids]
    assert [s["index"] for s in hist["steps"]] == [3]  # the slowed build
    assert [c["index"] for c in hist["environment_changes"]] == [3]
    assert any(ch["key"] == "env.MALLOC_ARENA_MAX"
               for ch in hist["environment_changes"][0]["changed"])

    base, head = served.case_run_ids[0], served.case_run_ids[-1]
    code, body = get(f"{served.url}/api/compare?base={base}&head={head}")
    assert code == 200, body
    cmp = json.loads(body)
    assert [c["verdict"] for c in cmp["cases"]] == ["regression"]
    assert cmp["counts"]["regression"] == 1


def test_a_runs_trace_is_linked_and_served_by_the_real_server(served: ServedStore):
    from results.store import Store

    (m,) = Store(str(served.db), create=False).measurements([served.stream_run_id])
    path = Path(m.timing.extra["profile"]["path"])
    code, page = get(f"{served.url}/runs/{served.stream_run_id}")
    href = f"/runs/{served.stream_run_id}/traces/{path.name}"
    assert code == 200 and f'href="{href}"' in page
    with urllib.request.urlopen(served.url + href, timeout=30) as resp:
        assert resp.status == 200 and resp.read() == path.read_bytes()
    for bad in (f"/runs/{served.stream_run_id}/traces/{q('../../bench.db')}",
                f"/runs/{served.case_run_ids[0]}/traces/{path.name}"):  # not that run's
        code, body = get(served.url + bad)
        assert code == 404 and "SQLite" not in body


def test_openapi_documents_the_api(served: ServedStore):
    code, body = get(f"{served.url}/api/openapi.json")
    assert code == 200
    paths = json.loads(body)["paths"]
    for path in ("/api/runs", "/api/runs/{run_ref}", "/api/cases/{case_key}/history",
                 "/api/compare"):
        assert path in paths
    schemas = json.loads(body)["components"]["schemas"]
    ok = paths["/api/cases/{case_key}/history"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/CaseHistory")
    assert set(schemas["HistoryPoints"]["properties"]) == {"run_id", "started_at", "median",
                                                          "ci_low", "ci_high"}
    code, body = get(f"{served.url}/api/docs")
    assert code == 200 and "/api/docs-assets/swagger-ui-bundle.js" in body
    assert get(f"{served.url}/api/docs-assets/swagger-ui-bundle.js")[0] == 200


def test_values_from_the_store_are_escaped(served: ServedStore):
    for path in ("/runs", f"/runs/{served.run_ids[0]}"):
        code, body = get(served.url + path)
        assert code == 200
        assert "<script>window.__pwned" not in body
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body
        assert 'x"y' not in body and "x&#34;y" in body


def test_plotly_is_served_from_the_package(served: ServedStore):
    code, body = get(f"{served.url}/runs/{served.run_ids[0]}")
    assert '<script src="/static/plotly.min.js"' in body
    assert "cdn" not in body.lower()
    code, js = get(f"{served.url}/static/plotly.min.js")
    assert code == 200 and "plotly.js" in js[:2000]


@pytest.mark.parametrize("path", ["/runs/no-such-run", f"/cases/{q('nothing[numpy:cpu]')}",
                                  "/nowhere", "/static/../pyproject.toml"])
def test_unknown_things_are_404_pages(served: ServedStore, path: str):
    code, body = get(served.url + path)
    assert code == 404
    assert "<h1>404" in body and "Traceback" not in body


def test_unknown_run_in_the_api_is_a_json_404(served: ServedStore):
    code, body = get(f"{served.url}/api/runs/no-such-run")
    assert code == 404 and "no run" in json.loads(body)["error"]


@pytest.mark.parametrize("query", ["status=bogus", "page=0", "page=x", "since=yesterday",
                                   "tag=novalue", "per_page=100000"])
def test_bad_query_is_a_400_with_one_message(served: ServedStore, query: str):
    code, body = get(f"{served.url}/api/runs?{query}")
    assert code == 400, body
    assert json.loads(body)["error"]
    code, body = get(f"{served.url}/runs?{query}")
    assert code == 400 and "Traceback" not in body


def test_compare_of_unrelated_runs_is_a_400(served: ServedStore):
    code, body = get(f"{served.url}/api/compare?base={served.stream_run_id}"
                     f"&head={served.case_run_ids[0]}")
    assert code == 400 and "share no measured case" in json.loads(body)["error"]


def test_the_store_is_not_written(served: ServedStore):
    before = served.db.stat().st_mtime_ns
    for path in ("/runs", f"/runs/{served.run_ids[0]}", f"/cases/{q(CASE)}",
                 "/api/compare?base=latest~1&head=latest"):
        get(served.url + path)
    assert served.db.stat().st_mtime_ns == before


# -- the command line: one line and exit 2 for what cannot work ---------------------------------


def test_serve_without_a_store_is_one_line(bench):
    r = bench("serve", "--store", "missing.db", "--port", "0", timeout=30)
    assert r.rc == 2 and len(r.err_lines) == 1 and "no such store" in r.stderr
    assert not (Path.cwd() / "missing.db").exists()
    r = bench("serve", "--port", "0", timeout=30)  # ./bench.db absent: not made
    assert r.rc == 2 and len(r.err_lines) == 1 and "no store" in r.stderr
    assert not (Path.cwd() / "bench.db").exists()


def test_unreachable_store_is_one_line_without_the_password(bench):
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = bench("serve", "--store", f"postgresql+psycopg://bench:hunter2@127.0.0.1:{port}/x",
              "--port", "0", timeout=60)
    assert r.rc == 2, r.stderr
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("bench: error:")
    assert "hunter2" not in r.stderr and "Traceback" not in r.stderr


def test_port_in_use_is_one_line(bench, served: ServedStore):
    port = urllib.parse.urlsplit(served.url).port
    r = bench("serve", "--store", str(served.db), "--port", str(port), timeout=30)
    assert r.rc == 2 and len(r.err_lines) == 1 and "cannot listen" in r.stderr


def test_bad_host_and_port_are_one_line(bench, served: ServedStore):
    r = bench("serve", "--store", str(served.db), "--port", "70000", timeout=30)
    assert r.rc == 2 and len(r.err_lines) == 1
    r = bench("serve", "--store", str(served.db), "--host", "no such host!", "--port", "0",
              timeout=30)
    assert r.rc == 2 and len(r.err_lines) == 1 and "--host" in r.stderr


def test_listening_beyond_loopback_warns(bench_popen, served: ServedStore):
    proc = bench_popen("serve", "--store", str(served.db), "--host", "0.0.0.0", "--port", "0")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert "serving" in line and "0.0.0.0" in line
        warning = proc.stderr.readline()
        assert warning.startswith("bench: warning:") and "anyone" in warning
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_default_host_is_loopback():
    from harness.cli.serve import serve

    host = next(p for p in serve.params if p.name == "host")
    assert host.default == "127.0.0.1"


# -- bench publish ------------------------------------------------------------------------------


def test_publish_writes_a_site_with_relative_links(bench, served: ServedStore, tmp_path: Path):
    site = tmp_path / "site"
    r = bench("publish", "--store", str(served.db), "-o", str(site), timeout=120)
    assert r.rc == 0, r.stderr
    assert (site / "index.html").is_file() and (site / "static" / "plotly.min.js").is_file()
    assert len(list((site / "runs").glob("*.html"))) == len(served.run_ids)
    assert len(list((site / "cases").glob("*.html"))) == 2
    assert list((site / "compare").glob("*.html"))
    assert "and 1 trace(s)" in r.stdout  # the STREAM run's, copied beside its page
    (trace,) = (site / "traces").rglob("*.json.gz")
    run_page = (site / "runs" / f"{served.stream_run_id}.html").read_text()
    assert f'href="../traces/{served.stream_run_id}/{trace.name}"' in run_page
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert 'href="/' not in text and 'src="/' not in text, page  # nothing absolute
        assert "<script>window.__pwned" not in text


def test_publish_refuses_a_file_and_an_empty_selection(bench, served: ServedStore,
                                                       tmp_path: Path):
    f = tmp_path / "afile"
    f.write_text("x")
    r = bench("publish", "--store", str(served.db), "-o", str(f), timeout=60)
    assert r.rc == 2 and len(r.err_lines) == 1
    r = bench("publish", "--store", str(served.db), "-o", str(tmp_path / "s"), "--tag",
              "phase=none", timeout=60)
    assert r.rc == 2 and "no runs" in r.stderr


# -- the views' logic ---------------------------------------------------------------------------


def test_history_plot_downsamples_but_keeps_spikes_and_change_points():
    import numpy as np

    from results.web.views import _decimate

    y = list(np.ones(10_000))
    y[4321] = 5.0
    idx = _decimate(len(y), y, keep={7000}, limit=200)
    assert len(idx) <= 202 and 4321 in idx and 7000 in idx and idx == sorted(set(idx))
    assert _decimate(50, y[:50], set(), 200) == list(range(50))


def test_history_columns_stay_strict_json():
    from results.web.views import _strict_columns

    cols = _strict_columns({"run_id": ["a", "b"], "median": [1.0, 2.0],
                            "ci_high": [1.5, float("inf")]})
    assert cols == {"run_id": ["a", "b"], "median": [1.0, 2.0], "ci_high": [1.5, "inf"]}
    json.dumps(cols, allow_nan=False)


def test_run_summary_masks_a_password_in_the_command():
    from results.stored import StoredRun
    from results.web.views import run_summary

    out = run_summary(StoredRun(
        run_id="r", started_at="2026-01-01T00:00:00", finished_at=None, status="complete",
        command="bench run --store postgresql://u:pw@h/db", suite=None, git_revision=None,
        git_dirty=None, slurm_job_id=None, host=None, env_hash=None, tags={},
        harness_version=None, n_measurements=0))
    assert "pw@" not in out["command"] and "u:***@h" in out["command"]


def test_served_subprocess_is_still_alive(served: ServedStore):
    assert served.proc.poll() is None


def test_store_url_in_the_header_hides_the_password(tmp_path: Path):
    from results.web import pages
    from results.web.views import Query

    html = pages.render("runs.html", pages.Links(), store="postgresql://u:***@h/db",
                        statuses=(), ab_pairs=[], total=0, page=1, per_page=50, pages=1,
                        filters=Query().params(), runs=[])
    assert "u:***@h" in html


def test_an_ab_pair_is_listed_and_linked(bench, workdir: Path):
    from results.store import Store
    from results.web import pages, views

    for side in ("base", "head"):
        r = bench("run", "-w", "spin", "-p", "us=20", "--budget", "0.2", "-q", "--tag",
                  "ab=pair1", "--tag", f"ab_side={side}")
        assert r.rc == 0, r.stderr
    store = Store(str(workdir / "bench.db"), create=False)
    (pair,) = views.ab_pairs(store)
    assert pair["ab"] == "pair1"
    data = views.run_view(store, pair["head"])
    assert data["ab"] == {"base": pair["base"], "head": pair["head"]}
    html = pages.render("run.html", pages.Links(), store=store.name, **data)
    assert pages.Links().compare(pair["base"], pair["head"]).replace("&", "&amp;") in html
    runs = pages.render("runs.html", pages.Links(), store=store.name, statuses=(),
                        ab_pairs=[pair], **views.runs_view(store))
    assert "pair1" in runs


def test_history_plot_buckets_match_a_plain_loop():
    import itertools

    import numpy as np

    from results.web.views import _decimate

    rng = np.random.default_rng(5)
    for n, limit in ((10_000, 2000), (2001, 2000), (4567, 300)):
        y = rng.lognormal(0, 0.1, n).round(3).tolist()  # rounded: ties within buckets
        edges = np.linspace(0, n, limit // 2 + 1).astype(int)
        plain = set()
        for a, b in itertools.pairwise(edges):
            if b > a:
                plain |= {a + int(np.argmin(y[a:b])), a + int(np.argmax(y[a:b]))}
        assert _decimate(n, y, set(), limit) == sorted(plain)
    y = [1.0, float("nan"), 2.0] * 1000  # a nan: the plain loop's answer (argmin's nan)
    assert _decimate(len(y), y, set(), 100)[:2] == [1, 61]
