"""Collectives without processes: bus-bandwidth factors, the expected results the check uses
(against an independent per-rank simulation), metrics, size sweeps, bad input, nccl-tests text."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UserError
from harness.sweep import expand_sweep
from results.report.collectives import nccl_tests_text, sweeps
from workloads.collectives import (
    P2P,
    AllGather,
    AllReduce,
    AllToAll,
    Broadcast,
    Reduce,
    ReduceScatter,
    bus_factor,
    expected,
    inputs_of,
)


@pytest.mark.parametrize("n,allreduce,split", [(2, 1.0, 0.5), (4, 1.5, 0.75), (8, 1.75, 0.875)])
def test_bus_factors_are_nccl_tests(n, allreduce, split):
    assert bus_factor("allreduce", n) == pytest.approx(allreduce)
    for coll in ("allgather", "reduce-scatter", "alltoall"):
        assert bus_factor(coll, n) == pytest.approx(split)
    for coll in ("broadcast", "reduce", "p2p"):
        assert bus_factor(coll, n) == 1.0


def _simulate(coll: str, n: int, count: int, p: dict) -> list[np.ndarray | None]:
    """What each rank holds after the operation, computed rank by rank from the definition."""
    dtype, op = p["dtype"], p.get("op", "sum")
    fn = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}[op]
    c = count // n
    if coll == "allgather":
        ins = [inputs_of(r, c, dtype, op) for r in range(n)]
    else:
        ins = [inputs_of(r, count, dtype, op) for r in range(n)]
    full = fn(np.stack(ins), axis=0).astype(dtype)
    out: list[np.ndarray | None] = []
    for r in range(n):
        if coll == "allreduce":
            out.append(full)
        elif coll == "reduce":
            out.append(full if r == p["root"] else None)
        elif coll == "broadcast":
            out.append(ins[p["root"]])
        elif coll == "allgather":
            out.append(np.array([ins[j][i] for j in range(n) for i in range(c)], dtype))
        elif coll == "reduce-scatter":
            out.append(full[r * c:(r + 1) * c])
        elif coll == "alltoall":
            out.append(np.array([ins[j][r * c + i] for j in range(n) for i in range(c)], dtype))
    return out


@pytest.mark.parametrize("coll", ["allreduce", "reduce", "broadcast", "allgather",
                                  "reduce-scatter", "alltoall"])
@pytest.mark.parametrize("op", ["sum", "prod", "max", "min"])
def test_expected_matches_rank_by_rank_simulation(coll, op):
    n, count = 3, 12
    p = {"dtype": "float32", "op": op, "root": 1}
    for r, want in enumerate(_simulate(coll, n, count, p)):
        got = expected(coll, r, n, count, p)
        if want is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, want)


def test_inputs_differ_by_rank_and_reductions_are_exact():
    a, b = inputs_of(0, 64, "float32", "sum"), inputs_of(1, 64, "float32", "sum")
    assert not np.array_equal(a, b)  # else a broadcast from the wrong root would pass
    assert np.all(a == np.round(a))
    # 24 ranks of products of 1s and 2s stay exact in float32
    prod = expected("allreduce", 0, 24, 8, {"dtype": "float32", "op": "prod"})
    assert prod is not None and np.all(prod == np.round(prod)) and prod.max() <= 2**24


def test_p2p_expectations():
    p = {"dtype": "int32", "mode": "pingpong"}
    np.testing.assert_array_equal(expected("p2p", 0, 2, 4, p), inputs_of(1, 4, "int32", "sum"))
    np.testing.assert_array_equal(expected("p2p", 1, 2, 4, p), inputs_of(0, 4, "int32", "sum"))
    assert expected("p2p", 0, 2, 4, {**p, "mode": "uni"}) is None
    assert expected("p2p", 2, 3, 4, p) is None


def test_metrics_follow_factors():
    info = {"ranks": 4, "size_bytes": 1_000_000, "count": 250_000}
    m = AllReduce().extra_metrics({"size": 1_000_000}, 1e-3, info)
    assert m["time_s"] == 1e-3 and m["algbw_gbps"] == pytest.approx(1.0)
    assert m["busbw_gbps"] == pytest.approx(1.5)
    assert "wrong" not in m  # not checked: nccl-tests prints N/A
    m = AllGather().extra_metrics({}, 1e-3, {**info, "wrong": 0})
    assert m["busbw_gbps"] == pytest.approx(0.75) and m["wrong"] == 0
    ping = P2P().extra_metrics({"mode": "pingpong"}, 2e-3, {**info, "ranks": 2})
    assert ping["time_s"] == 1e-3  # half the round trip
    bi = P2P().extra_metrics({"mode": "bi"}, 1e-3, {**info, "ranks": 2})
    assert bi["algbw_gbps"] == pytest.approx(2.0)


def test_each_collective_has_its_own_parameters():
    assert set(AllReduce.params) == {"size", "dtype", "op", "in_place"}
    assert set(Reduce.params) == {"size", "dtype", "op", "in_place", "root"}
    assert set(Broadcast.params) == {"size", "dtype", "root"}
    assert set(ReduceScatter.params) == {"size", "dtype", "op"}
    assert set(AllToAll.params) == {"size", "dtype"}
    assert set(P2P.params) == {"size", "dtype", "mode"}


def test_validate_refuses_partial_elements_and_unsupported_ops():
    with pytest.raises(UserError, match="not a whole number of float64 elements"):
        AllReduce().validate({"size": 12, "dtype": "float64"}, "mpi:cpu")
    with pytest.raises(UserError, match="backend 'grpc' has no broadcast"):
        Broadcast().validate({"size": 8, "dtype": "float32"}, "grpc:cpu")
    AllReduce().validate({"size": 8, "dtype": "float32"}, "grpc:cpu")


@pytest.mark.parametrize("text,want", [
    ("8B..1KiB*4", [8, 32, 128, 512]),
    ("8..64", [8, 16, 32, 64]),
    ("0..1024+256", [0, 256, 512, 768, 1024]),
    ("1MiB..1MiB*2", [1 << 20]),
    ("4096", [4096]),
])
def test_sweeps(text, want):
    assert [int(x) for x in expand_sweep(text)] == want


@pytest.mark.parametrize("text,match", [
    ("64..8*2", "ends before it starts"),
    ("8..64*1", "never ends"),
    ("0..64*2", "never ends"),
    ("8..64*x", "not a number"),
    ("8..64Q*2", "not a size"),
    ("1..1TiB+1", "more than"),
])
def test_bad_sweeps(text, match):
    with pytest.raises(UserError, match=match):
        expand_sweep(text, "-p size")


def test_nccl_tests_text_has_nccl_columns():
    rows = []
    for size in (8, 1024):
        for in_place in (False, True):
            rows.append({"workload": "allreduce", "backend": "mpi:cpu", "status": "ok",
                         "params": {"size": size, "dtype": "float32", "op": "sum",
                                    "in_place": in_place},
                         "metrics": {"time_s": 1e-6 * size, "algbw_gbps": 1.0,
                                     "busbw_gbps": 1.0, "wrong": 0, "ranks": 2,
                                     "size_bytes": size, "count": size // 4}})
    rows.append({"workload": "spin", "backend": "numpy:cpu", "status": "ok", "params": {}})
    assert len(sweeps(rows)) == 1
    text = nccl_tests_text(rows, ["abc"])
    data = [ln.split() for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert [d[0] for d in data] == ["8", "1024"]
    assert all(len(d) == 13 for d in data)
    assert data[1][1:5] == ["256", "float", "sum", "-1"]
    assert data[1][5] == "1024.00" and data[1][8] == "0"
    assert "# Avg bus bandwidth    : 1" in text


def test_collectives_suite_plans_every_operation():
    from harness.config import load_suite

    name, planned = load_suite("collectives")
    assert name == "collectives"
    workloads = {p.case.workload for p in planned}
    assert workloads == {"allreduce", "allgather", "reduce-scatter", "broadcast", "reduce",
                         "alltoall", "p2p"}
    assert {p.case.backend for p in planned} == {"mpi:cpu"}
    assert len(planned) == 6 * 5 + 2 * 5
