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
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.files import not_a_file
from harness.timing import TimingPolicy
from harness.workload import Case, make_case
from harness.workload import registry as workloads

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUITES_DIR = Path(__file__).parent / "suites"
_TIMING_FIELDS = {f.name: f.type for f in fields(TimingPolicy)}
_ZERO_ALLOWED = {"min_block_time"}  # 0 turns the rule off
# The largest sensible value of each setting: beyond it a case would run for days (min_samples
# is taken whatever the budget) or a fraction would exceed the whole.
_TIMING_MAX: dict[str, float] = {
    "target_ci": 1.0, "budget": 86400.0, "warmup_budget": 86400.0, "min_samples": 1_000_000,
    "max_samples": 1_000_000_000, "warmup_min_time": 3600.0, "min_time": 86400.0,
    "overhead_frac": 1.0, "min_block_time": 60.0, "rounds": 20,
}


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
    if not isinstance(overrides, Mapping):
        raise UserError(f"{where}: timing must be a table of settings, e.g. "
                        f"{{ budget = 2.0 }}; got {overrides!r}")
    changes = {}
    for key, value in overrides.items():
        if key not in _TIMING_FIELDS:
            raise UserError(f"{where}: unknown timing setting {key!r}; known: "
                            f"{', '.join(_TIMING_FIELDS)}")
        may_be_zero = key in _ZERO_ALLOWED
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value < 0 or (value == 0 and not may_be_zero)):
            kind = "a number >= 0" if may_be_zero else "a positive number"
            raise UserError(f"{where}: timing setting {key!r} must be {kind}, got {value!r}")
        limit = _TIMING_MAX.get(key)
        if limit is not None and value > limit:
            raise UserError(f"{where}: timing setting {key!r} must be at most {limit:g}, got "
                            f"{value!r}")
        is_int = key in ("min_samples", "max_samples", "rounds")
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
    empty = [p for p, v in params.items() if isinstance(v, (list, tuple)) and not v]
    if empty:
        raise UserError(f"{where}: parameter {empty[0]!r} has an empty list of values")
    exclude = list(exclude)
    for ex in exclude:
        if not isinstance(ex, Mapping):
            raise UserError(f"{where}: each exclude entry must be a table such as "
                            f"{{ m = 64 }}; got {ex!r}")
        stray = [k for k in ex if not any(k in workloads.get(w).params for w in workload_names)]
        if stray:
            raise UserError(f"{where}: exclude names parameter {stray[0]!r}, which no "
                            "selected workload has")
    cases: list[Case] = []
    for name in workload_names:
        cls = workloads.get(name)
        own = {k: _as_list(v) for k, v in params.items() if k in cls.params}
        chosen = list(backends) if backends else [cls.default_backend]
        if len(workload_names) > 1:  # a mixed selection keeps the pairs that can run
            chosen = [b for b in chosen if cls.runs_on(b.split(":", 1)[0])] or chosen
        keys = list(own)
        # Exclude values are parsed like parameter values, so 1MiB matches 1048576.
        own_ex = [{k: cls.params[k].parse(v, f"{where}: exclude {name} parameter {k!r}")
                   for k, v in ex.items()} for ex in exclude if all(k in cls.params for k in ex)]
        for backend in chosen:
            for combo in itertools.product(*(own[k] for k in keys)):
                raw = dict(zip(keys, combo, strict=True))
                case = make_case(name, backend, raw, where)
                values = case.param_dict
                if any(all(values.get(k) == v for k, v in ex.items()) for ex in own_ex):
                    continue
                if case not in cases:
                    cases.append(case)
    return cases


def _line_of(text: str, needle: str, after: int = 0, *, key: bool = False) -> int | None:
    """1-based number of the first line from line index `after` on that holds `needle`, as a
    TOML key (`needle =`) when `key`, else preferably as a quoted value; comments skipped."""
    if key:
        patterns = [re.compile(rf"(?:^|[{{,\s])[\"']?{re.escape(needle)}[\"']?\s*=")]
    else:
        patterns = [re.compile(rf"[\"']{re.escape(needle)}[\"']"), re.compile(re.escape(needle))]
    lines = text.splitlines()[after:]
    for pattern in patterns:
        for i, line in enumerate(lines, start=after + 1):
            if not line.lstrip().startswith("#") and pattern.search(line):
                return i
    return None


def _repoint(exc: UserError, where: str, path: Path, text: str, start: int) -> UserError:
    """The error with `where` replaced by file:line of the key or value it names, if found."""
    msg = str(exc)
    m = re.search(r"(?:parameter|setting) '([^']+)'", msg)
    line = _line_of(text, m.group(1), start, key=True) if m else None
    if line is None:
        m = re.search(r"backend '([^']+)'", msg)
        line = _line_of(text, m.group(1), start) if m else None
    if line is None or where not in msg:
        return exc
    return UserError(msg.replace(where, f"{path}:{line}", 1))


def load_suite(ref: str, base: TimingPolicy | None = None) -> tuple[str, list[PlannedCase]]:
    """Load a built-in suite by name or a TOML file by path; every case validated."""
    suites = builtin_suites()
    path = suites.get(ref) or Path(ref)
    if not path.is_file():
        raise UserError(f"unknown suite {ref!r}: not a built-in ({', '.join(suites)}) "
                        f"and {not_a_file(path)}; give a suite name or a .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not a UTF-8 text file; a suite is TOML text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        loc = f"{path}:{m.group(1)}:{m.group(2)}" if m else str(path)
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise UserError(f"{loc}: malformed TOML: {msg}") from None
    unknown = sorted(set(data) - {"description", "timing", "matrix"})
    if unknown:
        line = _line_of(text, unknown[0], key=True)
        raise UserError(f"{path}:{line or 1}: unknown suite key {unknown[0]!r}; "
                        "expected description, timing, matrix")
    lines = text.splitlines()
    t_start = next((i for i, ln in enumerate(lines) if re.match(r"\s*\[\s*timing\s*\]", ln)),
                   (_line_of(text, "timing", key=True) or 1) - 1)
    where = f"{path}:{t_start + 1} [timing]"
    try:
        policy = timing_policy(base or TimingPolicy(), data.get("timing", {}), where)
    except UserError as exc:
        raise _repoint(exc, where, path, text, t_start) from None
    matrix = data.get("matrix")
    if not isinstance(matrix, list) or not matrix:
        line = _line_of(text, "matrix", key=True) or 1
        raise UserError(f"{path}:{line}: a suite needs at least one [[matrix]] table")
    planned: list[PlannedCase] = []
    seen: set[Case] = set()
    starts = [i for i, ln in enumerate(lines) if re.match(r"\s*\[\[\s*matrix\s*\]\]", ln)]
    inline = (_line_of(text, "matrix", key=True) or 1) - 1  # matrix = [{...}, ...]
    for index, entry in enumerate(matrix):
        start = starts[index] if index < len(starts) else inline
        where = f"{path}:{start + 1} [[matrix]] #{index + 1}"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: each matrix entry must be a table with a workload")
        extra = sorted(set(entry) - {"workload", "backend", "params", "timing", "exclude"})
        if extra:
            line = _line_of(text, extra[0], start, key=True) or start + 1
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
        try:
            case_policy = timing_policy(policy, entry.get("timing", {}), where)
            cases = expand(names, backends, params, where, _as_list(entry.get("exclude", [])))
        except UserError as exc:
            # Point at the offending line where the message names a key or value we can find.
            raise _repoint(exc, where, path, text, start) from None
        # A case that an earlier matrix already plans is measured once, with the first policy.
        planned.extend(PlannedCase(c, case_policy) for c in cases if c not in seen)
        seen.update(cases)
    return path.stem, planned
