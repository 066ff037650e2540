"""The peak catalogue, user peak files, pct_peak and arithmetic intensity, and the roofline."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from harness import peaks
from harness.errors import UserError
from harness.workmodel import Work


@pytest.mark.parametrize("name,key", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H200", "h200-sxm"),
    ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
    ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"),
    ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb"),
    ("AMD Instinct MI250X", "mi250x"),
    ("AMD Instinct MI300X", "mi300x"),
    ("TPU v4", "tpu-v4"),
    ("TPU v5 lite", "tpu-v5e"),
    ("TPU v5p", "tpu-v5p"),
])
def test_catalogue_lookup_takes_the_longest_match(name, key):
    found = peaks.lookup(name)
    assert found is not None and found[0] == key


def test_catalogue_figures_are_datasheet_shaped():
    devices = peaks.catalogue()
    assert {"a100-sxm4-80gb", "h100-sxm", "h200-sxm", "mi250x", "mi300x", "tpu-v4", "tpu-v5e",
            "tpu-v5p"} <= set(devices)
    for key, d in devices.items():
        assert d["memory_gbps"] > 0, key
        t = d["tflops"]
        assert t.get("bfloat16", 0) > 0, key
        if "float32" in t:  # half precision on matrix units is never slower than float32
            assert t["bfloat16"] >= t["float32"] >= t.get("float64", 0), key
    # H200 is an H100 with more, faster memory: same compute, 4.8 vs 3.35 TB/s.
    assert devices["h200-sxm"]["tflops"] == devices["h100-sxm"]["tflops"]
    assert devices["h200-sxm"]["memory_gbps"] > devices["h100-sxm"]["memory_gbps"]
    assert peaks.lookup("Intel(R) Xeon(R) Processor") is None


def test_user_peaks_file_adds_and_overrides(tmp_path, monkeypatch):
    user = tmp_path / "peaks.toml"
    user.write_text(textwrap.dedent("""
        [devices.my-fpga]
        name = "Alveo U280 (my bitstream)"
        match = ["xilinx_u280"]
        tflops = { float32 = 0.5 }
        memory_gbps = 460.0

        [devices.h200-sxm]
        name = "H200 NVL"
        match = ["H200"]
        tflops = { bfloat16 = 835.0 }
        memory_gbps = 4800.0
    """))
    monkeypatch.setenv(peaks.USER_ENV, str(user))
    key, entry = peaks.lookup("xilinx_u280_gen3x16_xdma_1_202211_1")
    assert key == "my-fpga" and entry["tflops"]["float32"] == 0.5
    assert peaks.lookup("NVIDIA H200")[1]["tflops"] == {"bfloat16": 835.0}
    user.write_text('[devices.bad]\nmatch = ["x"]\nmemory_gbps = "fast"\n')
    with pytest.raises(UserError, match=r"peaks.toml: \[devices.bad\]: memory_gbps"):
        peaks.catalogue()
    user.write_text('[devices.bad]\nname = "no match list"\n')
    with pytest.raises(UserError, match="needs match"):
        peaks.catalogue()


def test_peak_metrics_compare_flops_or_bandwidth():
    peak = {"flops_per_s": 100e9, "bytes_per_s": 50e9, "attainable_flops_per_s": 80e9,
            "attainable_bytes_per_s": 40e9}
    gemm = Work(flops=2e9, bytes=1e8)  # 2 GFLOP in 40 ms: 50 GFLOP/s
    assert peaks.peak_metrics(gemm, 0.04, peak) == pytest.approx(
        {"pct_peak": 50.0, "pct_attainable": 62.5, "roof_is_memory": 0.0,
         "peak_flops_per_s": 100e9, "peak_bytes_per_s": 50e9})
    stream = Work(items=1e6, bytes=24e6)  # no FLOPs: compared with bandwidth; 24 MB in 1 ms
    assert peaks.peak_metrics(stream, 1e-3, peak) == pytest.approx(
        {"pct_peak": 48.0, "pct_attainable": 60.0, "roof_is_memory": 1.0,
         "peak_flops_per_s": 100e9, "peak_bytes_per_s": 50e9})
    assert peaks.peak_metrics(Work(items=1), 1.0, peak) == {}
    assert peaks.peak_metrics(gemm, 0.04, {"flops_per_s": None}) == {}
    assert peaks.peak_metrics(gemm, 0.04, None) == {}


def test_host_backends_use_the_measured_attainable_peak(monkeypatch):
    from harness.backends.base import parse_backend

    monkeypatch.setattr(peaks, "_attainable", {"flops_per_s": {"float32": 200e9},
                                               "bytes_per_s": 40e9, "measured_at": 0})
    b = parse_backend("numpy:cpu")
    b.setup()
    p = peaks.for_backend(b, "float32")
    assert p["source"] == "measured" and p["flops_per_s"] == 200e9 and p["bytes_per_s"] == 40e9
    assert peaks.for_backend(b, "float16")["flops_per_s"] is None  # not measured: no pct_peak


@pytest.mark.parametrize("load,cached", [(0.1, True), (3.0, False)])
def test_attainable_peaks_are_cached_only_from_a_quiet_machine(monkeypatch, tmp_path, load,
                                                               cached):
    monkeypatch.setenv(peaks.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(peaks, "_attainable", None)
    monkeypatch.setattr(peaks, "measure_cpu", lambda: {"flops_per_s": {"float32": 1e9},
                                                       "bytes_per_s": 1e9, "measured_at": 1e12})
    monkeypatch.setattr(peaks.os, "getloadavg", lambda: (load * 2, 0.0, 0.0))
    monkeypatch.setattr(peaks.os, "sched_getaffinity", lambda _pid: {0, 1})
    got = peaks.attainable_cpu()
    assert got["load_per_core"] == pytest.approx(load)
    assert bool(list(tmp_path.glob("attainable-*.json"))) == cached


def test_arithmetic_intensity_in_derived_metrics():
    from harness.stats import summarize
    from harness.workmodel import derive_metrics

    m = derive_metrics(summarize([0.5] * 10), Work(flops=8e9, bytes=2e9))
    assert m["arithmetic_intensity_flop_per_byte"] == 4.0 and m["flops_per_s"] == 16e9
    assert "arithmetic_intensity_flop_per_byte" not in derive_metrics(
        summarize([0.5] * 10), Work(bytes=2e9))


def test_compute_measurements_get_pct_peak(bench):
    from harness.workload import Workload

    if not hasattr(Workload, "extra_metrics"):
        pytest.skip("this tree's runner has no Workload.extra_metrics hook yet")
    res = bench("run", "-w", "gemm", "-p", "m=128", "-p", "n=128", "-p", "k=128",
                "--budget", "0.2", "-q", "--json")
    assert res.rc == 0, res.stderr
    (m,) = res.json()["measurements"]
    peak = m["info"]["peak"]
    assert peak["source"] in ("measured",) or peak["source"].startswith("catalogue:")
    # against the roofline's roof at its intensity: compute, or memory where the ridge of this
    # machine's measured peaks lies above it (it does on some machines, at some loads)
    kind = "bytes_per_s" if m["metrics"]["roof_is_memory"] else "flops_per_s"
    assert m["metrics"]["pct_peak"] == pytest.approx(100 * m["metrics"][kind] / peak[kind])
    assert m["metrics"]["arithmetic_intensity_flop_per_byte"] == pytest.approx(
        2 * 128**3 / (3 * 128 * 128 * 4))


# -- roofline ------------------------------------------------------------------------------------


def frame() -> pd.DataFrame:
    rows = []
    for backend, peak_f, peak_b in [("torch:cuda", 67e12, 4.8e12), ("numpy:cpu", 3e11, 5e10)]:
        for ai, eff in [(4.0, 0.5), (64.0, 0.3), (300.0, 0.8)]:
            f = min(peak_f, ai * peak_b) * eff
            rows.append({"workload": "gemm", "backend": backend, "status": "ok",
                         "flops_per_s": f, "bytes_per_s": f / ai,
                         "arithmetic_intensity_flop_per_byte": ai,
                         "pct_peak": 100 * f / peak_f})
        rows.append({"workload": "stream", "backend": backend, "status": "ok",
                     "flops_per_s": None, "bytes_per_s": 0.9 * peak_b,
                     "arithmetic_intensity_flop_per_byte": None, "pct_peak": 90.0})
    rows.append({"workload": "gemm", "backend": "numpy:cpu", "status": "failed"})
    return pd.DataFrame(rows)


def test_roofs_recover_the_stored_peaks():
    from results.report.roofline import roofs

    r = roofs(frame())
    assert r["peak (torch:cuda)"] == pytest.approx((67e12, 4.8e12))
    assert r["peak (numpy:cpu)"] == pytest.approx((3e11, 5e10))
    best_f, best_b = r["attained in these runs"]
    assert best_b == pytest.approx(0.9 * 4.8e12)
    assert best_f == pytest.approx(67e12 * 0.8)


def test_plot_roofline_writes_a_png(tmp_path):
    from results.report.roofline import plot_roofline

    out = plot_roofline(frame(), tmp_path / "r.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]  # no temporary left behind
    with pytest.raises(UserError, match="no measurement with FLOPs"):
        plot_roofline(frame()[frame()["workload"] == "stream"], tmp_path / "s.png")
    with pytest.raises(UserError, match="does not exist"):
        plot_roofline(frame(), tmp_path / "nope" / "r.png")


def test_bench_report_roofline(bench, workdir):
    res = bench("run", "-w", "gemm", "-b", "numpy:cpu", "-p", "m=64,256", "-p", "n=256", "-p",
                "k=256", "--budget", "0.2", "-q")
    assert res.rc == 0, res.stderr
    res = bench("report", "roofline", "latest", "-o", "roof.png")
    assert res.rc == 0, res.stderr
    assert (workdir / "roof.png").read_bytes()[:4] == b"\x89PNG"
    res = bench("report", "roofline", "latest", "-o", "roof.md")  # not an image format
    assert res.rc == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "roof.md" in res.stderr and ".png" in res.stderr and ".svg" in res.stderr
    assert "Traceback" not in res.stderr and not (workdir / "roof.md").exists()


def test_plot_roofline_names_the_image_formats(tmp_path):
    from results.report.roofline import plot_roofline

    with pytest.raises(UserError, match=r"\.md is not an image format; use one of .*\.png"):
        plot_roofline(frame(), tmp_path / "r.md")
    assert list(tmp_path.iterdir()) == []


# -- the right roof, and a working set in cache --------------------------------------------------


def test_stream_declares_its_flops_and_is_held_against_bandwidth():
    from harness.stats import summarize
    from harness.workmodel import derive_metrics
    from workloads.stream import Stream

    work = Stream().work({"n": 1_000_000, "op": "triad", "dtype": "float64"})
    assert work.flops == 2e6 and work.bytes == 24e6  # a multiply and an add per element
    m = derive_metrics(summarize([1e-3] * 10), work)
    assert m["arithmetic_intensity_flop_per_byte"] == pytest.approx(2 / 24)
    peak = {"flops_per_s": 100e9, "bytes_per_s": 50e9}
    # below the ridge (2 FLOP/B): the memory roof, not 2 % of peak FLOP/s
    got = peaks.peak_metrics(work, 1e-3, peak)
    assert got["pct_peak"] == pytest.approx(48.0) and got["roof_is_memory"] == 1.0
    small_gemm = Work(flops=2e6, bytes=2e6)  # 1 FLOP/B: memory-bound too
    assert peaks.peak_metrics(small_gemm, 1e-3, peak)["roof_is_memory"] == 1.0


CACHES = [{"level": 1, "type": "Data", "size_bytes": 48 << 10, "shared_cpus": 1,
           "usable_bytes": 96 << 10},
          {"level": 2, "type": "Unified", "size_bytes": 1 << 20, "shared_cpus": 1,
           "usable_bytes": 2 << 20},
          {"level": 3, "type": "Unified", "size_bytes": 32 << 20, "shared_cpus": 2,
           "usable_bytes": 32 << 20}]


def test_a_working_set_in_cache_says_which_cache():
    peak = {"flops_per_s": 100e9, "bytes_per_s": 40e9, "caches": CACHES}
    in_l3 = Work(items=1e6, flops=2e6, bytes=24e6)  # 24 MB: fits the 32 MiB L3
    got = peaks.peak_metrics(in_l3, 24e6 / 106e9, peak)
    assert got["pct_peak"] == pytest.approx(265.0)
    assert got["cache_level"] == 3 and got["working_set_bytes"] == 24e6
    assert got["cache_bytes"] == 32 << 20
    assert peaks.peak_metrics(Work(bytes=1e6), 1e-4, peak)["cache_level"] == 2
    in_dram = Work(items=1 << 24, flops=2 * 2**24, bytes=24 * 2**24)  # 400 MB
    assert "cache_level" not in peaks.peak_metrics(in_dram, 0.02, peak)
    gemm = Work(flops=2e9, bytes=1e6)  # compute-bound: caches do not matter
    assert "cache_level" not in peaks.peak_metrics(gemm, 0.04, peak)


def test_cpu_caches_read_from_sysfs(tmp_path):
    from harness.env import cpu_caches

    for i, (level, kind, size, shared) in enumerate([(1, "Data", "48K", "0"),
                                                     (1, "Instruction", "32K", "0"),
                                                     (2, "Unified", "1024K", "0"),
                                                     (3, "Unified", "32768K", "0-1,4")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size),
                            ("shared_cpu_list", shared)):
            (d / name).write_text(f"{value}\n")
    assert cpu_caches(str(tmp_path)) == [
        {"level": 1, "type": "Data", "size_bytes": 48 << 10, "shared_cpus": 1},
        {"level": 2, "type": "Unified", "size_bytes": 1 << 20, "shared_cpus": 1},
        {"level": 3, "type": "Unified", "size_bytes": 32 << 20, "shared_cpus": 3}]
    assert cpu_caches(str(tmp_path / "none")) == []


def test_show_says_why_a_figure_beats_its_peak():
    from harness.measurement import Measurement
    from results.report.table import info_lines

    row = {"case_key": "stream[torch:cpu](n=1000000)", "workload": "stream",
           "backend": "torch:cpu", "params": {"n": 1000000}, "status": "ok",
           "summary": {"median": 1e-4}, "timing": {},
           "metrics": {"pct_peak": 265.0, "roof_is_memory": 1.0, "cache_level": 3.0,
                       "working_set_bytes": 24e6, "cache_bytes": float(32 << 20)}}
    (line,) = info_lines([Measurement.from_dict(row)])
    assert "265% of peak memory bandwidth" in line and "fits in the L3 cache" in line


def _cache_resident_run(tmp_path, make_header, make_measurement):
    """A store holding one stream measurement at 264.7% of DRAM bandwidth, its working set
    in L3, beside a gemm one at 50% (nothing to explain)."""
    from results.runfile import RunFileWriter, read_run_file
    from results.store import Store

    st = Store(str(tmp_path / "bench.db"))
    stream = make_measurement()
    stream.update(case_key="stream[torch:cpu](n=1000000)", workload="stream",
                  backend="torch:cpu", params={"n": 1000000},
                  metrics={"bytes_per_s": 1.06e11, "pct_peak": 264.7, "roof_is_memory": 1.0,
                           "cache_level": 3.0, "working_set_bytes": 24e6,
                           "cache_bytes": float(32 << 20)},
                  info={"peak": {"source": "measured"}})
    gemm = make_measurement()
    gemm.update(case_key="gemm[torch:cpu](m=64)", workload="gemm", backend="torch:cpu",
                params={"m": 64}, metrics={"flops_per_s": 5e10, "pct_peak": 50.0,
                                           "roof_is_memory": 0.0})
    header = make_header()
    w = RunFileWriter(tmp_path / "runs", header)
    for m in (stream, gemm):
        w.append(m)
    st.ingest(read_run_file(w.finish("complete", "2024-01-01T00:00:09+00:00")))
    return st, header["run_id"], peaks.peak_note(stream["metrics"], stream["info"])


def test_html_report_marks_a_cache_figure_beyond_the_peak(tmp_path, make_header,
                                                          make_measurement):
    """The report's % of peak column says what `bench show` says of a figure above 100%."""
    import html as html_lib

    from results.report import html

    st, run_id, note = _cache_resident_run(tmp_path, make_header, make_measurement)
    assert note is not None and "fits in the L3 cache" in note
    out = tmp_path / "report.html"
    html.render(st, [run_id], out)
    text = out.read_text()
    assert f"title='{html_lib.escape(note)}'>264.7% {html.PEAK_MARK}</td>" in text
    assert f"{html.PEAK_MARK} stream[torch:cpu](n=1000000): {html_lib.escape(note)}" in text
    assert ">50.0%</td>" in text and text.count(html.PEAK_MARK) == 2  # gemm: no mark


def test_serve_run_page_marks_a_cache_figure_beyond_the_peak(tmp_path, make_header,
                                                             make_measurement):
    """`bench serve`'s run page (and the API behind it) carry the same note."""
    pytest.importorskip("jinja2")
    from markupsafe import escape

    from results.web import pages, views

    st, run_id, note = _cache_resident_run(tmp_path, make_header, make_measurement)
    data = views.run_view(st, run_id)
    by_case = {m["case_key"]: m["peak_note"] for m in data["measurements"]}
    assert by_case == {"stream[torch:cpu](n=1000000)": note, "gemm[torch:cpu](m=64)": None}
    page = pages.render("run.html", pages.Links(), store="test", **data)
    escaped = str(escape(note))
    assert f'264.7% <abbr class="peak-mark" title="{escaped}">‡</abbr>' in page
    assert f"‡ stream[torch:cpu](n=1000000): {escaped}</p>" in page
    assert page.count("‡") == 2


def test_html_report_draws_the_same_roofline_with_the_peak_roof(tmp_path, monkeypatch):
    """The HTML report's roofline is `bench report roofline`'s: under the device's peak roof
    (not a roof through the best measured points)."""
    from click.testing import CliRunner

    from harness.cli import cli
    from results.report import html
    from results.store import Store

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "-w", "gemm", "-b", "numpy:cpu", "-p", "m=64,256",
                                   "-p", "n=256", "-p", "k=256", "--budget", "0.2", "-q"])
    assert res.exit_code == 0, res.output
    figures = {}
    real = html.Page.figure

    def keep(self, fig, name, caption=""):
        figures[name] = fig
        return real(self, fig, name, caption)

    monkeypatch.setattr(html.Page, "figure", keep)
    st = Store("bench.db")
    run_id = st.resolve("latest")
    html.render(st, [run_id], tmp_path / "r.html")
    (ax,) = figures["roofline"].axes
    labels = [line.get_label() for line in ax.get_lines()]
    peak = next(m.metrics for m in st.measurements([run_id]))["peak_flops_per_s"]
    (roof,) = [line for line in ax.get_lines() if line.get_label().startswith("peak (numpy:cpu)")]
    assert max(roof.get_ydata()) == pytest.approx(peak / 1e9), labels
