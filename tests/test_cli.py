"""End to end through the real `bench` console script, in a temporary folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

FAST = ("--budget", "0.2", "--quiet")  # short cases: the whole file runs in seconds
US = (10.0, 100.0, 1000.0)


@pytest.fixture(scope="module")
def spun(tmp_path_factory, bench_at):
    """One `bench run -w spin -p us=10,100,1000 --json` in a folder the module's tests share."""
    cwd = tmp_path_factory.mktemp("cli")
    res = bench_at(cwd, "run", "-w", "spin", "-p", "us=10,100,1000", "--json", "--budget", "0.3",
                   "--quiet", "--tag", "k=v", "--tag", "team=perf")
    assert res.rc == 0, res.stderr
    return cwd, res.json()


def test_run_spin_json(spun):
    cwd, data = spun
    assert data["status"] == "complete"
    assert len(data["measurements"]) == 3
    for m, us in zip(data["measurements"], US, strict=True):
        assert m["workload"] == "spin" and m["backend"] == "numpy:cpu"
        assert m["params"] == {"us": us}
        assert m["status"] == "ok" and m["error"] is None
        # an order of magnitude only: how close to `us` is benchmarks/engine_accuracy.py's
        assert 0.5 * us * 1e-6 < m["summary"]["median"] < 20 * us * 1e-6
        assert m["summary"]["n"] >= 10
        assert m["timing"]["stop_reason"] in ("ci_target", "budget", "max_samples")
        assert m["metrics"]["latency_s"] == m["summary"]["median"]
        assert m["timing"]["block"] >= 1 and m["timing"]["overhead_s"] > 0
        # the steady-state check ran below min_block_time and recorded both figures
        assert m["timing"]["block_rule"] in ("overhead", "steady_state")
        if us < 1000:
            for key in ("single_call_s", "back_to_back_call_s"):
                assert 0.5 * us * 1e-6 < m["timing"][key] < 20 * us * 1e-6
    run_file = cwd / data["run_file"]
    assert run_file.name == f"{data['run_id']}.jsonl" and run_file.is_file()
    assert not list((cwd / "bench-runs").glob("*.part"))
    assert (cwd / "bench.db").is_file()
    assert data["store"].endswith("bench.db")


def test_runs_json(spun, bench_at):
    cwd, data = spun
    res = bench_at(cwd, "runs", "--json")
    assert res.rc == 0, res.stderr
    (row,) = res.json()
    assert row["run_id"] == data["run_id"]
    assert row["status"] == "complete"
    assert row["n_measurements"] == 3
    assert row["tags"] == {"k": "v", "team": "perf"}
    assert "spin" in row["command"]


def test_runs_table(spun, bench_at):
    cwd, data = spun
    res = bench_at(cwd, "runs")
    assert res.rc == 0, res.stderr
    assert data["run_id"][:8] in res.stdout
    assert "k=v" in res.stdout and "complete" in res.stdout


@pytest.mark.parametrize("ref", ["latest", "prefix", "full"])
def test_show_json(spun, bench_at, ref):
    cwd, data = spun
    arg = {"latest": "latest", "prefix": data["run_id"][:8], "full": data["run_id"]}[ref]
    res = bench_at(cwd, "show", arg, "--json")
    assert res.rc == 0, res.stderr
    shown = res.json()
    assert shown["run_id"] == data["run_id"]
    assert shown["status"] == "complete"
    assert shown["env"]["host"]
    assert [m["params"] for m in shown["measurements"]] == [{"us": u} for u in US]
    for got, want in zip(shown["measurements"], data["measurements"], strict=True):
        assert got["summary"]["median"] == pytest.approx(want["summary"]["median"])
        assert got["summary"]["n"] == want["summary"]["n"]


def test_show_table(spun, bench_at):
    cwd, data = spun
    res = bench_at(cwd, "show")
    assert res.rc == 0, res.stderr
    assert data["run_id"] in res.stdout and "spin" in res.stdout


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_export(spun, bench_at, fmt):
    cwd, data = spun
    out = cwd / f"x.{fmt}"
    res = bench_at(cwd, "export", "latest", "-o", out.name)
    assert res.rc == 0, res.stderr
    assert "wrote 3 measurement(s)" in res.stderr
    df = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
    assert len(df) == 3
    assert set(df["run_id"]) == {data["run_id"]}
    assert {"workload", "backend", "params", "median"} <= set(df.columns)


def test_export_explicit_format_and_all_runs(spun, bench_at):
    cwd, _ = spun
    res = bench_at(cwd, "export", "--format", "csv", "-o", "all.txt")
    assert res.rc == 0, res.stderr
    assert len(pd.read_csv(cwd / "all.txt")) == 3


def test_ingest_twice(spun, bench_at):
    cwd, _ = spun
    first = bench_at(cwd, "ingest", "bench-runs", "--store", "other.db")
    assert first.rc == 0, first.stderr
    assert first.stdout.strip() == "1 added"
    second = bench_at(cwd, "ingest", "bench-runs", "--store", "other.db")
    assert second.rc == 0, second.stderr
    assert second.stdout.strip() == "1 unchanged"
    res = bench_at(cwd, "runs", "--json", "--store", "other.db")
    assert len(res.json()) == 1
    # The run already in the default store is unchanged too.
    assert bench_at(cwd, "ingest", "bench-runs").stdout.strip() == "1 unchanged"


def test_ingest_empty_folder(bench, workdir):
    """Nothing to ingest is a mistake (a wrong folder), not a success: issue 17, item 5."""
    (workdir / "empty").mkdir()
    res = bench("ingest", "empty")
    assert res.rc == 2 and res.err_lines == [res.stderr.strip()]
    assert "no run files" in res.stderr and res.stdout == ""
    assert not (workdir / "bench.db").exists()  # no store made for nothing


def test_store_from_env(bench, workdir):
    res = bench("run", "-w", "spin", "-p", "us=10", *FAST, "--json",
                env={"BENCH_STORE": str(workdir / "envstore.db"),
                     "BENCH_RUN_DIR": str(workdir / "envruns")})
    assert res.rc == 0, res.stderr
    assert (workdir / "envstore.db").is_file()
    assert list((workdir / "envruns").glob("*.jsonl"))
    assert not (workdir / "bench.db").exists() and not (workdir / "bench-runs").exists()


def test_runs_when_empty(bench):
    res = bench("runs")
    assert res.rc == 0
    assert "no runs yet" in res.stderr
    assert bench("runs", "--json").json() == []


def test_list(bench):
    res = bench("list")
    assert res.rc == 0, res.stderr
    for word in ("spin", "gemm", "stream", "numpy:cpu", "smoke", "quick"):
        assert word in res.stdout


def test_list_workloads_json(bench):
    data = bench("list", "workloads", "--json").json()
    assert set(data) == {"workloads"}
    by_name = {w["name"]: w for w in data["workloads"]}
    assert {"spin", "gemm", "stream"} <= set(by_name)
    assert "us" in by_name["spin"]["params"]
    assert by_name["spin"]["params"]["us"]["type"] == "float"


def test_list_backends_json(bench, tmp_path):
    res = bench("list", "backends", "--probe", "--json",
                env={"BENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert res.rc == 0, res.stderr
    by_name = {b["backend"]: b for b in res.json()["backends"]}
    assert by_name["numpy:cpu"]["usable"] is True
    assert by_name["numpy:cpu"]["reason"] is None
    cuda = by_name["torch:cuda"]
    if cuda["usable"]:
        pytest.skip("this machine has a CUDA device")
    assert isinstance(cuda["reason"], str) and cuda["reason"]
    assert "torch" in cuda["reason"]


def test_list_suites_json(bench):
    names = {s["name"] for s in bench("list", "suites", "--json").json()["suites"]}
    assert {"smoke", "quick"} <= names


def test_env_json(bench):
    res = bench("env", "--json")
    assert res.rc == 0, res.stderr
    data = res.json()
    assert {"cpu", "libraries", "env_hash", "host", "python"} <= set(data)
    assert len(data["env_hash"]) == 16
    int(data["env_hash"], 16)
    assert "numpy" in data["libraries"]
    assert data["cpu"]["logical_cores"] >= 1
    again = bench("env", "--json").json()
    assert again["env_hash"] == data["env_hash"]  # the same machine hashes the same


def test_env_text(bench):
    res = bench("env")
    assert res.rc == 0, res.stderr
    assert res.stdout.startswith("hash")


def test_suite_smoke(bench):
    res = bench("run", "--suite", "smoke", "--budget", "0.2", "--quiet", "--json")
    assert res.rc == 0, res.stderr
    data = res.json()
    assert data["status"] == "complete"
    assert {m["workload"] for m in data["measurements"]} == {"spin", "gemm", "stream"}
    assert all(m["status"] == "ok" for m in data["measurements"])
    assert all(m["timing"]["policy"]["budget"] == 0.2 for m in data["measurements"])
    (row,) = bench("runs", "--json").json()
    assert row["suite"] == "smoke"


def test_dry_run(bench, workdir):
    res = bench("run", "-w", "spin", "-p", "us=1,2", "--dry-run")
    assert res.rc == 0, res.stderr
    assert res.stdout.splitlines() == ["spin[numpy:cpu](us=1.0)", "spin[numpy:cpu](us=2.0)"]
    data = bench("run", "-w", "gemm", "-p", "m=8,16", "--budget", "3", "--dry-run",
                 "--json").json()
    assert len(data) == 2
    assert all(d["policy"]["budget"] == 3.0 for d in data)
    assert not (workdir / "bench.db").exists()
    assert not (workdir / "bench-runs").exists()


def test_dry_run_suite(bench):
    res = bench("run", "--suite", "quick", "--dry-run")
    assert res.rc == 0, res.stderr
    assert len(res.stdout.splitlines()) > 5


PLUGIN = textwrap.dedent('''
    from harness import Param, Work, workload


    @workload("mysort", params={"n": Param("int", 1000, "items to sort", min=1)},
              work=lambda p: Work(items=p["n"]))
    def mysort(backend, n):
        """Sort a reversed list."""
        data = list(range(n, 0, -1))
        return lambda: sorted(data)
''')


def test_plugin(bench, workdir):
    (workdir / "f.py").write_text(PLUGIN)
    listed = bench("list", "workloads", "--plugin", "f.py", "--json")
    assert listed.rc == 0, listed.stderr
    by_name = {w["name"]: w for w in listed.json()["workloads"]}
    assert by_name["mysort"]["description"] == "Sort a reversed list."
    assert by_name["mysort"]["params"]["n"]["default"] == 1000
    assert "mysort" in bench("list", "workloads", "--plugin", "f.py").stdout
    assert "mysort" not in bench("list", "workloads").stdout

    res = bench("run", "--plugin", "f.py", "-w", "mysort", "-p", "n=100,1000", *FAST, "--json")
    assert res.rc == 0, res.stderr
    data = res.json()
    assert data["status"] == "complete"
    assert [m["params"] for m in data["measurements"]] == [{"n": 100}, {"n": 1000}]
    assert all(m["status"] == "ok" for m in data["measurements"])
    small, large = (m["summary"]["median"] for m in data["measurements"])
    assert large > small


def test_failing_case_exits_1(bench, workdir):
    (workdir / "bad.py").write_text(textwrap.dedent('''
        from harness import workload

        @workload("broken")
        def broken(backend):
            def op():
                raise RuntimeError("kaput")
            return op
    '''))
    res = bench("run", "--plugin", "bad.py", "-w", "broken", *FAST, "--json")
    assert res.rc == 1, res.stderr
    data = res.json()
    assert data["status"] == "failed"
    (m,) = data["measurements"]
    assert m["status"] == "failed" and "kaput" in m["error"]
    (row,) = bench("runs", "--json").json()
    assert row["status"] == "failed"


def test_help_is_fast(bench):
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        res = bench("--help")
        best = min(best, time.perf_counter() - t0)
        assert res.rc == 0, res.stderr
    assert "bench run" in res.stdout
    # an order of magnitude (it takes ~0.2-0.4 s); why it is fast (no framework imported)
    # is asserted exactly by the two tests below
    assert best < 5.0


def test_cli_imports_no_framework(workdir):
    code = ("import harness.cli, sys; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in {'torch','numpy','pandas','sqlalchemy','jax','scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=workdir).stdout
    assert out.strip() == "[]"


def test_help_imports_no_framework(workdir):
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", "--help"],
                         capture_output=True, text=True, cwd=workdir, timeout=30)
    assert res.returncode == 0
    modules = {ln.split("|")[-1].strip().split(".")[0] for ln in res.stderr.splitlines()
               if ln.startswith("import time:")}
    assert "click" in modules
    assert not modules & {"torch", "numpy", "pandas", "sqlalchemy", "jax", "scipy"}


def test_python_m_harness(workdir):
    res = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True,
                         text=True, cwd=workdir, timeout=30)
    assert res.returncode == 0
    assert "Usage: bench" in res.stdout


@pytest.mark.parametrize("cmd", ["run", "list", "env", "runs", "show", "export", "ingest"])
def test_subcommand_help(bench, cmd):
    res = bench(cmd, "--help")
    assert res.rc == 0, res.stderr
    assert f"Usage: bench {cmd}" in res.stdout


def test_version(bench):
    res = bench("--version")
    assert res.rc == 0 and "bench" in res.stdout
