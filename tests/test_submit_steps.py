"""`bench submit --each-node / --pairs`: the job script's steps (run by bash with a stand-in
scontrol and bench, no Slurm needed), and the options' bad input as one line, exit 2."""

from __future__ import annotations

import itertools
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from cluster import slurm
from cluster.sites import Site

NODES = ["n1", "n2", "n3", "n4", "n5"]


def _steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nodes: list[str], **kw) -> list[str]:
    """The `nodes=` tags of the steps the job script runs, in order."""
    monkeypatch.setattr(slurm, "bench_command", lambda: ["echo", "bench"])
    req = slurm.JobRequest("q", ["-w", "spin"], tmp_path, tmp_path, Site("t"), nodes=len(nodes),
                           **kw)
    script = tmp_path / "job.sh"
    script.write_text(slurm.render(req))
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "scontrol").write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(nodes) + "\n")
    (fake / "scontrol").chmod(stat.S_IRWXU)
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}",
                              "SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "x"})
    assert out.returncode == 0, out.stderr
    steps = []
    for line in out.stdout.splitlines():
        (tag,) = re.findall(r"--tag nodes=(\S+)", line)
        (n,) = re.findall(r"--launcher srun -n (\d)", line)
        assert int(n) == len(tag.split(","))  # one rank per node of the step
        assert "--tag slurm_job=7" in line
        steps.append(tag)
    return steps


def test_each_node_runs_one_step_per_node_per_round(tmp_path, monkeypatch):
    assert _steps(tmp_path, monkeypatch, NODES, each_node=True, repeat=2) == NODES * 2


@pytest.mark.parametrize("pairs,expected", [
    ("ring", {("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5"), ("n1", "n5")}),
    ("all", set(itertools.combinations(NODES, 2))),
    ("k=2", {("n1", "n2"), ("n2", "n3"), ("n3", "n4"), ("n4", "n5"), ("n1", "n5"),
             ("n1", "n3"), ("n2", "n4"), ("n3", "n5"), ("n1", "n4"), ("n2", "n5")}),
])
def test_pairs_cover_every_node_and_each_link_once(tmp_path, monkeypatch, pairs, expected):
    steps = _steps(tmp_path, monkeypatch, NODES, pairs=pairs)
    got = [tuple(sorted(s.split(","))) for s in steps]
    assert len(got) == len(set(got))  # no link twice in a round
    assert set(got) == expected
    assert {n for pair in got for n in pair} == set(NODES)


def test_two_nodes_make_one_pair(tmp_path, monkeypatch):
    assert _steps(tmp_path, monkeypatch, ["a", "b"], pairs="ring") == ["a,b"]


def test_each_node_and_pairs_in_one_job(tmp_path, monkeypatch):
    steps = _steps(tmp_path, monkeypatch, ["a", "b", "c"], each_node=True, pairs="ring")
    assert steps == ["a", "b", "c", "a,b", "b,c", "a,c"]


def test_dry_run_script_and_reference(bench, workdir):
    (workdir / "ref.toml").write_text('[[expect]]\ncase = "spin*"\ncheck = "latency_s <= 1"\n')
    res = bench("submit", "-w", "spin", "--nodes", "4", "--pairs", "ring", "--each-node",
                "--repeat", "3", "--reference", "ref.toml", "--dry-run")
    assert res.rc == 0, res.stderr
    assert "#SBATCH --nodes=4" in res.stdout and "#SBATCH --ntasks-per-node=1" in res.stdout
    assert "for ((round = 0; round < 3; round++))" in res.stdout
    assert f"--reference {workdir / 'ref.toml'}" in res.stdout
    res = bench("submit", "-w", "spin", "--nodelist", "bnode[1-4]", "--each-node", "--dry-run")
    assert res.rc == 0 and "#SBATCH --nodelist=bnode[1-4]" in res.stdout


BAD = {
    "pairs word": (["--nodes", "4", "--pairs", "star"], "--pairs 'star'"),
    "pairs k=0": (["--nodes", "4", "--pairs", "k=0"], "ring, all or k=N"),
    "no nodes": (["--each-node"], "--nodes N or --nodelist"),
    "one node pairs": (["--nodes", "1", "--pairs", "ring"], "at least 2 nodes"),
    "with array": (["--nodes", "2", "--each-node", "-p", "us=1,2", "--array", "us"],
                   "leave out --array"),
    "repeat alone": (["--repeat", "2"], "--repeat is for"),
    "bad reference": (["--nodes", "2", "--each-node", "--reference", "nope.toml"],
                      "no reference file"),
    "nodelist quote": (["--nodelist", "a'b", "--each-node"], "--nodelist"),
}


@pytest.mark.parametrize("args,needle", BAD.values(), ids=BAD.keys())
def test_bad_qualify_options_are_one_line(bench, workdir, args, needle):
    res = bench("submit", "-w", "spin", *args, "--dry-run")
    assert res.rc == 2, res.stdout
    assert len(res.err_lines) == 1 and needle in res.stderr, res.stderr
    assert not (workdir / "bench-runs").exists()
