"""The alpha-beta model: its cost formulas, the fit, predictions, and the CLI on a real MPI run."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from cluster.fabric_model import (
    PRESETS,
    Fabric,
    Point,
    coefficients,
    dp_efficiency,
    fit,
    predict_time,
    relative_errors,
)
from harness.errors import UserError


def test_ring_allreduce_cost_and_busbw_limit():
    f = Fabric("t", 2e-6, 10e9)
    p, m = 16, 1 << 30
    t = predict_time(f, "allreduce", "ring", p, m)
    assert t == pytest.approx(2 * 15 * 2e-6 + 2 * 15 / 16 * m / 10e9)
    busbw = m / t * 2 * (p - 1) / p
    assert busbw == pytest.approx(10e9, rel=0.01)  # large messages: bus bandwidth = link rate
    assert coefficients("p2p", "ring", 2, 100.0) == (1.0, 100.0)
    assert coefficients("allreduce", "tree", 1024, 8.0) == (20, 160.0)
    with pytest.raises(UserError):
        coefficients("scan", "ring", 4, 1.0)


def test_tree_wins_small_ring_wins_large():
    f = PRESETS["ndr"]
    assert predict_time(f, "allreduce", "tree", 1024, 8) < predict_time(f, "allreduce", "ring",
                                                                       1024, 8)
    assert predict_time(f, "allreduce", "ring", 1024, 1 << 30) < predict_time(
        f, "allreduce", "tree", 1024, 1 << 30)


@pytest.mark.parametrize("collective", ["p2p", "allreduce", "allgather"])
def test_fit_recovers_known_parameters(collective):
    truth = Fabric("truth", 3e-6, 5e9)
    rng = np.random.default_rng(0)
    pts = [Point(collective, 4, float(m),
                 predict_time(truth, collective, "ring", 4, m) * rng.lognormal(0, 0.02))
           for m in (2 ** np.arange(3, 27, 2))]
    got = fit(pts)
    assert got.alpha_s == pytest.approx(3e-6, rel=0.15)
    assert got.beta_bytes_per_s == pytest.approx(5e9, rel=0.05)
    assert got.fit["median_abs_rel_error"] < 0.05
    assert np.all(np.abs(relative_errors(got, pts)) < 0.1)


def test_fit_refuses_what_it_cannot_fit():
    with pytest.raises(UserError, match="at least two"):
        fit([Point("p2p", 2, 8.0, 1e-6)])
    with pytest.raises(UserError, match="no size dependence"):
        fit([Point("p2p", 2, 8.0, 2e-6), Point("p2p", 2, 1e6, 1e-6)])


def test_dp_efficiency_falls_with_nodes_and_rises_with_overlap():
    f = PRESETS["100gbe"]
    effs = [dp_efficiency(f, p, 1e9, 0.5) for p in (2, 64, 4096)]
    assert effs[0] > effs[1] > effs[2] > 0
    assert dp_efficiency(f, 64, 1e9, 0.5, overlap=0.9) > effs[1]
    assert dp_efficiency(f, 1, 1e9, 0.5) == 1.0


def test_cli_predict(bench, workdir):
    r = bench("fabric-model", "predict", "--fabric", "ndr", "--nodes", "8,1024,4096", "--size",
              "8B,1GiB", "--json")
    assert r.rc == 0, r.stderr
    rows = r.json()["rows"]
    assert len(rows) == 6
    big = [x for x in rows if x["size"] == 1 << 30]
    assert all(x["ring_busbw_gbps"] == pytest.approx(50, rel=0.2) for x in big)
    assert bench("fabric-model", "predict", "--fabric", "nope").rc == 2
    # its former name still works for scripts, and is not listed
    assert bench("model", "predict", "--fabric", "ndr", "--nodes", "8").rc == 0
    assert not any(ln.split()[:1] == ["model"] for ln in bench("--help").stdout.splitlines())
    assert bench("fabric-model", "predict", "--fabric", "ndr", "--nodes", "0").rc == 2
    assert bench("fabric-model", "predict", "--fabric", "ndr", "--size", "lots").rc == 2
    assert bench("fabric-model", "predict", "--fabric", "ndr", "--step-time", "1").rc == 2
    table = bench("fabric-model", "predict", "--fabric", "efa", "--gradient-bytes", "1GB",
                  "--step-time", "0.5")
    assert table.rc == 0 and "DP efficiency" in table.stdout and "nominal" in table.stderr


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="Open MPI is not installed")
def test_fit_a_real_mpi_p2p_sweep(bench, workdir):
    sweep = ["-w", "p2p", "-b", "mpi", "--launcher", "mpirun", "-n", "2", "--budget", "0.3",
             "-q", "--json"]
    fitted = bench("run", *sweep, "-p", "size=8B..4MiB*8")
    assert fitted.rc == 0, fitted.stderr[-2000:]
    held = bench("run", *sweep, "-p", "size=64B..2MiB*8")
    assert held.rc == 0, held.stderr[-2000:]
    r = bench("fabric-model", "fit", fitted.json()["run_id"], "--holdout", held.json()["run_id"],
              "-o", "mpi.json", "--json")
    assert r.rc == 0, r.stderr
    result = r.json()
    assert result["beta_gbps"] > 0.05 and result["alpha_us"] >= 0
    assert len(result["points"]) == 7  # 8 B, 64 B, ... 2 MiB
    assert math.isfinite(result["holdout"]["median_abs_rel_error"])
    fabric = json.loads((workdir / "mpi.json").read_text())
    assert fabric["source"] == "fit"
    pred = bench("fabric-model", "predict", "--fabric", "mpi.json", "--nodes", "2", "--size",
                 "1MiB", "--collective", "allreduce", "--json")
    assert pred.rc == 0 and pred.json()["fabric"]["source"] == "fit"
    no_points = bench("run", "-w", "spin", "-p", "us=10", "--budget", "0.1", "-q", "--json")
    bad = bench("fabric-model", "fit", no_points.json()["run_id"])
    assert bad.rc == 2 and "at least two" in bad.stderr
