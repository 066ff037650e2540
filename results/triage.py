"""Triage: the nodes and links of a cluster held against each other, to find the bad ones.

Input: measurements of the same cases made on different nodes (single-node runs: the unit is the
node) or between node pairs (two-node runs: the unit is the link, written `A--B`), each with its
raw samples (times, lower is better). Per case and unit:

- the test: a one-sided Mann-Whitney rank test of the unit's samples, divided by
  (1 + threshold), against the samples of the other units of the case (less those that are
  themselves beyond the threshold from the median unit): a unit is slower only
  when its times are larger than the others' by more than the threshold, most of the time —
  a rank test, so one very slow unit does not drag a location and scale along (as a mean and
  standard deviation would) and make healthy units look fast or slow;
- the effect: the unit's median over the median of the other units' medians (robust);
- the false-discovery rate is held across every unit x case test (Benjamini-Hochberg q-values).

A unit is slow in a case when its q-value is at most `fdr`, its median is beyond the threshold,
and so is the median of at least two thirds of its runs (`runs_beyond`): samples within a run
are not independent, and a run disturbed throughout (another job on the node for a moment)
must not make a healthy node a suspect. Going over the nodes two or three times
(`bench submit --repeat 3`) is what lets this rule tell a slow node from a disturbed run.

A node whose links are all slow in a case (it has at least two there) takes the blame for them:
the node is the suspect, its links are not listed apart. Suspects are ranked by their smallest
q-value, then by how much slower. Pure: no store, no I/O.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LINK_SEP = "--"
MAX_SAMPLES = 2000  # per unit and case: evenly thinned beyond this (the test's cost)
NODE, LINK = "node", "link"


def q_text(q: float) -> str:
    """A q-value as shown: 2 significant digits; one that underflowed, as a bound."""
    return f"{q:.2g}" if q > 0 else "<1e-300"


def link_name(a: str, b: str) -> str:
    return LINK_SEP.join(sorted((a, b)))


def link_nodes(link: str) -> tuple[str, ...]:
    return tuple(link.split(LINK_SEP))


@dataclass(frozen=True)
class Observation:
    """One measurement: a case on a unit (a node, or a link `A--B`)."""

    case_key: str
    unit: str
    median: float
    samples: tuple[float, ...] = ()
    run_id: str = ""

    @property
    def kind(self) -> str:
        return LINK if LINK_SEP in self.unit else NODE


@dataclass
class Test:
    case_key: str
    unit: str
    kind: str
    median: float  # the unit's: the median of its runs' medians
    others_median: float  # median of the other units' medians
    ratio: float  # median / others_median
    p: float
    runs: int = 1  # the unit's runs of the case
    runs_beyond: int = 1  # of them, those whose median is beyond the threshold
    q: float = 1.0
    slow: bool = False

    @property
    def consistent(self) -> bool:
        """Slower in at least two thirds of its runs, not in one disturbed run."""
        return self.runs_beyond >= math.ceil(2 * self.runs / 3)

    def to_dict(self) -> dict[str, Any]:
        return {"case_key": self.case_key, "unit": self.unit, "kind": self.kind,
                "median_s": self.median, "others_median_s": self.others_median,
                "ratio": self.ratio, "p": self.p, "q": self.q, "runs": self.runs,
                "runs_beyond": self.runs_beyond, "slow": self.slow}


@dataclass
class Suspect:
    kind: str  # node | link
    name: str
    why: str  # compute (its own runs are slow) | network (its links are slow) | link
    evidence: list[Test] = field(default_factory=list)

    @property
    def q(self) -> float:
        return min(t.q for t in self.evidence)

    @property
    def worst_ratio(self) -> float:
        return max(t.ratio for t in self.evidence)

    def summary(self) -> str:
        cases = sorted({t.case_key for t in self.evidence})
        shown = ", ".join(cases[:3]) + (f" and {len(cases) - 3} more" if len(cases) > 3 else "")
        return (f"{self.why}: {len(cases)} case(s) up to {self.worst_ratio:.2f}x slower than "
                f"the others (q={q_text(self.q)}): {shown}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "why": self.why, "q": self.q,
                "worst_ratio": self.worst_ratio, "summary": self.summary(),
                "evidence": [t.to_dict() for t in self.evidence]}


@dataclass
class Triage:
    tests: list[Test]
    suspects: list[Suspect]
    threshold: float
    fdr: float
    units: dict[str, list[str]]  # kind -> units seen
    skipped: list[str] = field(default_factory=list)  # cases with too few units to compare

    @property
    def suspect_nodes(self) -> list[str]:
        """Suspect nodes, worst first, each once (a node may be slow and have slow links)."""
        return list(dict.fromkeys(s.name for s in self.suspects if s.kind == NODE))

    @property
    def suspect_links(self) -> list[str]:
        return [s.name for s in self.suspects if s.kind == LINK]

    def drain_commands(self) -> list[list[str]]:
        """scontrol commands that drain each suspect node (links are not drained: which end
        is at fault is not known)."""
        out = []
        for node in self.suspect_nodes:
            why = "; ".join(s.summary() for s in self.suspects
                            if s.kind == NODE and s.name == node)
            reason = " ".join(f"bench triage: {why}".split())[:250]
            out.append(["scontrol", "update", f"NodeName={node}", "State=DRAIN",
                        f"Reason={reason}"])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "fdr": self.fdr, "units": self.units,
                "suspects": [s.to_dict() for s in self.suspects],
                "suspect_nodes": self.suspect_nodes, "suspect_links": self.suspect_links,
                "tests": [t.to_dict() for t in self.tests], "skipped": self.skipped}


def q_values(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    return [float(x) for x in out]


def _thin(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.size > MAX_SAMPLES:
        x = x[np.linspace(0, x.size - 1, MAX_SAMPLES).astype(int)]
    return x


def _quantiles(o: Observation, k: int) -> list[float]:
    """k evenly spaced quantiles of an observation's samples (its median alone without)."""
    if not o.samples:
        return [o.median] * k
    return [float(x) for x in np.quantile(o.samples, (np.arange(k) + 0.5) / k)]


def rank_test(slower: Sequence[float], others: Sequence[float], threshold: float) -> float:
    """p-value of 'the times `slower`, divided by 1 + threshold, are stochastically larger
    than `others`' (one-sided Mann-Whitney U; ties counted half)."""
    from scipy.stats import mannwhitneyu

    x, y = _thin(slower) / (1 + threshold), _thin(others)
    if x.size == 0 or y.size == 0:
        return 1.0
    p = float(mannwhitneyu(x, y, alternative="greater").pvalue)
    return p if math.isfinite(p) else 1.0


def triage(observations: Iterable[Observation], threshold: float = 0.1,
           fdr: float = 0.05) -> Triage:
    by_case: dict[str, dict[str, list[Observation]]] = {}
    for o in observations:
        if o.median > 0 and math.isfinite(o.median):
            by_case.setdefault(o.case_key, {}).setdefault(o.unit, []).append(o)
    tests: list[Test] = []
    skipped: list[str] = []
    units: dict[str, set[str]] = {NODE: set(), LINK: set()}
    for case, per_unit in sorted(by_case.items()):
        for kind in (NODE, LINK):
            group = {u: obs for u, obs in per_unit.items() if obs[0].kind == kind}
            if not group:
                continue
            units[kind].update(group)
            if len(group) < 3:  # with two, which one is the odd one out cannot be told
                skipped.append(f"{case} ({len(group)} {kind}s)")
                continue
            # Every run counts alike: each gives the test the same number of samples (its
            # quantiles), and a unit's figure is the median of its runs' medians; pooled raw
            # samples would let the runs that took most samples (the fast ones) decide.
            per_run = min(len(o.samples) or 1 for obs in group.values() for o in obs)
            samples = {u: [s for o in obs for s in _quantiles(o, per_run)]
                       for u, obs in group.items()}
            medians = {u: statistics.median(o.median for o in obs) for u, obs in group.items()}
            # The reference a unit is tested against: the other units, less those that are
            # themselves beyond the threshold from the median unit (in a four-node ring the
            # two links of a bad node are half of all links: tested against a pool holding
            # the other one, each would look only a little slow).
            center = statistics.median(medians.values())
            for u in sorted(group):
                ref = [v for v in group if v != u and medians[v] <= center * (1 + threshold)]
                rest = [s for v in (ref or [v for v in group if v != u]) for s in samples[v]]
                others = statistics.median(m for v, m in medians.items() if v != u)
                beyond = sum(o.median > others * (1 + threshold) for o in group[u])
                tests.append(Test(case, u, kind, medians[u], others, medians[u] / others,
                                  rank_test(samples[u], rest, threshold), len(group[u]),
                                  beyond))
    for t, q in zip(tests, q_values([t.p for t in tests]), strict=True):
        t.q, t.slow = q, q <= fdr and t.ratio > 1 + threshold and t.consistent
    return Triage(tests, _suspects(tests), threshold, fdr,
                  {k: sorted(v) for k, v in units.items() if v}, skipped)


def _suspects(tests: list[Test]) -> list[Suspect]:
    found: dict[tuple[str, str, str], Suspect] = {}

    def add(kind: str, name: str, why: str, evidence: Iterable[Test]) -> None:
        s = found.setdefault((kind, name, why), Suspect(kind, name, why))
        s.evidence.extend(evidence)

    for t in tests:
        if t.slow and t.kind == NODE:
            add(NODE, t.unit, "compute", [t])
    by_case: dict[str, list[Test]] = {}
    for t in tests:
        if t.kind == LINK:
            by_case.setdefault(t.case_key, []).append(t)
    for links in by_case.values():
        explained: set[str] = set()
        nodes = sorted({n for t in links for n in link_nodes(t.unit)})
        for node in nodes:
            mine = [t for t in links if node in link_nodes(t.unit)]
            if len(mine) >= 2 and all(t.slow for t in mine):
                add(NODE, node, "network", mine)
                explained.update(t.unit for t in mine)
        for t in links:
            if t.slow and t.unit not in explained:
                add(LINK, t.unit, "link", [t])
    return sorted(found.values(), key=lambda s: (s.q, -s.worst_ratio, s.kind, s.name))
