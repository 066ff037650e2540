"""`bench submit`, `bench jobs`, `bench collect` against a real one-node Slurm.

Uses the cluster that $SLURM_CONF names when it answers (`.ci/run` starts one with
cluster/local-slurm); otherwise starts its own on other ports, or skips saying why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL_SLURM = ROOT / "cluster" / "local-slurm"
PLUGINS = Path(__file__).parent / "fixtures" / "plugins"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def _answers(env: dict[str, str]) -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], env=env, capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def slurm_env():
    if shutil.which("slurmctld") is None or shutil.which("sbatch") is None:
        pytest.skip("Slurm is not installed (apt-get install slurmctld slurmd slurm-client "
                    "munge; .ci/run does)")
    if os.environ.get("SLURM_CONF") and _answers(dict(os.environ)):
        yield {"SLURM_CONF": os.environ["SLURM_CONF"]}
        return
    if os.geteuid() != 0:
        pytest.skip("starting a local Slurm needs root")
    folder = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    env = {**os.environ, "BENCH_SLURMCTLD_PORT": "16817", "BENCH_SLURMD_PORT": "16818"}
    out = subprocess.run([str(LOCAL_SLURM), "start", str(folder)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        yield {"SLURM_CONF": str(folder / "etc" / "slurm.conf")}
    finally:
        subprocess.run([str(LOCAL_SLURM), "stop", str(folder)], timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def sbench(bench, slurm_env):
    def run(*args: str, **kw):
        env = {**slurm_env, **kw.pop("env", {})}
        return bench(*args, env=env, **kw)
    return run


def _wait(sbench, job_ids: list[str], timeout: float = 90) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = {r["job_id"]: r for r in sbench("jobs", "--json").json()}
        done = all(rows[j]["states"] and all(s["state"] in TERMINAL for s in rows[j]["states"])
                   for j in job_ids)
        if done:
            return rows
        assert time.monotonic() < deadline, f"jobs did not finish: {rows}"
        time.sleep(0.5)


def _submit(sbench, *args: str) -> list[str]:
    r = sbench("submit", "--site", "local", "--json", *args)
    assert r.rc == 0, r.stderr
    return [j["job_id"] for j in r.json()]


def _collected_runs(sbench) -> list[dict]:
    c = sbench("collect")
    assert c.rc == 0, c.stderr
    return sbench("runs", "--json", "--limit", "100").json()


def test_single_task_array_and_collect(sbench):
    (single,) = _submit(sbench, "-w", "spin", "-p", "us=40", "--budget", "0.2")
    (array,) = _submit(sbench, "-w", "spin", "-p", "us=10,20,30", "--array", "us",
                       "--budget", "0.2")
    rows = _wait(sbench, [single, array])
    assert [s["state"] for s in rows[single]["states"]] == ["COMPLETED"]
    assert sorted(s["state"] for s in rows[array]["states"]) == ["COMPLETED"] * 3
    assert len(rows[array]["runs"]) == 3
    runs = _collected_runs(sbench)
    by_job = {}
    for r in runs:
        by_job.setdefault(r["tags"]["slurm_job"], []).append(r)
    assert len(by_job[single]) == 1 and len(by_job[array]) == 3
    assert all(r["status"] == "complete" for r in runs)
    swept = sorted(sbench("show", r["run_id"], "--json").json()["measurements"][0]["params"]["us"]
                   for r in by_job[array])
    assert swept == [10.0, 20.0, 30.0]
    assert sbench("collect").stdout.strip() == "4 unchanged"


def test_two_task_job_and_scaling_sweep(sbench):
    (two,) = _submit(sbench, "-w", "spin", "-p", "us=50", "--ntasks", "2", "--budget", "0.2")
    scaling = _submit(sbench, "-w", "spin", "-p", "us=60", "--scaling", "1,2",
                      "--scaling-by", "tasks", "--budget", "0.2")
    assert len(scaling) == 2
    rows = _wait(sbench, [two, *scaling])
    for j in (two, *scaling):
        assert [s["state"] for s in rows[j]["states"]] == ["COMPLETED"], rows[j]
    _collected_runs(sbench)
    def world(job: str) -> tuple[int, str]:
        run_id = rows[job]["runs"][0]["run_id"]
        shown = sbench("show", run_id, "--json").json()
        ranks = shown["measurements"][0]["metrics"].get("world_size", 1.0)
        return int(ranks), shown["tags"].get("scaling")
    assert world(two)[0] == 2
    assert [world(j) for j in scaling] == [(1, "tasks=1"), (2, "tasks=2")]


def test_cancelled_and_failed_jobs_say_why(sbench):
    (long,) = _submit(sbench, "-w", "spin", "-p", "us=1000", "--budget", "120",
                      "--target-ci", "0.000001")
    (bad,) = _submit(sbench, "-w", "gemm", "-b", "torch:cuda", "-p", "m=64")
    deadline = time.monotonic() + 30
    while sbench("jobs", "--json").json()[0]["state"] not in ("RUNNING", "COMPLETED"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert sbench("jobs", "--cancel", long).rc == 0
    rows = _wait(sbench, [long, bad])
    assert rows[long]["state"] == "CANCELLED"
    assert rows[bad]["state"] == "FAILED"
    assert "no CUDA device" in rows[bad]["failure"]
    table = sbench("jobs")
    assert "FAILED" in table.stdout and "CANCELLED" in table.stdout


def test_malicious_values_are_quoted_never_executed(sbench, workdir):
    marker = workdir / "PWNED"
    evil = [f"; touch {marker}", f"$(touch {marker})", f"`touch {marker}`",
            f"x' ; touch {marker} ; '", f"line1\ntouch {marker}"]
    ids = []
    for value in evil:
        ids += _submit(sbench, "--plugin", str(PLUGINS / "note.py"), "-w", "note",
                       "-p", f"text={value}", "--budget", "0.1",
                       "--tag", f"t=$(touch {marker})")
    rows = _wait(sbench, ids)
    assert all(rows[j]["state"] == "COMPLETED" for j in ids), rows
    assert not marker.exists()
    _collected_runs(sbench)
    texts = set()
    for j in ids:
        run = sbench("show", rows[j]["runs"][0]["run_id"], "--json").json()
        texts.add(run["measurements"][0]["params"]["text"])
        assert run["tags"]["t"] == f"$(touch {marker})"
    assert texts == set(evil)
    for bad in ("x; rm -rf ~", "a\nb", "$(id)"):
        r = sbench("submit", "-w", "spin", "--job-name", bad, "--dry-run")
        assert r.rc == 2 and len(r.err_lines) == 1
    assert sbench("submit", "-w", "spin", "--partition", "a b", "--dry-run").rc == 2


def test_bad_input(sbench, bench, workdir):
    r = sbench("submit", "-w", "spin", "--site", "local", "--partition", "nope")
    assert r.rc == 2 and "not in site" in r.stderr
    r = sbench("submit", "-w", "spin", "--partition", "nosuchpartition")
    assert r.rc == 2 and "sbatch refused the job" in r.stderr
    assert "invalid partition" in r.stderr.lower()
    assert sbench("submit", "-w", "spin", "--site", "nosuchsite").rc == 2
    assert sbench("submit", "-w", "spin", "-p", "us=-5").rc == 2  # validated before submitting
    assert sbench("submit", "-w", "spin", "-p", "us=1,2", "--array", "n").rc == 2
    assert sbench("site", "check", "local").rc == 0
    bad_site = workdir / "bad.toml"
    bad_site.write_text('partitions = ["debug"]\nlauncher = "ssh"\n')
    r = sbench("site", "check", str(bad_site))
    assert r.rc == 2 and "launcher" in r.stderr
    ghost = workdir / "ghost.toml"
    ghost.write_text('partitions = ["ghost"]\n')
    r = sbench("site", "check", str(ghost))
    assert r.rc == 2 and "do not exist" in r.stderr


def test_no_slurm_here(bench, workdir):
    venv_bin = str(Path(os.sys.executable).parent)
    env = {"PATH": venv_bin, "SLURM_CONF": "/nonexistent"}
    no_slurm = bench("submit", "-w", "spin", "-p", "us=10", env=env)
    assert no_slurm.rc == 2 and "no Slurm here" in no_slurm.stderr
    dry = bench("submit", "-w", "spin", "-p", "us=10", "--dry-run", env=env)
    assert dry.rc == 0 and dry.stdout.startswith("#!/bin/bash")
    assert "#SBATCH --job-name=bench-spin" in dry.stdout


def test_dry_run_script_quotes_everything(bench):
    r = bench("submit", "--plugin", str(PLUGINS / "note.py"), "-w", "note", "-p",
              "text=a'b $(c)", "--dry-run", "--json", "--nodes", "2", "--ntasks-per-node", "4",
              "--time", "01:00:00", "--exclusive")
    assert r.rc == 0, r.stderr
    script = json.loads(r.stdout)[0]["script"]
    assert "#SBATCH --nodes=2" in script and "#SBATCH --exclusive" in script
    assert "--launcher srun -n \"$SLURM_NTASKS\"" in script
    assert "'text=a'\"'\"'b $(c)'" in script  # shlex-quoted: a single-quoted shell word


# `bench submit` forwards every timing and profiling option to the job's `bench run` line.
FORWARDED = {
    "rounds": (["--rounds", "3"], ["--rounds", "3"]),
    "min-block-time": (["--min-block-time", "0"], ["--min-block-time", "0.0"]),
    "min-samples": (["--min-samples", "7"], ["--min-samples", "7"]),
    "max-samples": (["--max-samples", "70"], ["--max-samples", "70"]),
    "budget": (["--budget", "0.5"], ["--budget", "0.5"]),
    "target-ci": (["--target-ci", "0.02"], ["--target-ci", "0.02"]),
    "no-check": (["--no-check"], ["--no-check"]),
    "timeout": (["--timeout", "30"], ["--timeout", "30.0"]),
    "profile": (["--profile"], ["--profile"]),
    "profile-iters": (["--profile", "--profile-iters", "3"], ["--profile-iters", "3"]),
    "profile-max-mb": (["--profile", "--profile-max-mb", "2.5"], ["--profile-max-mb", "2.5"]),
}


def _run_line(script: str) -> list[str]:
    """The words of the sbatch script's `exec ... bench run ...` line."""
    import shlex

    (line,) = [ln for ln in script.splitlines() if ln.startswith("exec ")]
    words = shlex.split(line)
    assert words[words.index("-m") + 1:words.index("-m") + 3] == ["harness", "run"], words
    return words


def _has(words: list[str], expected: list[str]) -> bool:
    n = len(expected)
    return any(words[i:i + n] == expected for i in range(len(words) - n + 1))


@pytest.mark.parametrize("given,expected", FORWARDED.values(), ids=FORWARDED.keys())
def test_submit_forwards_each_option(bench_inproc, given, expected):
    r = bench_inproc("submit", "--dry-run", "-w", "spin", "-p", "us=10", *given)
    assert r.rc == 0, r.stderr
    words = _run_line(r.stdout)
    assert _has(words, expected), (expected, words)


def test_submit_forwards_every_timing_option(bench_inproc):
    r = bench_inproc("submit", "--dry-run", "--rounds", "3", "--min-block-time", "0",
                     "--no-check", "--timeout", "30", "-w", "spin", "-p", "us=10")
    assert r.rc == 0, r.stderr
    words = _run_line(r.stdout)
    for expected in (["--rounds", "3"], ["--min-block-time", "0.0"], ["--no-check"],
                     ["--timeout", "30.0"], ["-w", "spin"], ["-p", "us=10"]):
        assert _has(words, expected), (expected, words)


def test_submit_forwards_nothing_not_given(bench_inproc):
    r = bench_inproc("submit", "--dry-run", "-w", "spin", "-p", "us=10")
    assert r.rc == 0, r.stderr
    words = _run_line(r.stdout)
    flags = {flag for given, _ in FORWARDED.values() for flag in given if flag.startswith("-")}
    assert not flags & set(words), words


def test_submit_forwarded_values_are_shell_quoted(bench_inproc, workdir):
    suite = workdir / "my suite's.toml"
    suite.write_text('[[matrix]]\nworkload = "spin"\nparams = { us = 10 }\n')
    r = bench_inproc("submit", "--dry-run", "--suite", str(suite), "--rounds", "2",
                     "--budget", "0.5")
    assert r.rc == 0, r.stderr
    words = _run_line(r.stdout)
    assert _has(words, ["--suite", str(suite.resolve())])
    assert _has(words, ["--rounds", "2"]) and _has(words, ["--budget", "0.5"])


@pytest.mark.parametrize("args,needle", [
    (["--budget", "-1"], "'budget' must be a positive number"),  # validated before submitting
    (["--min-samples", "20", "--max-samples", "5"], "min_samples"),
    (["--timeout", "nan"], "not a finite number"),
    (["--profile-iters", "3"], "need --profile"),
    (["--profile", "--profile-iters", "300"], "between 1 and 100"),
])
def test_submit_refuses_bad_timing_before_writing(bench_inproc, workdir, args, needle):
    r = bench_inproc("submit", "--dry-run", "-w", "spin", *args)
    assert r.rc == 2 and len(r.err_lines) == 1 and needle in r.stderr, r.stderr
    assert r.stdout == "" and list(workdir.iterdir()) == []
