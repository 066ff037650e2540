"""Turning what a user typed (run ids, prefixes, latest~N, tag:k=v, run files) into stored runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError
from results import definition
from results.compare import Comparison, compare, environment_diff, round_spread
from results.noise_floor import floor_warning, latest_floors
from results.runfile import PART, SUFFIX, read_run_file
from results.store import Store

if TYPE_CHECKING:
    from results.stored import StoredMeasurement, StoredRun


def resolve_run(store: Store, ref: str) -> str:
    """A run id; a run file given by path is ingested first (idempotently)."""
    path = Path(ref)
    if ref.endswith((SUFFIX, PART)) or path.is_file():
        if not path.is_file():
            raise UserError(f"no such run file: {ref}")
        record = read_run_file(path)
        store.ingest(record)
        return record.run_id
    return store.resolve(ref)


@dataclass
class RunComparison:
    comparison: Comparison
    base: StoredRun
    head: StoredRun
    env_diff: list[tuple[str, Any, Any]]
    warnings: list[str] = field(default_factory=list)
    definition_changed: list[str] = field(default_factory=list)  # cases left out: see definition

    def to_dict(self) -> dict[str, Any]:
        """The machine-readable form (`bench compare --format json`, bench serve's API)."""
        result = self.comparison
        return {
            "base": {"run_id": self.base.run_id, "started_at": self.base.started_at},
            "head": {"run_id": self.head.run_id, "started_at": self.head.started_at},
            "threshold": result.threshold, "fdr": result.fdr, "counts": result.counts(),
            "cases": [c.to_dict() for c in result.worst_first()],
            "only_base": result.only_base, "only_head": result.only_head,
            "definition_changed": self.definition_changed,
            "environment_diff": [{"key": k, "base": b, "head": h} for k, b, h in self.env_diff],
            "warnings": self.warnings,
        }


def busy_warning(measurements: list[StoredMeasurement], run: StoredRun,
                 label: str) -> str | None:
    """A warning when the machine was busier than its cores during the run's cases."""
    loads = [v for m in measurements if m.timing is not None
             for v in (m.timing.load_before, m.timing.load_after)
             if isinstance(v, (int, float))]
    cores = ((run.env or {}).get("cpu") or {}).get("usable_cores")
    if not loads or not cores or max(loads) <= cores + 0.5:
        return None
    return (f"{label} ran on a busy machine (1-minute load average up to {max(loads):.1f} on "
            f"{cores} usable cores): differences may be the machine's, not the code's")


def timed_apart_warning(base: list[StoredMeasurement], head: list[StoredMeasurement],
                        keys: list[str]) -> str | None:
    """A warning for cases one run timed in steady-state blocks and the other singly: their
    ratio sets a single-call median against a cost per call back to back."""
    def steady(measurements: list[StoredMeasurement]) -> dict[str, bool]:
        return {m.case_key: "steady_state" in str(m.timing.block_rule if m.timing else None)
                for m in measurements}

    b, h = steady(base), steady(head)
    apart = [k for k in keys if k in b and k in h and b[k] != h[k]]
    if not apart:
        return None
    shown = ", ".join(apart[:3]) + (f" and {len(apart) - 3} more" if len(apart) > 3 else "")
    return (f"{len(apart)} case(s) timed differently in the two runs (single calls in one, "
            f"back-to-back blocks in the other: their calls changed character): {shown}")


def unpaired_warning(base: StoredRun, head: StoredRun, base_ms: list[StoredMeasurement],
                     head_ms: list[StoredMeasurement], keys: list[str]) -> str | None:
    """Unpaired runs cannot resolve changes below how far cases move between runs; say so."""
    b_tags, h_tags = base.tags or {}, head.tags or {}
    if b_tags.get("ab") and b_tags.get("ab") == h_tags.get("ab"):
        return None  # the two sides of one `bench ab`
    wanted = set(keys)
    spreads = [v for m in (*base_ms, *head_ms) if m.case_key in wanted and m.timing is not None
               if (v := round_spread(m.timing.extra.get("round_medians_s"))) is not None]
    if spreads:
        spreads.sort()
        seen = (f"here cases moved by a median {spreads[len(spreads) // 2]:.1%} (up to "
                f"{spreads[-1]:.1%}) between rounds")
    else:
        seen = "measured without --rounds, these runs cannot show how far cases move"
    return (f"unpaired runs: on a shared machine they cannot resolve changes below the runs' "
            f"between-round spread ({seen}); for a verdict that holds, measure both sides in "
            "one paired run with `bench ab`")


def compare_runs(store: Store, base_ref: str, head_ref: str, threshold: float = 0.05,
                 fdr: float = 0.05, *, files: bool = True) -> RunComparison:
    """Compare two runs; with files=False (a server's request) a reference is never read as a
    run file, only as a stored run (id, prefix, latest~N, tag:KEY=VALUE)."""
    if not 0 < threshold < 1:
        raise UserError(f"--threshold must be a fraction between 0 and 1, got {threshold}")
    if not 0 < fdr < 1:
        raise UserError(f"--fdr must be a fraction between 0 and 1, got {fdr}")
    resolve = (lambda ref: resolve_run(store, ref)) if files else store.resolve
    base_id, head_id = resolve(base_ref), resolve(head_ref)
    base, head = store.run(base_id), store.run(head_id)
    base_ms, head_ms = store.measurements([base_id]), store.measurements([head_id])
    redefined = definition.changed_cases(base_ms, head_ms)  # not one quantity: left out

    def samples(run_id: str) -> dict[str, Any]:
        return {k: v for k, v in store.case_samples(run_id).items() if k not in redefined}

    result = compare(samples(base_id), samples(head_id), threshold, fdr,
                     base_rounds=store.case_rounds(base_id),
                     head_rounds=store.case_rounds(head_id))
    if not result.cases:
        why = (f", {len(redefined)} measured under another definition"
               if redefined else "")
        raise UserError(f"runs {base_id[:8]} and {head_id[:8]} share no measured case "
                        f"({len(result.only_base)} vs {len(result.only_head)} cases{why}); "
                        "compare runs of the same suite or selection")
    keys = [c.case_key for c in result.cases]
    floor_run, floors = latest_floors(store, str(head.host or ""))
    same = (f"BASE and HEAD are the same run ({base_id[:8]}): every case is compared with "
            "itself, so nothing can change; give two runs, e.g. latest~1 latest"
            if base_id == head_id else None)
    warnings = [w for w in (same,
                            None if same else unpaired_warning(base, head, base_ms, head_ms,
                                                               keys),
                            floor_warning(floor_run, floors, threshold, keys),
                            busy_warning(base_ms, base, "BASE"),
                            busy_warning(head_ms, head, "HEAD"),
                            timed_apart_warning(base_ms, head_ms,
                                                [c.case_key for c in result.cases]))
                if w]
    warnings += definition.changed_warning(redefined)
    return RunComparison(result, base, head,
                         environment_diff(base.env or {}, head.env or {}), warnings,
                         sorted(redefined))
