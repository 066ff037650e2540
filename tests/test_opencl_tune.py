"""The OpenCL tuner (kernels/opencl/tune.py): a candidate that computes a wrong result is never
chosen, however fast; the per-device cache is hit the second time and missed once the kernel's
source changes; the search strategies under a budget (a scripted clock and scripted timings);
`bench run` takes the cached parameters and records where they came from."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import UserError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pyopencl") is None,
                                reason="pyopencl is not installed")

# Doubles x into y, WPI elements per work-item. BUG=1 is the candidate made wrong on purpose:
# it returns at once (the fastest kernel there is) and leaves y as it was.
SOURCE = """
#ifndef WPI
#define WPI 1
#endif
#ifndef BUG
#define BUG 0
#endif
__kernel void twice(const int n, __global const float *restrict x, __global float *restrict y)
{
    if (BUG)
        return;
    const int first = get_global_id(0) * WPI;
    for (int e = 0; e < WPI; ++e)
        if (first + e < n)
            y[first + e] = 2.0f * x[first + e];
}
"""

_backend: list[Any] = []


def opencl() -> Any:
    if not _backend:
        from harness.backends.base import parse_backend

        b = parse_backend("opencl:pocl")
        reason = b.unusable_reason()
        if reason:
            pytest.skip(f"opencl:pocl is not usable here: {reason}")
        b.setup()
        _backend.append(b)
    return _backend[0]


def twice_variant(path: Path) -> Any:
    from kernels.opencl.build import Space, Variant

    return Variant("twice", str(path), ("twice",), {"WPI": 1, "BUG": 0},
                   space=Space({"WPI": (1, 4, 16), "BUG": (0, 1)}))


class Twice:
    """make(params) -> Trial for the `twice` kernel, counting the candidates it was asked for."""

    def __init__(self, backend: Any, variant: Any, n: int = 1 << 16) -> None:
        import pyopencl as cl

        self.backend, self.variant, self.n, self.made = backend, variant, n, []
        self.x = np.arange(n, dtype=np.float32)
        mf = cl.mem_flags
        self.xb = cl.Buffer(backend.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=self.x)
        self.yb = cl.Buffer(backend.context, mf.READ_WRITE, self.x.nbytes)

    def __call__(self, params: dict[str, Any]) -> Any:
        import pyopencl as cl

        from harness.errors import CheckFailed
        from kernels.opencl.build import build
        from kernels.opencl.tune import Trial

        self.made.append(dict(params))
        opts = " ".join(f"-D{k}={v}" for k, v in params.items())
        kern = build(self.backend, self.variant, "float32", opts).kernel("twice")
        kern.set_args(np.int32(self.n), self.xb, self.yb)
        items = -(-self.n // params["WPI"])
        wg = params.get("WG")  # a work-group size, where the variant declares one
        grid, local = ((-(-items // wg) * wg,), (wg,)) if wg else ((items,), None)
        q = self.backend.queue

        def op() -> None:
            cl.enqueue_nd_range_kernel(q, kern, grid, local)

        def check() -> None:
            # a fresh output each time: a wrong candidate cannot pass on an earlier one's result
            cl.enqueue_copy(q, self.yb, np.full(self.n, -1.0, dtype=np.float32))
            op()
            got = np.empty_like(self.x)
            cl.enqueue_copy(q, got, self.yb)
            if not np.array_equal(got, 2 * self.x):
                raise CheckFailed(f"{int(np.count_nonzero(got != 2 * self.x))} wrong")

        return Trial(op, self.backend, check)


def run_tune(variant: Any, make: Any, cache_file: Path, **kw: Any) -> Any:
    from kernels.opencl.build import DeviceFacts
    from kernels.opencl.tune import TuneCache, make_key, tune

    b = make.backend
    facts = DeviceFacts.of(b.cl_device)
    key = make_key(facts, variant, "twice", "float32", "n~65536")
    return tune(key, variant, facts, "float32", make, budget_s=kw.pop("budget_s", 30.0),
                cache=TuneCache(cache_file), **kw)


def test_a_wrong_candidate_is_never_chosen(tmp_path):
    src = tmp_path / "twice.cl"
    src.write_text(SOURCE)
    variant = twice_variant(src)
    make = Twice(opencl(), variant)
    result = run_tune(variant, make, tmp_path / "cache.json")
    assert result.strategy == "exhaustive" and result.complete and not result.from_cache
    assert len(make.made) == 6  # every legal candidate, each once
    assert result.best.params["BUG"] == 0
    wrong = [c for c in result.candidates if c.params["BUG"] == 1]
    assert len(wrong) == 3
    assert all(not c.ok and c.seconds is None and "wrong result" in (c.error or "")
               for c in wrong)
    # the right ones pass their check (one may still be set aside as too slow to time)
    assert all("wrong" not in (c.error or "") for c in result.candidates if c.params["BUG"] == 0)
    assert all(c.params["BUG"] == 0 for c in result.ranked() if c.ok)
    stored = json.loads((tmp_path / "cache.json").read_text())
    (entry,) = stored["entries"].values()
    assert entry["params"]["BUG"] == 0
    assert all(t["params"]["BUG"] == 0 for t in entry["top"])


def test_cache_is_hit_the_second_time_and_missed_after_a_source_change(tmp_path):
    src = tmp_path / "twice.cl"
    src.write_text(SOURCE)
    variant = twice_variant(src)
    cache = tmp_path / "cache.json"
    first = run_tune(variant, Twice(opencl(), variant), cache)
    assert not first.from_cache

    again = Twice(opencl(), variant)
    second = run_tune(variant, again, cache)
    assert second.from_cache and again.made == []  # no candidate built, run or timed
    assert second.best.params == first.best.params
    assert second.key == first.key

    src.write_text(SOURCE + "\n// a change to the source\n")
    changed = Twice(opencl(), variant)
    third = run_tune(variant, changed, cache)
    assert not third.from_cache and len(changed.made) == 6
    assert third.key.source_hash != first.key.source_hash
    assert third.best.params["BUG"] == 0
    assert len(json.loads(cache.read_text())["entries"]) == 2  # the old key's entry is inert


def test_no_candidate_passes(tmp_path):
    from kernels.opencl.build import Space, Variant

    src = tmp_path / "twice.cl"
    src.write_text(SOURCE)
    variant = Variant("twice", str(src), ("twice",), {"WPI": 1, "BUG": 1},
                      space=Space({"WPI": (1, 4), "BUG": (1,)}))
    with pytest.raises(UserError, match=r"no candidate of 'twice' passed its check.*wrong"):
        run_tune(variant, Twice(opencl(), variant), tmp_path / "cache.json")
    assert not (tmp_path / "cache.json").exists()


def test_an_unreadable_cache_counts_as_empty(tmp_path):
    from kernels.opencl.tune import TuneCache, TuneKey

    path = tmp_path / "cache.json"
    path.write_text("{not json")
    key = TuneKey("p", "d", "1.0", "k.cl:v:k", "abc", "float32", "n~1")
    cache = TuneCache(path)
    assert cache.get(key) is None
    cache.put(key, {"params": {"A": 1}, "seconds": 1.0})
    assert cache.get(key)["params"] == {"A": 1}
    assert cache.get(TuneKey("p", "d", "2.0", "k.cl:v:k", "abc", "float32", "n~1")) is None


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    from kernels.opencl.tune import cache_path

    monkeypatch.setenv("BENCH_TUNE_CACHE", str(tmp_path / "mine.json"))
    assert cache_path() == tmp_path / "mine.json"
    monkeypatch.delenv("BENCH_TUNE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_path() == tmp_path / "xdg" / "accelbench" / "opencl-tune.json"


# -- the strategies, on scripted timings and a scripted clock ------------------------------------


class _NoDevice:
    def synchronize(self, result: Any = None) -> None:
        pass


class Scripted:
    """A search whose candidates 'take' cost(params) seconds and whose clock advances by one
    second per candidate: no device, no timing."""

    def __init__(self, cost: Any, wrong: Any = lambda p: False) -> None:
        self.cost, self.wrong, self.now, self.made = cost, wrong, 0.0, []

    def clock(self) -> float:
        return self.now

    def search(self, space: Any, defaults: dict[str, Any], budget_s: float,
               seed: int = 0) -> Any:
        from harness.errors import CheckFailed
        from kernels.opencl.build import DeviceFacts
        from kernels.opencl.tune import Search, Trial

        facts = DeviceFacts("p", "d", "1", "cpu", 1024, 65536, 2)

        def make(params: dict[str, Any]) -> Trial:
            self.made.append(params)
            self.now += 1.0

            def check() -> None:
                if self.wrong(params):
                    raise CheckFailed("wrong on purpose")

            return Trial(lambda: params, _NoDevice(), check)

        s = Search(space, facts, "float32", make, defaults, budget_s, seed, clock=self.clock)
        scripted = self

        class FakeEngine:
            def measure(self, op: Any) -> Any:
                class T:
                    samples = [scripted.cost(op())]
                return T()

        s._engine = lambda backend: FakeEngine()  # type: ignore[method-assign]
        return s


def test_descent_finds_the_optimum_of_a_separable_cost():
    from kernels.opencl.build import Space

    space = Space({"A": tuple(range(8)), "B": tuple(range(8)), "C": (1, 2, 4)})

    def cost(p: dict[str, Any]) -> float:
        return 1 + (p["A"] - 5) ** 2 + (p["B"] - 2) ** 2 + (p["C"] != 4)

    sc = Scripted(cost)
    s = sc.search(space, {"A": 0, "B": 0, "C": 1}, budget_s=60)
    used, legal = s.run("auto")
    assert used == "descent" and len(legal) == 192
    assert s.best().params == {"A": 5, "B": 2, "C": 4}
    assert len(sc.made) <= 60  # the budget: one scripted second per candidate


def test_budget_bounds_the_search_and_wrong_candidates_never_win():
    from kernels.opencl.build import Space
    from kernels.opencl.tune import FINAL_SHARE

    space = Space({"A": tuple(range(20)), "B": tuple(range(20))},
                  constraint=lambda p, f, d: (p["A"] + p["B"]) % 7 != 0)

    def wrong(p: dict[str, Any]) -> bool:
        return p["A"] == 19  # the fastest candidates, all wrong

    sc = Scripted(lambda p: 100.0 - p["A"] - 0.1 * p["B"], wrong)
    s = sc.search(space, {"A": 1, "B": 1}, budget_s=25, seed=3)
    s.run("random")
    # the search stops at its share of the budget (the rest: final rounds of the best three)
    assert len(sc.made) == math.ceil(25 * (1 - FINAL_SHARE))
    assert all((p["A"] + p["B"]) % 7 != 0 for p in sc.made)  # never an illegal candidate
    assert s.best().params["A"] != 19
    assert sc.made[0] == {"A": 1, "B": 1}  # the defaults first
    # seeded: the same seed tries the same candidates
    sc2 = Scripted(lambda p: 100.0 - p["A"], wrong)
    s2 = sc2.search(space, {"A": 1, "B": 1}, budget_s=25, seed=3)
    s2.run("random")
    assert sc2.made == sc.made


def test_declared_spaces_hold_their_defaults():
    from kernels.opencl.build import GEMM_VARIANTS, STREAM_VARIANTS, DeviceFacts

    facts = DeviceFacts("p", "d", "1", "cpu", 4096, 65536, 2)
    for v in (*GEMM_VARIANTS.values(), *STREAM_VARIANTS.values()):
        if v.space is not None:
            assert set(v.space.values) == set(v.defines), v.name
            assert v.space.allows(v.defines, facts, "float32"), v.name


# -- the kernels take what the cache holds ---------------------------------------------------


def test_gemm_uses_the_cached_parameters_and_says_so(tmp_path, monkeypatch):
    from harness.workload import make_case
    from harness.workload import registry as workloads
    from kernels.array.opencl import gemm_size_class
    from kernels.opencl.build import GEMM_VARIANTS, DeviceFacts
    from kernels.opencl.tune import TuneCache, make_key

    monkeypatch.setenv("BENCH_TUNE_CACHE", str(tmp_path / "cache.json"))
    b = opencl()

    def prepared(**raw: Any) -> Any:
        case = make_case("gemm", "opencl:pocl", {"m": "70", "n": "33", "k": "50",
                                                 "variant": "cpu", **raw}, "test")
        p = workloads.get("gemm")().prepare(b, case.param_dict)
        p.check()
        return p

    miss = prepared().info["tune"]
    assert miss["from_cache"] is False and miss["source"] == "default"
    assert miss["params"] == GEMM_VARIANTS["cpu"].defines

    v = GEMM_VARIANTS["cpu"]
    key = make_key(DeviceFacts.of(b.cl_device), v, "gemm_cpu", "float32",
                   gemm_size_class(70, 33, 50))
    chosen = {"RB": 3, "VW": 4, "NB": 2, "WG": 2, "KU": 1}
    TuneCache().put(key, {"params": chosen, "seconds": 1e-3})
    p = prepared()
    hit = p.info["tune"]
    assert hit["from_cache"] is True and hit["source"] == "cache"
    assert hit["params"] == chosen and hit["key"] == key.text()
    assert all(f"-D{k}={v}" in p.info["build_options"] for k, v in chosen.items())

    # tunables set by hand win, and the cache is not consulted
    hand = prepared(build_options="-DRB=2 -DVW=8").info
    assert hand["tune"]["source"] == "build_options" and hand["tune"]["params"]["RB"] == 2


def test_stream_uses_the_cached_parameters(tmp_path, monkeypatch):
    from harness.workload import make_case
    from harness.workload import registry as workloads
    from kernels.array.opencl import stream_size_class
    from kernels.opencl.build import STREAM_VARIANTS, DeviceFacts
    from kernels.opencl.tune import TuneCache, make_key

    monkeypatch.setenv("BENCH_TUNE_CACHE", str(tmp_path / "cache.json"))
    b = opencl()
    key = make_key(DeviceFacts.of(b.cl_device), STREAM_VARIANTS["simple"], "stream_triad",
                   "float32", stream_size_class(1001))
    chosen = {"VW": 4, "EPW": 8, "CONTIG": 0, "WG": 16}
    TuneCache().put(key, {"params": chosen, "seconds": 1e-5})
    case = make_case("stream", "opencl:pocl", {"n": "1001", "op": "triad",
                                               "dtype": "float32"}, "test")
    p = workloads.get("stream")().prepare(b, case.param_dict)
    p.check()
    assert p.info["tune"]["from_cache"] is True and p.info["tune"]["params"] == chosen


@pytest.mark.parametrize("params", [
    {"VW": 1, "EPW": 1, "CONTIG": 1, "WG": 0}, {"VW": 16, "EPW": 3, "CONTIG": 1, "WG": 0},
    {"VW": 8, "EPW": 5, "CONTIG": 0, "WG": 16}, {"VW": 2, "EPW": 64, "CONTIG": 0, "WG": 64},
    {"VW": 4, "EPW": 256, "CONTIG": 1, "WG": 1024},
])
@pytest.mark.parametrize("kind", ["copy", "scale", "add", "triad"])
def test_stream_candidates_pass_their_check(params, kind):
    from kernels.array.opencl import stream_tunable

    stream_tunable(opencl(), kind, 1001, "float32").make(params).check()


@pytest.mark.parametrize("params", [
    {"RB": 1, "VW": 4, "NB": 1, "WG": 1, "KU": 1}, {"RB": 5, "VW": 8, "NB": 3, "WG": 4, "KU": 2},
    {"RB": 12, "VW": 16, "NB": 2, "WG": 64, "KU": 4}, {"RB": 7, "VW": 16, "NB": 1, "WG": 8,
                                                        "KU": 1},
])
def test_gemm_cpu_candidates_pass_their_check(params):
    from kernels.array.opencl import gemm_tunable

    gemm_tunable(opencl(), 70, 45, 29, "float32", "cpu").make(params).check()


@pytest.mark.parametrize("params", [{"TS": 8, "WPT": 1}, {"TS": 16, "WPT": 4},
                                    {"TS": 32, "WPT": 8}])
def test_gemm_tiled_candidates_pass_their_check(params):
    from kernels.array.opencl import gemm_tunable

    gemm_tunable(opencl(), 70, 45, 29, "float32", "tiled").make(params).check()


def test_a_candidate_the_runtime_refuses_is_rejected(tmp_path):
    """A launch error (here: a work-group size past the device's limit, let through by a
    constraint that does not check it) rejects the candidate; the search goes on."""
    from kernels.opencl.build import DeviceFacts, Space, Variant
    from kernels.opencl.tune import TuneCache, make_key, tune

    src = tmp_path / "twice.cl"
    src.write_text(SOURCE)
    variant = Variant("twice", str(src), ("twice",), {"WPI": 1, "BUG": 0, "WG": 1},
                      space=Space({"WPI": (1,), "BUG": (0,), "WG": (1, 1 << 20)}))
    make = Twice(opencl(), variant)
    facts = DeviceFacts.of(make.backend.cl_device)
    key = make_key(facts, variant, "twice", "float32", "n~65536")
    result = tune(key, variant, facts, "float32", make, budget_s=20,
                  cache=TuneCache(tmp_path / "cache.json"))
    assert result.best.params["WG"] == 1
    (refused,) = [c for c in result.candidates if c.params["WG"] != 1]
    assert not refused.ok and (refused.error or "").startswith("failed: ")


# -- bench tune ------------------------------------------------------------------------------


def _one_line(res: Any, *needles: str) -> str:
    assert res.rc == 2, (res.rc, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("args,needles", [
    (["-w", "gemm", "-b", "torch:cpu"], ["'torch:cpu' is not an OpenCL backend", "opencl:pocl"]),
    (["-w", "gemm"], ["needs an OpenCL backend"]),
    (["-w", "spin", "-b", "opencl:pocl"], ["'spin' has no tunable", "gemm, stream, conv2d"]),
    (["-w", "gemm", "-b", "opencl:pocl", "-p", "variant=naive"], ["no tunable parameters",
                                                                  "cpu, tiled"]),
    (["-w", "gemm", "-b", "opencl:pocl", "-p", "build_options=-DRB=2"], ["drop them to tune"]),
    (["-w", "gemm", "-b", "opencl:nvidia"], ["no platform matches 'nvidia'"]),
    (["-w", "gemm", "-b", "opencl:pocl", "--tune-budget", "0"], ["--tune-budget"]),
    (["-w", "gemm", "-b", "opencl:pocl", "-p", "m=0"], ["'m'"]),
    (["-w", "gemm", "-b", "opencl:pocl", "-p", "dtype=float16"], ["cl_khr_fp16", "float32"]),
], ids=["not opencl", "no backend", "not tunable", "naive variant", "fixed by hand",
        "no platform", "zero budget", "bad parameter", "no float16 here"])
def test_bench_tune_bad_input(bench_inproc, tmp_path, monkeypatch, args, needles):
    b = opencl()
    if "dtype=float16" in args and "cl_khr_fp16" in b.cl_device.extensions.split():
        pytest.skip("this OpenCL device has float16")
    monkeypatch.setenv("BENCH_TUNE_CACHE", str(tmp_path / "cache.json"))
    _one_line(bench_inproc("tune", *args), *needles)
    assert not (tmp_path / "cache.json").exists()


def test_bench_tune_then_run_takes_the_cached_parameters(bench_inproc, tmp_path, monkeypatch):
    opencl()
    monkeypatch.setenv("BENCH_TUNE_CACHE", str(tmp_path / "cache.json"))
    sel = ["-w", "gemm", "-b", "opencl:pocl", "-p", "m=64", "-p", "n=48", "-p", "k=40"]
    res = bench_inproc("tune", *sel, "--tune-budget", "3", "--json")
    assert res.rc == 0, res.stderr
    (first,) = json.loads(res.stdout)
    assert first["from_cache"] is False and first["tried"] >= 1 and first["top"]
    assert first["top"][0]["unit"] == "GFLOP/s" and first["top"][0]["figure"] > 0

    res = bench_inproc("tune", *sel, "--json")
    (second,) = json.loads(res.stdout)
    assert second["from_cache"] is True and second["tried"] == 0
    assert second["best"] == first["best"]

    res = bench_inproc("tune", *sel, "--top", "3")  # the table
    assert res.rc == 0 and "from the cache" in res.stdout and "best: -D" in res.stdout

    res = bench_inproc("run", *sel, "--budget", "0.2", "--quiet", "--json")
    assert res.rc == 0, res.stderr
    (m,) = json.loads(res.stdout)["measurements"]
    tune = m["info"]["tune"]
    assert tune["from_cache"] is True and tune["params"] == first["best"]
    assert tune["key"] == first["key"]


@pytest.mark.parametrize("params", [
    {"VW": 4, "RF": 1, "WG": 1}, {"VW": 8, "RF": 4, "WG": 4}, {"VW": 16, "RF": 16, "WG": 64},
    {"VW": 16, "RF": 2, "WG": 16},
])
@pytest.mark.parametrize("shape", [
    dict(batch=2, channels=3, filters=5, size=13, kernel=3, stride=1, padding=1),
    dict(batch=1, channels=4, filters=7, size=20, kernel=5, stride=2, padding=0),
    dict(batch=1, channels=2, filters=3, size=9, kernel=1, stride=1, padding=0),
], ids=["3x3 pad1", "5x5 stride2", "1x1"])
def test_conv2d_igemm_candidates_pass_their_check(params, shape):
    from kernels.array.opencl import conv2d_tunable

    conv2d_tunable(opencl(), dtype="float32", **shape).make(params).check()


def test_conv2d_variants_from_the_workload():
    from harness.workload import make_case
    from harness.workload import registry as workloads

    for raw, variant in (({}, "igemm"), ({"variant": "direct"}, "direct")):
        case = make_case("conv2d", "opencl:pocl", {"batch": "2", "channels": "3", "filters": "5",
                                                   "size": "13", **raw}, "test")
        p = workloads.get("conv2d")().prepare(opencl(), case.param_dict)
        p.check()
        assert p.info["variant"] == variant
        assert ("tune" in p.info) == (variant == "igemm")
