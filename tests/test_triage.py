"""`bench triage`: the statistics on synthetic nodes and links (a slow node, a slow node's links,
one bad link, healthy clusters under noise) and the command on real runs tagged with nodes."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from results.triage import Observation, link_name, q_values, triage


def _obs(rng, case: str, unit: str, slow: float = 1.0, n: int = 60, sigma: float = 0.05,
         base: float = 1e-3) -> Observation:
    x = base * slow * rng.lognormal(0.0, sigma, n)
    return Observation(case, unit, float(np.median(x)), tuple(x))


def _nodes(k: int) -> list[str]:
    return [f"n{i}" for i in range(1, k + 1)]


def test_q_values_are_benjamini_hochberg():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # sorted: .005 .01 .03 .04 .5 -> *5/rank: .025 .025 .05 .05 .5, monotone from the top
    assert q_values(p) == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    assert q_values([]) == []


def test_a_slow_node_is_named_alone():
    rng = np.random.default_rng(1)
    obs = [_obs(rng, case, node, 1.6 if node == "n5" and case != "c3" else 1.0)
           for case in ("c1", "c2", "c3") for node in _nodes(8)]
    t = triage(obs, threshold=0.2)
    assert t.suspect_nodes == ["n5"] and t.suspect_links == []
    (s,) = t.suspects
    assert s.why == "compute" and {e.case_key for e in s.evidence} == {"c1", "c2"}
    assert all(1.4 < e.ratio < 1.8 and e.q <= 0.05 for e in s.evidence)
    (cmd,) = t.drain_commands()
    assert cmd[:4] == ["scontrol", "update", "NodeName=n5", "State=DRAIN"]
    assert cmd[4].startswith("Reason=bench triage: compute: 2 case(s)")


def test_a_very_bad_node_does_not_drag_the_healthy_ones_along():
    """With a mean and standard deviation a 20x node inflates the scale so much that a 1.6x
    node hides; ranks and medians keep both visible, and name no healthy node."""
    rng = np.random.default_rng(2)
    slow = {"n2": 20.0, "n6": 1.6}
    obs = [_obs(rng, "c", node, slow.get(node, 1.0)) for node in _nodes(8)]
    assert set(triage(obs, threshold=0.2).suspect_nodes) == {"n2", "n6"}
    means = {o.unit: float(np.mean(o.samples)) for o in obs}
    mu, sd = np.mean(list(means.values())), np.std(list(means.values()))
    assert (means["n6"] - mu) / sd < 0  # what a z-score on means would say of n6: not slow


def test_noise_below_the_threshold_names_no_one():
    rng = np.random.default_rng(3)
    named = 0
    for _ in range(40):
        obs = [_obs(rng, case, node, rng.uniform(0.95, 1.08))  # nodes differ a little
               for case in ("c1", "c2") for node in _nodes(6)]
        named += bool(triage(obs, threshold=0.2).suspects)
    assert named == 0


def test_a_healthy_node_with_one_disturbed_run_is_not_named():
    rng = np.random.default_rng(4)
    obs = [_obs(rng, "c", node) for node in _nodes(5) for _ in range(2)]
    obs[0] = _obs(rng, "c", "n1", 1.4)  # one of n1's two runs: 40% slower throughout
    assert triage(obs, threshold=0.3).suspects == []


def test_a_node_slow_in_one_run_of_three_is_not_named_but_in_two_it_is():
    rng = np.random.default_rng(8)
    obs = [_obs(rng, "c", node) for node in _nodes(4) for _ in range(3)]
    obs[0] = _obs(rng, "c", "n1", 3.0)  # n1's first run: 3x slower throughout
    t = triage(obs, threshold=0.3)
    assert t.suspects == []
    (n1,) = [x for x in t.tests if x.unit == "n1"]
    assert (n1.runs, n1.runs_beyond, n1.consistent) == (3, 1, False)
    obs[1] = _obs(rng, "c", "n1", 3.0)  # and its second
    assert triage(obs, threshold=0.3).suspect_nodes == ["n1"]


def test_a_slow_nodes_links_are_blamed_on_it():
    rng = np.random.default_rng(5)
    nodes = _nodes(6)
    ring = [link_name(a, b) for a, b in zip(nodes, nodes[1:] + nodes[:1], strict=True)]
    obs = [_obs(rng, "p2p", link, 8.0 if "n3" in link.split("--") else 1.0) for link in ring]
    t = triage(obs, threshold=0.3)
    assert t.suspect_nodes == ["n3"] and t.suspect_links == []
    (s,) = t.suspects
    assert s.why == "network" and {e.unit for e in s.evidence} == {"n2--n3", "n3--n4"}


def test_one_bad_link_is_a_link_not_a_node():
    rng = np.random.default_rng(6)
    nodes = _nodes(5)
    pairs = [link_name(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:]]
    obs = [_obs(rng, "p2p", link, 5.0 if link == "n1--n2" else 1.0) for link in pairs]
    t = triage(obs, threshold=0.3)
    assert t.suspect_links == ["n1--n2"] and t.suspect_nodes == []


def test_too_few_units_are_skipped_not_guessed():
    rng = np.random.default_rng(7)
    t = triage([_obs(rng, "c", "n1"), _obs(rng, "c", "n2", 5.0)])
    assert t.suspects == [] and t.skipped == ["c (2 nodes)"]


# -- the command, on real runs --------------------------------------------------------------------

PLUGIN = (Path(__file__).parent / "fixtures" / "plugins" / "nap.py").read_text()


def test_triage_command_names_the_slow_node_and_drains_it(bench, workdir):
    (workdir / "nap.py").write_text(PLUGIN)
    for node in _nodes(4):
        res = bench("run", "--plugin", "nap.py", "-w", "nap", "-p", "us=50", "--budget", "0.3",
                    "-q", "--tag", f"nodes={node}", "--tag", "qual=t1",
                    env={"NAP_SLOW": "3" if node == "n3" else "1"})
        assert res.rc == 0, res.stderr
    res = bench("triage", "--tag", "qual=t1", "--threshold", "0.5", "--format", "json")
    assert res.rc == 1, res.stderr
    data = res.json()
    assert data["suspect_nodes"] == ["n3"] and data["suspect_links"] == []
    assert data["drain"] and data["drain"][0].startswith("scontrol update NodeName=n3 ")
    assert "suspect(s): node n3 (compute)" in res.stderr

    table = bench("triage", "--tag", "qual=t1", "--threshold", "0.5")
    flat = " ".join(re.sub("[│┃]", " ", table.stdout).split())
    assert table.rc == 1 and "node n3 compute" in flat and "NodeName=n3 State=DRAIN" in flat

    # --drain runs scontrol (here a stand-in that records its arguments)
    fake = workdir / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {workdir}/drained\n")
    (fake / "scontrol").chmod(stat.S_IRWXU)
    res = bench("triage", "--tag", "qual=t1", "--threshold", "0.5", "--drain",
                env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert res.rc == 1 and "drained n3" in res.stderr
    assert (workdir / "drained").read_text().startswith("update NodeName=n3 State=DRAIN Reason=")

    healthy = bench("triage", *[f"latest~{i}" for i in range(4) if i != 1], "--threshold",
                    "0.5")  # without n3 (the run latest~1): three healthy nodes
    assert healthy.rc == 0, healthy.stdout + healthy.stderr
    assert "0 suspect(s)" in " ".join(healthy.stdout.split())
    assert "Reason='bench triage: compute: 1 case(s)" in table.stdout.replace("\n", " ")


def test_triage_bad_input_is_one_line(bench, workdir):
    res = bench("triage")
    assert res.rc == 2 and "--tag" in res.stderr and len(res.err_lines) == 1
    (workdir / "nap.py").write_text(PLUGIN)
    assert bench("run", "--plugin", "nap.py", "-w", "nap", "-p", "us=20", "--budget", "0.2",
                 "-q", "--tag", "nodes=n1").rc == 0
    res = bench("triage", "latest")
    assert res.rc == 2 and "at least 3" in res.stderr and len(res.err_lines) == 1
    res = bench("triage", "--tag", "qual=none")
    assert res.rc == 2 and "no run tagged qual=none" in res.stderr
