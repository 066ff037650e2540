"""References: what a case's metric should be on a system, and holding measurements against it.

A reference file (TOML) names a system (and optionally a partition) and holds expectations, each
for a case key (a glob: `*` and `?` are wildcards, every other character, brackets included, is
literal) and one metric::

    format = 1
    system = "mycluster"
    partition = "gpu"

    [[expect]]
    case = "allreduce[nccl:cuda](*size=1073741824*)"
    metric = "busbw_gbps"
    op = ">="              # ">=": at least (higher is better); "<=": at most (lower is better)
    value = 180.0
    tolerance = "5%"       # or a fraction, 0.05; default 0
    source = "measured: 3 run(s)"

    [[expect]]
    check = "latency_s <= 2.1e-6 ± 10%"   # the same, in one line
    case = "p2p[mpi](*size=8*)"

A case passes when its metric is within the tolerance on the right side of the value:
`>=` passes at measured >= value x (1 - tolerance), `<=` at measured <= value x (1 + tolerance).
`pct_expected` is 100 x measured / value: 100 is what the system should give; for a time below
100 is faster than expected, for a rate above 100 is.

Per case and metric the first expectation in file order that matches applies (write exact keys
before globs). Pure: parsing, matching, judging and writing; no store, no I/O but `load`/`dump`.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.measurement import Measurement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMAT = 1
OPS = (">=", "<=")
PASS, FAIL, MISSING = "pass", "fail", "missing"
_KEYS = {"format", "system", "partition", "description", "expect"}
_ENTRY_KEYS = {"case", "metric", "op", "value", "tolerance", "source", "check"}
_CHECK = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=)\s*(\S+?)\s*"
                    r"(?:(?:±|\+-|\+/-)\s*(\S+)\s*)?$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def lower_is_better(metric: str) -> bool:
    """Times (`*_s`, latency) are better smaller; rates, bandwidths and percentages larger."""
    return metric.endswith("_s") or "latency" in metric


def parse_tolerance(value: Any, where: str) -> float:
    """`5%`, `"5%"` or 0.05 -> 0.05; refused unless a finite fraction in [0, 1)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            frac = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise UserError(f"{where}: tolerance {value!r} is not a percentage such as 5% "
                            "or a fraction such as 0.05") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        frac = float(value)
    else:
        raise UserError(f"{where}: tolerance {value!r} is not a percentage such as 5% or a "
                        "fraction such as 0.05")
    if not math.isfinite(frac) or not 0 <= frac < 1:
        raise UserError(f"{where}: tolerance {value!r} must be at least 0% and below 100%")
    return frac


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A case-key glob: `*` any run of characters, `?` one; everything else literal (case
    keys hold brackets, which fnmatch would read as character classes)."""
    parts = ("." if ch == "?" else ".*" if ch == "*" else re.escape(ch) for ch in pattern)
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


@dataclass(frozen=True)
class Expectation:
    """One case pattern's expected metric: value, direction and relative tolerance."""

    case: str
    metric: str
    op: str
    value: float
    tolerance: float = 0.0
    source: str = ""
    index: int = 0  # its place in the file, from 1 (0: made in code)

    def matches(self, case_key: str) -> bool:
        return bool(glob_regex(self.case).match(case_key))

    @property
    def limit(self) -> float:
        """The value the measurement must not cross."""
        return self.value * (1 - self.tolerance if self.op == ">=" else 1 + self.tolerance)

    def passes(self, measured: float) -> bool:
        return measured >= self.limit if self.op == ">=" else measured <= self.limit

    def pct_expected(self, measured: float) -> float | None:
        return 100.0 * measured / self.value if self.value else None

    def text(self) -> str:
        """`busbw_gbps >= 180 ± 5%`."""
        tol = f" ± {self.tolerance * 100:.4g}%" if self.tolerance else ""
        return f"{self.metric} {self.op} {self.value:.6g}{tol}"

    def to_dict(self) -> dict[str, Any]:
        return {"case": self.case, "metric": self.metric, "op": self.op, "value": self.value,
                "tolerance": self.tolerance, "source": self.source}


@dataclass(frozen=True)
class Reference:
    system: str = ""
    partition: str | None = None
    description: str = ""
    expectations: tuple[Expectation, ...] = ()
    path: str = ""

    def for_case(self, case_key: str, metrics: Iterable[str] | None = None
                 ) -> list[Expectation]:
        """The expectations that apply to a case: per metric, the first matching one."""
        out: dict[str, Expectation] = {}
        for e in self.expectations:
            if e.metric not in out and e.matches(case_key):
                out[e.metric] = e
        if metrics is not None:
            wanted = set(metrics)
            return [e for m, e in out.items() if m in wanted]
        return list(out.values())

    def annotate(self, case_key: str, metrics: Mapping[str, Any]) -> tuple[dict[str, float],
                                                                         dict[str, Any]]:
        """What a measurement stores: ({"pct_expected": ...}, {"expected": {...}}) for the
        first expectation that applies to the case and whose metric it has; ({}, {}) else."""
        for e in self.for_case(case_key):
            value = metrics.get(e.metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                pct = e.pct_expected(float(value))
                if pct is None:
                    continue
                return ({"pct_expected": pct},
                        {"expected": {**e.to_dict(), "reference": self.path,
                                      "system": self.system, "partition": self.partition,
                                      "passes": e.passes(float(value))}})
        return {}, {}


def _entry(raw: Any, i: int, where: str) -> Expectation:
    at = f"{where}: [[expect]] {i}"
    if not isinstance(raw, dict):
        raise UserError(f"{at} is not a table")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise UserError(f"{at}: unknown key {unknown[0]!r}; known: "
                        f"{', '.join(sorted(_ENTRY_KEYS))}")
    case = raw.get("case")
    if not isinstance(case, str) or not case.strip():
        raise UserError(f"{at}: needs case = \"<case key or glob>\"")
    fields = {k: raw[k] for k in ("metric", "op", "value", "tolerance") if k in raw}
    if "check" in raw:
        if fields.keys() - {"tolerance"}:
            raise UserError(f"{at}: give either check = \"METRIC >= VALUE ± TOL\" or "
                            "metric/op/value, not both")
        m = _CHECK.match(str(raw["check"]))
        if not isinstance(raw["check"], str) or m is None:
            raise UserError(f"{at}: check {raw['check']!r} is not like "
                            "\"busbw_gbps >= 180 ± 5%\"")
        fields.update(metric=m.group(1), op=m.group(2), value=m.group(3))
        if m.group(4) is not None:
            fields["tolerance"] = m.group(4)
    metric = fields.get("metric")
    if not isinstance(metric, str) or not _METRIC.match(metric):
        raise UserError(f"{at}: metric must be a metric name such as latency_s, got {metric!r}")
    op = fields.get("op", "<=" if lower_is_better(metric) else ">=")
    if op not in OPS:
        raise UserError(f"{at}: op must be >= or <=, got {op!r}")
    value = fields.get("value")
    try:
        number = float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise UserError(f"{at}: value must be a positive number, got {value!r}")
    tolerance = parse_tolerance(fields.get("tolerance", 0.0), at)
    source = raw.get("source", "")
    if not isinstance(source, str):
        raise UserError(f"{at}: source must be text")
    return Expectation(case, metric, op, number, tolerance, source, i)


def parse(data: Mapping[str, Any], where: str) -> Reference:
    """A reference from parsed TOML; anything malformed is one UserError naming the place."""
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(_KEYS))}")
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        raise UserError(f"{where}: format {fmt!r} is not one this accelbench reads ({FORMAT})")
    for key in ("system", "partition", "description"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"{where}: {key!r} must be text")
    entries = data.get("expect", [])
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{where}: no expectations; add [[expect]] tables (case, metric, op, "
                        "value, tolerance)")
    return Reference(system=data.get("system", ""), partition=data.get("partition"),
                     description=data.get("description", ""),
                     expectations=tuple(_entry(e, i, where) for i, e in enumerate(entries, 1)),
                     path=where)


def load(path: Path | str) -> Reference:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no reference file {path}; make one with `bench reference create`")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; a reference file is TOML") from None
    except OSError as exc:
        raise UserError(f"cannot read reference file {path}: {exc.strerror}") from None
    return parse(data, str(path))


# -- writing (TOML, by hand: no writer in the standard library) -----------------------------------


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(float(v))
    return _toml_str(str(v))


def dump(ref: Reference) -> str:
    """The reference as TOML text that `parse(tomllib.loads(...))` reads back the same."""
    lines = ["# accelbench reference: bench check RUN... --reference THIS_FILE",
             f"format = {FORMAT}", f"system = {_toml_str(ref.system)}"]
    if ref.partition:
        lines.append(f"partition = {_toml_str(ref.partition)}")
    if ref.description:
        lines.append(f"description = {_toml_str(ref.description)}")
    for e in ref.expectations:
        lines += ["", "[[expect]]", f"# {e.text()}", f"case = {_toml_str(e.case)}",
                  f"metric = {_toml_str(e.metric)}", f"op = {_toml_str(e.op)}",
                  f"value = {_toml_value(e.value)}", f"tolerance = {_toml_value(e.tolerance)}"]
        if e.source:
            lines.append(f"source = {_toml_str(e.source)}")
    return "\n".join(lines) + "\n"


# -- making references ----------------------------------------------------------------------------


def _ci_rel(m: Measurement) -> float:
    s = m.summary
    return s.ci_rel if s is not None and s.median else 0.0


def from_measurements(rows: Sequence[Measurement], metrics: Sequence[str],
                      tolerance: float, n_runs: int) -> list[Expectation]:
    """Per case and metric, the median of the runs' values (each a run's median), with the
    tolerance at least the runs' own spread (the largest distance of a run's value from that
    median, and each measurement's 95% CI of the median), relative."""
    by: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for m in rows:
        if not m.ok:
            continue
        for metric in metrics:
            v = m.metrics.get(metric)
            if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
                by.setdefault((m.case_key, metric), []).append((float(v), _ci_rel(m)))
    out = []
    for (case, metric), values in sorted(by.items()):
        vals = [v for v, _ in values]
        med = statistics.median(vals)
        spread = max([abs(v / med - 1) for v in vals] + [ci for _, ci in values])
        tol = min(max(tolerance, math.ceil(spread * 1000) / 1000), 0.99)
        out.append(Expectation(case, metric, "<=" if lower_is_better(metric) else ">=", med,
                               tol, f"measured: median of {len(vals)} value(s) from "
                                    f"{n_runs} run(s)"))
    return out


def from_peaks(rows: Sequence[Measurement], floor_pct: float) -> list[Expectation]:
    """`pct_peak >= floor` for every case measured with a peak (compute workloads)."""
    cases = sorted({m.case_key for m in rows
                    if m.ok and isinstance(m.metrics.get("pct_peak"), (int, float))})
    return [Expectation(c, "pct_peak", ">=", floor_pct, 0.0,
                        f"peaks: floor of {floor_pct:g}% of peak") for c in cases]


def from_model(rows: Sequence[Measurement], predict: Any, tolerance: float,
               fabric: str) -> list[Expectation]:
    """`time_s <= predicted` for collective measurements, `predict(workload, ranks, bytes)`
    being the fabric model's time (None where it has none)."""
    out: dict[str, Expectation] = {}
    for m in rows:
        metrics = m.metrics
        if not m.ok or "time_s" not in metrics or m.case_key in out:
            continue
        ranks, size = metrics.get("ranks"), metrics.get("size_bytes")
        if ranks is None or size is None:
            continue
        t = predict(m.workload, int(ranks), float(size))
        if t is not None and t > 0:
            out[m.case_key] = Expectation(
                m.case_key, "time_s", "<=", float(t), tolerance,
                f"model: {fabric} at {int(ranks)} ranks, {int(size)} B")
    return [out[k] for k in sorted(out)]


# -- checking -------------------------------------------------------------------------------------


@dataclass
class CheckRow:
    case_key: str
    status: str  # pass | fail | missing (no expectation covers the case)
    expectation: Expectation | None = None
    measured: float | None = None
    n: int = 0  # measurements (runs) behind `measured`
    why: str = ""

    @property
    def pct_expected(self) -> float | None:
        if self.expectation is None or self.measured is None:
            return None
        return self.expectation.pct_expected(self.measured)

    def to_dict(self) -> dict[str, Any]:
        e = self.expectation
        return {"case_key": self.case_key, "status": self.status,
                "metric": e.metric if e else None, "op": e.op if e else None,
                "expected": e.value if e else None, "tolerance": e.tolerance if e else None,
                "limit": e.limit if e else None, "measured": self.measured,
                "pct_expected": self.pct_expected, "n": self.n, "why": self.why,
                "source": e.source if e else None}


@dataclass
class CheckResult:
    reference: Reference
    rows: list[CheckRow] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {PASS: 0, FAIL: 0, MISSING: 0}
        for r in self.rows:
            out[r.status] += 1
        return out

    @property
    def failed(self) -> list[CheckRow]:
        return [r for r in self.rows if r.status == FAIL]

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference.path, "system": self.reference.system,
                "partition": self.reference.partition, "counts": self.counts(),
                "rows": [r.to_dict() for r in self.rows]}


def check(ref: Reference, rows: Sequence[Measurement]) -> CheckResult:
    """Hold measurements (of one or more runs) against a reference. Per case and metric the
    measured value is the median over the runs' measurements of it. An expectation that
    matches no case, or a metric a matched (successful) case lacks, is a UserError: the
    reference does not describe these runs."""
    cases: dict[str, list[Measurement]] = {}
    for m in rows:
        cases.setdefault(m.case_key, []).append(m)
    used: set[int] = set()
    out: list[CheckRow] = []
    for key in sorted(cases):
        ms = cases[key]
        applies = ref.for_case(key)
        if not applies:
            out.append(CheckRow(key, MISSING, why="no expectation in the reference covers it",
                                n=len(ms)))
            continue
        ok = [m for m in ms if m.ok]
        for e in applies:
            used.add(id(e))
            if not ok:
                errors = "; ".join(sorted({str(m.error or m.status) for m in ms}))
                out.append(CheckRow(key, FAIL, e, None, 0, f"measurement failed: {errors}"))
                continue
            values = [m.metrics.get(e.metric) for m in ok]
            if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
                have = sorted(ok[0].metrics)
                raise UserError(f"{ref.path}: [[expect]] {e.index} wants {e.metric!r} but case "
                                f"{key} has no such metric (it has: {', '.join(have)})")
            measured = statistics.median(float(v) for v in values)  # type: ignore[arg-type]
            passed = e.passes(measured)
            out.append(CheckRow(key, PASS if passed else FAIL, e, measured, len(values),
                                "" if passed else f"{e.metric} {measured:.6g} is beyond "
                                f"{e.op} {e.limit:.6g} ({e.text()})"))
    unused = [e for e in ref.expectations if id(e) not in used]
    # an expectation shadowed for every case it matches (an earlier one for the same metric
    # applies) is not unmatched: only those that match no case at all are refused.
    unmatched = [e for e in unused if not any(e.matches(k) for k in cases)]
    if unmatched:
        e = unmatched[0]
        more = f" (and {len(unmatched) - 1} more)" if len(unmatched) > 1 else ""
        raise UserError(f"{ref.path}: [[expect]] {e.index} (case {e.case!r}, {e.text()}) "
                        f"matches no case of the runs{more}; check the case keys with "
                        "`bench show RUN`")
    return CheckResult(ref, out)


def junit_xml(result: CheckResult, name: str = "bench check") -> str:
    """JUnit XML (one testsuite, a testcase per case and metric) for CI systems."""
    import xml.etree.ElementTree as ET

    counts = result.counts()
    suite = ET.Element("testsuite", {
        "name": name + (f": {result.reference.system}" if result.reference.system else ""),
        "tests": str(len(result.rows)), "failures": str(counts[FAIL]),
        "errors": "0", "skipped": str(counts[MISSING])})
    props = ET.SubElement(suite, "properties")
    for k, v in (("reference", result.reference.path), ("system", result.reference.system),
                 ("partition", result.reference.partition or "")):
        ET.SubElement(props, "property", {"name": k, "value": v})
    for r in result.rows:
        e = r.expectation
        case = ET.SubElement(suite, "testcase", {
            "classname": r.case_key.split("[", 1)[0],
            "name": r.case_key + (f" {e.metric}" if e else ""), "time": "0"})
        if r.status == FAIL:
            ET.SubElement(case, "failure", {"message": r.why, "type": "below reference"
                                            if e and e.op == ">=" else "above reference"}
                          ).text = r.why
        elif r.status == MISSING:
            ET.SubElement(case, "skipped", {"message": r.why})
        if e is not None and r.measured is not None:
            ET.SubElement(case, "system-out").text = (
                f"expected {e.text()}, measured {r.measured:.6g} "
                f"({r.pct_expected:.1f}% of expected)")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
