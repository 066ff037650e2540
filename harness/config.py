"""Suites: TOML files that expand a matrix of cases, validated before anything runs.

A suite file::

    description = "What this suite is for"
    [timing]                       # defaults for every case (TimingPolicy fields)
    budget = 2.0

    [[matrix]]
    workload = "gemm"              # a name or a list of names
    backend = ["numpy:cpu", "torch:cpu"]
    params = { m = [64, 512], n = 512, k = 512 }   # lists expand, scalars are fixed
    timing = { target_ci = 0.02 }  # overrides for these cases
    exclude = [{ m = 64 }]         # drop the cases that match all these values
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.timing import TimingPolicy
from harness.workload import Case, make_case
from harness.workload import registry as workloads

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUITES_DIR = Path(__file__).parent / "suites"
_TIMING_FIELDS = {f.name: f.type for f in fields(TimingPolicy)}


@dataclass(frozen=True)
class PlannedCase:
    """A case and the timing policy it will be measured with."""

    case: Case
    policy: TimingPolicy


def builtin_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.toml"))}


def suite_description(path: Path) -> str:
    try:
        return str(tomllib.loads(path.read_text()).get("description", ""))
    except (OSError, tomllib.TOMLDecodeError):
        return ""


def timing_policy(base: TimingPolicy, overrides: Mapping[str, Any], where: str) -> TimingPolicy:
    changes = {}
    for key, value in overrides.items():
        if key not in _TIMING_FIELDS:
            raise UserError(f"{where}: unknown timing setting {key!r}; known: "
                            f"{', '.join(_TIMING_FIELDS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise UserError(f"{where}: timing setting {key!r} must be a positive number, "
                            f"got {value!r}")
        is_int = key in ("min_samples", "max_samples")
        if is_int and not float(value).is_integer():
            raise UserError(f"{where}: timing setting {key!r} must be a whole number")
        changes[key] = int(value) if is_int else float(value)
    policy = base.replace(**changes)
    if policy.min_samples > policy.max_samples:
        raise UserError(f"{where}: min_samples ({policy.min_samples}) exceeds max_samples "
                        f"({policy.max_samples})")
    return policy


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def expand(
    workload_names: Sequence[str],
    backends: Sequence[str] | None,
    params: Mapping[str, Sequence[Any]],
    where: str,
    exclude: Iterable[Mapping[str, Any]] = (),
) -> list[Case]:
    """The matrix workloads x backends x parameter lists, as validated cases (order kept)."""
    if not workload_names:
        raise UserError(f"{where}: no workload given; see `bench list workloads`")
    for name in workload_names:
        workloads.get(name)  # unknown names fail here, with the list of known ones
    orphans = [p for p in params if not any(p in workloads.get(w).params for w in workload_names)]
    if orphans:
        options = "; ".join(f"{w}: {', '.join(workloads.get(w).params) or 'none'}"
                            for w in workload_names)
        raise UserError(f"{where}: no selected workload has a parameter {orphans[0]!r} "
                        f"(parameters — {options})")
    exclude = list(exclude)
    cases: list[Case] = []
    for name in workload_names:
        cls = workloads.get(name)
        own = {k: _as_list(v) for k, v in params.items() if k in cls.params}
        chosen = list(backends) if backends else [cls.default_backend]
        if len(workload_names) > 1:  # a mixed selection keeps the pairs that can run
            chosen = [b for b in chosen if b.split(":", 1)[0] in cls.models] or chosen
        keys = list(own)
        for backend in chosen:
            for combo in itertools.product(*(own[k] for k in keys)):
                raw = dict(zip(keys, combo, strict=True))
                case = make_case(name, backend, raw, where)
                values = case.param_dict
                if any(all(values.get(k) == v for k, v in ex.items()) for ex in exclude):
                    continue
                if case not in cases:
                    cases.append(case)
    return cases


def _line_of(text: str, needle: str, after: int = 0) -> int | None:
    for i, line in enumerate(text.splitlines()[after:], start=after + 1):
        if needle in line:
            return i
    return None


def load_suite(ref: str, base: TimingPolicy | None = None) -> tuple[str, list[PlannedCase]]:
    """Load a built-in suite by name or a TOML file by path; every case validated."""
    suites = builtin_suites()
    path = suites.get(ref) or Path(ref)
    if not path.is_file():
        raise UserError(f"unknown suite {ref!r}: not a built-in ({', '.join(suites)}) "
                        "and no such file")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        loc = f"{path}:{m.group(1)}:{m.group(2)}" if m else str(path)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise UserError(f"{loc}: malformed TOML: {msg}") from None
    unknown = sorted(set(data) - {"description", "timing", "matrix"})
    if unknown:
        line = _line_of(text, unknown[0])
        raise UserError(f"{path}:{line or 1}: unknown suite key {unknown[0]!r}; "
                        "expected description, timing, matrix")
    policy = timing_policy(base or TimingPolicy(), data.get("timing", {}), f"{path} [timing]")
    matrix = data.get("matrix")
    if not isinstance(matrix, list) or not matrix:
        raise UserError(f"{path}: a suite needs at least one [[matrix]] table")
    planned: list[PlannedCase] = []
    starts = [i for i, ln in enumerate(text.splitlines()) if ln.strip() == "[[matrix]]"]
    for index, entry in enumerate(matrix):
        start = starts[index] if index < len(starts) else 0
        where = f"{path}:{start + 1} [[matrix]] #{index + 1}"
        extra = sorted(set(entry) - {"workload", "backend", "params", "timing", "exclude"})
        if extra:
            line = _line_of(text, extra[0], start) or start + 1
            raise UserError(f"{path}:{line}: unknown key {extra[0]!r} in [[matrix]]; expected "
                            "workload, backend, params, timing, exclude")
        if "workload" not in entry:
            raise UserError(f"{where}: missing 'workload'")
        names = [str(w) for w in _as_list(entry["workload"])]
        for name in names:
            if name not in workloads:
                line = _line_of(text, name, start) or start + 1
                raise UserError(f"{path}:{line}: {workloads.unknown(name)}")
        backends = [str(b) for b in _as_list(entry["backend"])] if "backend" in entry else None
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise UserError(f"{where}: 'params' must be a table, e.g. params = {{ m = [64, 128] }}")
        case_policy = timing_policy(policy, entry.get("timing", {}), where)
        try:
            cases = expand(names, backends, params, where, _as_list(entry.get("exclude", [])))
        except UserError as exc:
            # Point at the offending line where the message names a value we can find.
            m = re.search(r"parameter '([^']+)'", str(exc))
            line = _line_of(text, m.group(1), start) if m else None
            if line:
                raise UserError(str(exc).replace(where, f"{path}:{line}", 1)) from None
            raise
        planned.extend(PlannedCase(c, case_policy) for c in cases)
    return path.stem, planned
