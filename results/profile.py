"""What a stored trace says: top operators by self time, their share of the step, rank imbalance.

Pure: reads Chrome trace events (as `bench run --profile` stores them, or any Chrome trace) and
returns plain data; nothing here imports a framework. Times are in seconds.

- *Self time* of an event is its duration less that of the events nested directly inside it on
  the same track (process, thread).
- Operators are grouped by name: torch's aten ops, OpenCL kernel names, XLA fusions, ONNX
  Runtime op types (MatMul, ...; its node names are in the trace).
- The *step* is one profiled iteration: the `accelbench.iteration` events the runner adds (in
  ONNX Runtime traces written before it had them, its own `model_run` events, less the session's
  first). Operators are counted only inside steps; their *share* is their self time over the
  steps' total time.
- *Device time* is used where the trace has it (CUDA kernels and copies, OpenCL kernels, XLA
  device tracks); for XLA on a CPU, the executor threads' events (basis `xla-executor`);
  otherwise host self time. `basis` says which.
- Rank traces (`kind` "ranks"): per rank, the time spent waiting for the others (`wait`) and in
  the operation; the wait share is the imbalance.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.measurement import Measurement

ITERATION = "accelbench.iteration"
STEP_NAMES = (ITERATION, "model_run")
DEVICE_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
# Framework bookkeeping, not operators: ONNX Runtime's session events, torch's step markers.
SKIP_CATS = {"Session", "accelbench", "python_function", "Trace", "ac2g", "cuda_runtime_launch"}
# XLA's thread-pool bookkeeping, and its executor waiting for the threads that run the ops
SKIP_PREFIXES = ("ThreadpoolListener::", "end: ", "ThunkExecutor::Execute (wait")
EPS_US = 1e-3


@dataclass
class OpStat:
    name: str
    category: str
    self_s: float
    count: int
    share: float  # of the steps' total time
    per_step_s: float


@dataclass
class RankStat:
    rank: int
    wait_s: float
    op_s: float
    wait_share: float  # of the rank's profiled time (wait + op)


@dataclass
class ProfileSummary:
    case_key: str
    kind: str
    basis: str  # "device" or "host"
    steps: int
    step_s: float  # mean time of one step
    ops: list[OpStat]
    ranks: list[RankStat] = field(default_factory=list)
    note: str = ""
    trace: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_trace(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Events and accelbench metadata of a Chrome trace file (JSON, optionally gzipped)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    data = json.loads(raw)
    if isinstance(data, list):
        return data, {}
    meta = (data.get("otherData") or {}).get("accelbench") or {}
    return list(data.get("traceEvents") or []), meta


def _complete(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete ('X') events with a duration; B/E pairs become X events."""
    out: list[dict[str, Any]] = []
    open_: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        ph = e.get("ph")
        if ph == "X" and "dur" in e and "ts" in e:
            out.append(e)
        elif ph == "B":
            open_[(e.get("pid"), e.get("tid"))].append(e)
        elif ph == "E" and open_[(e.get("pid"), e.get("tid"))]:
            b = open_[(e.get("pid"), e.get("tid"))].pop()
            out.append({**b, "ph": "X", "dur": float(e["ts"]) - float(b["ts"])})
    return out


def self_times(events: Sequence[dict[str, Any]]) -> list[float]:
    """Self time (us) of each event: its duration less its direct children's on its track."""
    tracks: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        tracks[(e.get("pid"), e.get("tid"))].append(i)
    selfs = [float(e["dur"]) for e in events]
    for idx in tracks.values():
        idx.sort(key=lambda i: (float(events[i]["ts"]), -float(events[i]["dur"])))
        stack: list[tuple[float, int]] = []
        for i in idx:
            ts, dur = float(events[i]["ts"]), float(events[i]["dur"])
            while stack and stack[-1][0] <= ts + EPS_US:
                stack.pop()
            if stack:
                selfs[stack[-1][1]] -= dur
            stack.append((ts + dur, i))
    return [max(0.0, s) for s in selfs]


def _device_pids(events: Iterable[dict[str, Any]]) -> set[Any]:
    return {e.get("pid") for e in events if e.get("ph") == "M" and e.get("name") ==
            "process_name" and str((e.get("args") or {}).get("name", "")).startswith(
                ("/device:GPU", "/device:TPU"))}


def _xla_threads(events: Iterable[dict[str, Any]]) -> set[tuple[Any, Any]]:
    return {(e.get("pid"), e.get("tid")) for e in events if e.get("ph") == "M"
            and e.get("name") == "thread_name"
            and str((e.get("args") or {}).get("name", "")).startswith("tf_XLA")}


def _op_name(e: dict[str, Any]) -> str:
    name = str(e.get("name", "?"))
    if e.get("cat") == "Node":  # ONNX Runtime: one event per graph node; grouped by op type
        return str((e.get("args") or {}).get("op_name") or name.removesuffix("_kernel_time"))
    return name


def summarize(events: Sequence[dict[str, Any]], meta: dict[str, Any] | None = None,
              top: int | None = None) -> ProfileSummary:
    meta = meta or {}
    xs = _complete(events)
    iterations = int(meta.get("iterations") or 0)
    steps = [e for e in xs if e.get("name") == ITERATION]
    if not steps:
        by_pid: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for e in xs:
            if e.get("name") in STEP_NAMES:
                by_pid[e.get("pid")].append(e)
        for marks in by_pid.values():  # ONNX Runtime also traces the session's first run
            marks.sort(key=lambda e: float(e["ts"]))
            steps += marks[-iterations:] if iterations else marks
    windows = sorted((float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in steps)

    def in_step(e: dict[str, Any]) -> bool:
        if not windows:
            return True
        ts = float(e["ts"])
        return any(a - EPS_US <= ts <= b + EPS_US for a, b in windows)

    selfs = self_times(xs)
    dev_pids = _device_pids(events)
    is_device = [e.get("cat") in DEVICE_CATS or e.get("pid") in dev_pids for e in xs]
    basis = "device" if any(is_device) else "host"
    if basis == "host":  # XLA on a CPU: the compiled program runs on XLA's executor threads
        xla = _xla_threads(events)
        is_device = [(e.get("pid"), e.get("tid")) in xla for e in xs]
        basis = "xla-executor" if any(is_device) else "host"
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    cats: dict[str, str] = {}
    for e, s, dev in zip(xs, selfs, is_device, strict=True):
        if (e.get("name") in STEP_NAMES or e.get("cat") in SKIP_CATS
                or str(e.get("name", "")).startswith(SKIP_PREFIXES)):
            continue
        if (basis != "host") != dev or not in_step(e):
            continue
        name = _op_name(e)
        total[name] += s * 1e-6
        count[name] += 1
        cats.setdefault(name, str(e.get("cat", "")))
    step_total = sum(float(e["dur"]) for e in steps) * 1e-6
    denom = step_total or sum(total.values()) or 1.0
    per = len(steps) or max(1, iterations)  # per step (of one rank, in a rank trace)
    ops = sorted((OpStat(n, cats[n], t, count[n], t / denom, t / per) for n, t in total.items()),
                 key=lambda o: -o.self_s)
    ranks = []
    if meta.get("kind") == "ranks" or any(e.get("cat") == "wait" for e in xs):
        wait: dict[Any, float] = defaultdict(float)
        busy: dict[Any, float] = defaultdict(float)
        for e in xs:
            if e.get("cat") == "wait":
                wait[e.get("pid")] += float(e["dur"]) * 1e-6
            elif e.get("cat") == "collective":
                busy[e.get("pid")] += float(e["dur"]) * 1e-6
        for r in sorted(set(wait) | set(busy), key=lambda p: int(p)):
            w, b = wait[r], busy[r]
            ranks.append(RankStat(int(r), w, b, w / (w + b) if w + b > 0 else 0.0))
    return ProfileSummary(
        case_key=str(meta.get("case_key", "")), kind=str(meta.get("kind", "")), basis=basis,
        steps=len(steps), step_s=step_total / len(steps) if steps else 0.0,
        ops=ops[:top] if top else ops, ranks=ranks, note=str(meta.get("note", "")))


def trace_entry(m: Measurement) -> dict[str, Any]:
    """What `bench run --profile` recorded of a measurement's trace ({path} or {error}), or
    {} for a measurement taken without it."""
    return (m.timing.extra.get("profile") if m.timing is not None else None) or {}


def find_trace(recorded: str, run_id: str, run_dir: Path | None) -> Path | None:
    """Where a measurement's trace is now: the path recorded with it, or the run folder's
    traces/ under run_dir (the run folder was moved or copied); None when neither exists."""
    path = Path(recorded)
    if path.is_file():
        return path
    if run_dir is not None and (moved := run_dir / run_id / "traces" / path.name).is_file():
        return moved
    return None


def summarize_file(path: Path, top: int | None = None) -> ProfileSummary:
    events, meta = read_trace(path)
    s = summarize(events, meta, top)
    s.trace = str(path)
    return s


@dataclass
class OpDiff:
    name: str
    a_per_step_s: float | None
    b_per_step_s: float | None
    delta_s: float  # per step, B - A
    ratio: float | None  # B / A
    a_count: int
    b_count: int


@dataclass
class ProfileDiff:
    case_key: str
    basis: str
    a_step_s: float
    b_step_s: float
    ops: list[OpDiff]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff(a: ProfileSummary, b: ProfileSummary, top: int | None = None) -> ProfileDiff:
    """Operator-level differences B - A per step, largest absolute change first."""
    sa, sb = {o.name: o for o in a.ops}, {o.name: o for o in b.ops}
    rows = []
    for name in set(sa) | set(sb):
        x, y = sa.get(name), sb.get(name)
        xa = x.per_step_s if x else None
        yb = y.per_step_s if y else None
        rows.append(OpDiff(name, xa, yb, (yb or 0.0) - (xa or 0.0),
                           (yb / xa) if xa and yb is not None else None,
                           x.count if x else 0, y.count if y else 0))
    rows.sort(key=lambda r: -abs(r.delta_s))
    basis = a.basis if a.basis == b.basis else f"{a.basis} vs {b.basis}"
    return ProfileDiff(a.case_key or b.case_key, basis, a.step_s, b.step_s,
                       rows[:top] if top else rows)


# --- text -------------------------------------------------------------------------------------


def fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    a = abs(s)
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if a >= f:
            return f"{s / f:.4g} {unit}"
    return f"{s / 1e-9:.4g} ns"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def summary_markdown(summaries: Sequence[ProfileSummary]) -> str:
    out = []
    for s in summaries:
        out.append(f"### {_md_escape(s.case_key)}\n")
        out.append(f"{s.kind} trace, {s.steps} profiled step(s) of {fmt_s(s.step_s)}, "
                   f"{s.basis} self time. {_md_escape(s.note)}\n")
        out.append("| operator | self / step | share | count |\n|---|---:|---:|---:|")
        for o in s.ops:
            out.append(f"| {_md_escape(o.name)} | {fmt_s(o.per_step_s)} | {o.share:.1%} | "
                       f"{o.count} |")
        if s.ranks:
            out.append("\n| rank | wait | in the operation | wait share |\n|---:|---:|---:|---:|")
            for r in s.ranks:
                out.append(f"| {r.rank} | {fmt_s(r.wait_s)} | {fmt_s(r.op_s)} | "
                           f"{r.wait_share:.1%} |")
        out.append("")
    return "\n".join(out)


def diff_markdown(diffs: Sequence[ProfileDiff]) -> str:
    out = []
    for d in diffs:
        out.append(f"### {_md_escape(d.case_key)}\n")
        out.append(f"step {fmt_s(d.a_step_s)} -> {fmt_s(d.b_step_s)} "
                   f"({d.basis} self time per step)\n")
        out.append("| operator | A | B | B - A | B / A |\n|---|---:|---:|---:|---:|")
        for o in d.ops:
            ratio = f"{o.ratio:.3g}x" if o.ratio is not None else "-"
            out.append(f"| {_md_escape(o.name)} | {fmt_s(o.a_per_step_s)} | "
                       f"{fmt_s(o.b_per_step_s)} "
                       f"| {fmt_s(o.delta_s)} | {ratio} |")
        out.append("")
    return "\n".join(out)
