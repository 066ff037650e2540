"""`bench report`: a self-contained HTML page with plots, checked in a real headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)")


def screenshot(page: Path, out: Path, tmp: Path) -> str:
    """Load the page in headless Chromium, save a screenshot, return its log (console included)."""
    profile = tmp / "chromium-profile"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,2400",
         "--enable-logging=stderr", "--v=0", f"--screenshot={out}", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert out.is_file(), proc.stderr[-2000:]
    return proc.stderr


def colour_pixels(png: Path, rgb: tuple[int, int, int], tol: int = 40) -> int:
    from matplotlib.image import imread

    img = imread(png)[..., :3]
    img = (img * 255).astype(int) if img.dtype != np.uint8 else img.astype(int)
    return int((np.abs(img - np.array(rgb)).max(axis=-1) <= tol).sum())


@pytest.fixture
def two_runs(bench):
    ids = []
    for tag in ("a", "<script>alert(1)</script>"):
        r = bench("run", "-w", "spin", "-p", "us=20,100", "--budget", "0.3", "-q", "--json",
                  "--tag", f"note={tag}")
        assert r.rc == 0, r.stderr
        ids.append(r.json()["run_id"])
    return ids


def test_report_is_self_contained_and_escaped(bench, two_runs, workdir):
    r = bench("report", "latest~1", "latest", "-o", "report.html", "--plots", "plots")
    assert r.rc == 0, r.stderr
    page = (workdir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 3  # two latency plots and a history plot
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for needle in ("http://", "https://"):  # nothing fetched from the network
        assert f'src="{needle}' not in page and f"href='{needle}" not in page
    pngs = sorted((workdir / "plots").glob("*.png"))
    svgs = sorted((workdir / "plots").glob("*.svg"))
    assert len(pngs) == len(svgs) >= 3
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_bad_input(bench, two_runs):
    assert bench("report", "nope", "-o", "x.html").rc == 2
    assert bench("report", "latest", "-o", "no/such/dir/x.html").rc == 2
    r = bench("report", "html", "-o", "x.html")
    assert r.rc == 2 and "at least one RUN" in r.stderr


@needs_chromium
def test_report_renders_in_chromium_without_console_errors(bench, two_runs, workdir, tmp_path):
    assert bench("report", "latest~1", "latest", "-o", "report.html").rc == 0
    shot = tmp_path / "report.png"
    log = screenshot(workdir / "report.html", shot, tmp_path)
    console = [ln for ln in log.splitlines() if "CONSOLE" in ln]
    assert console == []
    # The plots are drawn: matplotlib's default blue (violins, history line) covers many
    # pixels of the screenshot, and the page is not blank.
    assert colour_pixels(shot, (31, 119, 180)) > 500
    assert colour_pixels(shot, (255, 255, 255), tol=5) < 0.97 * 1280 * 2400


@needs_chromium
def test_chromium_check_sees_console_errors(tmp_path):
    """The console check above can fail: a page with a script error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction();</script>x</body></html>")
    log = screenshot(bad, tmp_path / "bad.png", tmp_path)
    assert any("CONSOLE" in ln and "undefinedFunction" in ln for ln in log.splitlines())


@needs_chromium
def test_compare_html_in_chromium(bench, two_runs, workdir, tmp_path):
    assert bench("compare", "latest~1", "latest", "--format", "html", "-o", "cmp.html").rc == 0
    log = screenshot(workdir / "cmp.html", tmp_path / "cmp.png", tmp_path)
    assert [ln for ln in log.splitlines() if "CONSOLE" in ln] == []
    assert colour_pixels(tmp_path / "cmp.png", (127, 127, 127), tol=20) > 50  # the forest plot


def test_results_table_marks_cases_timed_in_steady_state_blocks():
    from rich.console import Console

    from harness.measurement import Measurement
    from results.report.table import measurements_table

    summary = {"n": 50, "median": 6e-6, "ci_low": 5.9e-6, "ci_high": 6.1e-6, "p5": 5e-6,
               "p95": 7e-6}
    row = {"case_key": "gemm", "workload": "gemm", "backend": "torch:cpu", "params": {"m": 64},
           "status": "ok", "summary": summary, "metrics": {}, "work": {}}
    rows = [Measurement.from_dict(r) for r in (
        {**row, "timing": {"block_rule": "steady_state", "single_call_s": 4.6e-6}},
        {**row, "params": {"m": 512}, "timing": {"block_rule": "overhead"}})]
    console = Console(width=200, record=True)
    console.print(measurements_table(rows))
    text = console.export_text()
    assert "6 µs † (singly 4.6 µs)" in text
    assert text.count("†") == 2  # the marked row and the caption that explains it
    console = Console(width=200, record=True)
    console.print(measurements_table(rows[1:]))
    assert "†" not in console.export_text()


def test_report_scaling_refuses_collective_runs(tmp_path, make_header, make_measurement):
    """A collective at 2 ranks does not do twice the work of 1: no throughput efficiency."""
    from harness.errors import UserError
    from results.report.scaling import scaling_rows
    from results.runfile import RunFileWriter, read_run_file
    from results.store import Store

    st = Store(str(tmp_path / "bench.db"))
    ids = []
    for i, (ranks, ops_per_s) in enumerate(((1, 1e5), (2, 2.67e5))):
        coll = make_measurement()
        coll.update(case_key="allreduce[mpi:cpu](size=8)", workload="allreduce",
                    backend="mpi:cpu", params={"size": 8},
                    metrics={"items_per_s": ops_per_s, "ranks": float(ranks)})
        spin = make_measurement()
        spin["metrics"] = {"items_per_s": 1e4 * ranks, "world_size": float(ranks)}
        header = make_header(started_at=f"2024-01-01T00:00:0{i}.000000+00:00")
        w = RunFileWriter(tmp_path / "runs", header)
        for m in (coll, spin):
            w.append(m)
        st.ingest(read_run_file(w.finish("complete", "2024-01-01T00:00:09+00:00")))
        ids.append(header["run_id"])
    rows = scaling_rows(st, ids)  # the collective is left out, the spin case is kept
    assert [(r["case"], r["ranks"]) for r in rows] == [("spin[numpy:cpu](us=100.0)", 1),
                                                       ("spin[numpy:cpu](us=100.0)", 2)]
    assert rows[1]["efficiency"] == pytest.approx(1.0)
    with st.engine.begin() as conn:
        import sqlalchemy as sa

        from results import schema

        conn.execute(sa.delete(schema.samples))
        conn.execute(sa.delete(schema.measurements).where(
            schema.measurements.c.case_key.like("spin%")))
    with pytest.raises(UserError, match="only collective measurements"):
        scaling_rows(st, ids)


def test_report_scaling_writes_text_through_the_shared_formats(workdir, bench_inproc,
                                                               make_header, make_measurement):
    """`bench report scaling -o F.md|F.txt|F.json`: the format the name says, written by the one
    output-format registry (harness.cli.render), said once."""
    from results.runfile import RunFileWriter, read_run_file
    from results.store import Store

    st = Store(str(workdir / "bench.db"))
    ids = []
    for i, ranks in enumerate((1, 2)):
        spin = make_measurement()
        spin["metrics"] = {"items_per_s": 1e4 * ranks, "world_size": float(ranks)}
        header = make_header(started_at=f"2024-01-01T00:00:0{i}.000000+00:00")
        w = RunFileWriter(workdir / "runs", header)
        w.append(spin)
        st.ingest(read_run_file(w.finish("complete", "2024-01-01T00:00:09+00:00")))
        ids.append(header["run_id"])
    for name in ("s.md", "s.txt"):
        res = bench_inproc("report", "scaling", *ids, "-o", name)
        assert res.rc == 0, res.stderr
        assert res.stderr.count("wrote") == 1
        text = (workdir / name).read_text()
        assert text.startswith("| case | ranks | step s |")
        assert "| spin[numpy:cpu](us=100.0) | 2 |" in text
    res = bench_inproc("report", "scaling", *ids, "-o", "s.json")
    assert res.rc == 0 and res.stderr.count("wrote") == 1
    rows = json.loads((workdir / "s.json").read_text())
    assert [r["ranks"] for r in rows] == [1, 2]
    assert rows[1]["efficiency"] == pytest.approx(1.0)
