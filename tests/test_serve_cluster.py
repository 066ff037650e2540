"""The results browser over real multi-rank runs (tests/serve_store.py's `cluster` store): the
collective sweep (one series per backend, a point per size), the scaling view (efficiency per
rank count, from the stored figures), and the profile traces linked from a run: served by
`bench serve` only when the store names them, copied by `bench publish`."""

from __future__ import annotations

import gzip
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_store import SCALING_CASE, SWEEP_SIZES, ClusterStore


@pytest.fixture(scope="module")
def client(cluster: ClusterStore) -> Iterator[Any]:
    import warnings

    warnings.filterwarnings("ignore", message=".*httpx.*")
    from starlette.testclient import TestClient

    from results.store import Store
    from results.web.app import create_app

    with TestClient(create_app(Store(str(cluster.db), create=False), cluster.run_dir)) as c:
        yield c


@pytest.fixture(scope="module")
def stored(cluster: ClusterStore) -> dict[str, list[dict[str, Any]]]:
    """Each run's measurements, read from the store (what the pages must agree with)."""
    from results.store import Store

    store = Store(str(cluster.db), create=False)
    ids = [*cluster.scaling_run_ids, *([cluster.sweep_run_id] if cluster.sweep_run_id else [])]
    return {r: store.measurements([r]) for r in ids}


# -- the collective sweep ---------------------------------------------------------------------


def test_sweep_has_a_series_per_backend_and_a_point_per_size(cluster, client, stored):
    if cluster.sweep_run_id is None:
        pytest.skip("needs mpirun, mpi4py and torch (Gloo)")
    r = client.get(f"/api/runs/{cluster.sweep_run_id}")
    assert r.status_code == 200
    series = r.json()["sweep"]["data"]
    backends = {m.backend for m in stored[cluster.sweep_run_id]}
    assert backends == {"mpi:cpu", "gloo:cpu"}
    assert len(series) == len(backends)
    for backend in backends:
        (line,) = [s for s in series if f" on {backend} " in s["name"]]
        ms = sorted((m for m in stored[cluster.sweep_run_id] if m.backend == backend),
                    key=lambda m: m.metrics["size_bytes"])
        assert line["x"] == [m.metrics["size_bytes"] for m in ms] == list(SWEEP_SIZES)
        assert line["y"] == [m.metrics["busbw_gbps"] for m in ms]
    page = client.get(f"/runs/{cluster.sweep_run_id}").text
    assert 'id="sweep"' in page


def test_scaling_shows_the_efficiency_of_each_rank_count(cluster, client, stored):
    one, two = cluster.scaling_run_ids
    thr = {}
    for run_id in (one, two):
        (m,) = stored[run_id]
        thr[int(m.metrics.get("world_size") or 1)] = m.metrics["items_per_s"]
    assert sorted(thr) == [1, 2]
    expected = thr[2] / (2 * thr[1])

    r = client.get(f"/api/scaling?runs={one},{two}")
    assert r.status_code == 200, r.text
    rows = {row["ranks"]: row for row in r.json()["rows"]}
    assert set(rows) == {1, 2} and {row["case"] for row in rows.values()} == {SCALING_CASE}
    assert rows[1]["efficiency"] == pytest.approx(1.0)
    assert rows[2]["efficiency"] == pytest.approx(expected, rel=1e-12)
    assert rows[2]["run"] == two
    (line,) = r.json()["plot"]["data"]
    assert line["x"] == [1, 2] and line["y"] == pytest.approx([100.0, expected * 100])

    page = client.get(f"/scaling?runs={one},{two}").text
    assert f"{expected * 100:.1f}%" in page and "100.0%" in page


# -- traces -------------------------------------------------------------------------------------


def _recorded(ms: list[Any]) -> list[Path]:  # stored measurements
    return [Path(m.timing.extra["profile"]["path"]) for m in ms
            if (m.timing.extra.get("profile") or {}).get("path")]


def test_run_page_links_its_trace_and_the_route_serves_it(cluster, client, stored):
    for run_id in cluster.scaling_run_ids:
        (path,) = _recorded(stored[run_id])
        page = client.get(f"/runs/{run_id}").text
        href = f"/runs/{run_id}/traces/{path.name}"
        assert f'href="{href}"' in page
        r = client.get(href)
        assert r.status_code == 200 and r.content == path.read_bytes()
        assert "traceEvents" in json.loads(gzip.decompress(r.content))


def test_trace_route_serves_nothing_the_store_does_not_name(cluster, client, stored):
    one, two = cluster.scaling_run_ids
    (theirs,) = _recorded(stored[two])
    q = urllib.parse.quote
    refused = [
        f"/runs/{one}/traces/{theirs.name}",  # another run's trace
        f"/runs/{one}/traces/{q('../../bench.db', safe='')}",
        f"/runs/{one}/traces/{q(str(cluster.db), safe='')}",
        f"/runs/{one}/traces/bench.db",
        f"/runs/{one}/traces/..%2F..%2F{theirs.parent.parent.name}",
        f"/runs/no-such-run/traces/{theirs.name}",
    ]
    if theirs.name == _recorded(stored[one])[0].name:
        refused.pop(0)  # the same file name in both runs: only the other cases apply
    for path in refused:
        r = client.get(path)
        assert r.status_code == 404, path
        assert b"traceEvents" not in r.content and b"SQLite" not in r.content


def test_a_moved_run_folder_is_found_under_run_dir(cluster, client, stored, tmp_path):
    import shutil

    from results.store import Store
    from results.web import views

    run_id = cluster.scaling_run_ids[0]
    (path,) = _recorded(stored[run_id])
    store = Store(str(cluster.db), create=False)
    assert views.trace_file(store, run_id, path.name, None) == path
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(path.parent.parent, moved / run_id)  # the run folder moved elsewhere
    try:
        assert views.trace_file(store, run_id, path.name, moved) == (
            moved / run_id / "traces" / path.name)
        with pytest.raises(views.NotFound):
            views.trace_file(store, run_id, path.name, None)  # nowhere else to look
        # the server looks under its own --run-dir, not here: no link, the path marked missing
        page = client.get(f"/runs/{run_id}").text
        assert "trace-link" not in page and f"{path.name} (missing)" in page
        assert client.get(f"/runs/{run_id}/traces/{path.name}").status_code == 404
    finally:
        shutil.move(moved / run_id, path.parent.parent)


def test_publish_copies_each_trace_and_links_it_relatively(cluster, stored, bench_at,
                                                           tmp_path):
    site = tmp_path / "site"
    r = bench_at(tmp_path, "publish", "--store", str(cluster.db), "--run-dir",
                 str(cluster.run_dir), "-o", str(site), timeout=120)
    assert r.rc == 0, r.stderr
    expected = sum(len(_recorded(ms)) for ms in stored.values())
    assert f"and {expected} trace(s)" in r.stdout
    from results.web import pages

    for run_id in cluster.scaling_run_ids:
        (path,) = _recorded(stored[run_id])
        html = (site / "runs" / pages.run_file(run_id)).read_text()
        rel = f"../{pages.trace_file(run_id, path.name)}"
        assert f'href="{rel}"' in html
        copied = (site / "runs" / urllib.parse.unquote(rel)).resolve()
        assert copied.is_relative_to(site.resolve())
        assert copied.read_bytes() == path.read_bytes()
