"""A measurement as a value: what one case gave, how it was taken, and what the workload said.

`Measurement.to_dict()` is the run file's `measurement` record (results/schemas/run-file.schema
.json) and `Measurement.from_dict()` reads any record of any format version back: fields this
version does not name are kept in `extra` and written back unchanged, so a record read and
written again is the same record. `figures()` is the one place a measurement's summary and
metrics are derived from its samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from harness.stats import Summary, summarize
from harness.workmodel import Work, derive_metrics

OK, FAILED = "ok", "failed"


def _named(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in ("extra", "absent"))


def _split(cls: type, d: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = _named(cls)
    return ({k: d[k] for k in names if k in d}, {k: v for k, v in d.items() if k not in names})


@dataclass
class TimingRecord:
    """How the figure was taken: the stopping rule's verdict, the block, the costs around it
    (None: not known to the engine that took it). Launch facts (ranks, rounds, profile,
    `bench ab`'s pairing) are in `extra`."""

    stop_reason: str | None = None
    block: int | None = None
    block_rule: str | None = None
    single_call_s: float | None = None
    back_to_back_call_s: float | None = None
    setup_s: float | None = None
    first_call_s: float | None = None
    compile_s: float | None = None
    warmup_s: float | None = None
    warmup_calls: int | None = None
    overhead_s: float | None = None
    policy: dict[str, Any] | None = None
    load_before: float | None = None
    load_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # named fields a record read back did not have (an older writer): not written back either
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in _named(TimingRecord) if k not in self.absent},
                **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TimingRecord:
        named, extra = _split(cls, d)
        return cls(**named, extra=extra, absent=frozenset(_named(cls)) - set(named))


@dataclass
class Measurement:
    """One case's measurement: its samples (seconds per unit of work), their summary and the
    metrics derived from them, or, for a failed case, why it failed."""

    case_key: str
    workload: str
    backend: str
    params: dict[str, Any]
    started_at: str | None = None
    status: str = OK
    error: str | None = None
    work: dict[str, Any] | None = None
    summary: Summary | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    timing: TimingRecord | None = None
    info: dict[str, Any] | None = None
    samples: list[float] | None = None
    device_samples: list[float] | None = None
    finished_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def fail(self, error: str, finished_at: str | None = None) -> Measurement:
        """This measurement marked failed (its figures, if any, kept to show why)."""
        self.status, self.error = FAILED, error
        if finished_at is not None:
            self.finished_at = finished_at
        return self

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"case_key": self.case_key, "workload": self.workload,
                             "backend": self.backend, "params": self.params,
                             "started_at": self.started_at, "status": self.status,
                             "error": self.error}
        if self.work is not None:
            d["work"] = self.work
        if self.summary is not None:
            d.update(summary=self.summary.to_dict(), metrics=self.metrics)
        elif self.metrics:
            d["metrics"] = self.metrics
        if self.timing is not None:
            d["timing"] = self.timing.to_dict()
        if self.summary is not None:
            d.update(info=self.info, samples=self.samples, device_samples=self.device_samples)
        elif self.info is not None:
            d["info"] = self.info
        if self.finished_at is not None:
            d["finished_at"] = self.finished_at
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        named, extra = _split(cls, {k: v for k, v in d.items() if k != "kind"})
        raw = named.pop("summary", None)
        timing = named.pop("timing", None)
        try:
            summary = Summary.from_dict(raw) if raw is not None else None
        except TypeError:  # a partial summary (pytest-benchmark's own statistics): kept as is
            summary, extra = None, {"summary": raw, **extra}
        return cls(**{**named, "metrics": dict(named.get("metrics") or {})}, summary=summary,
                   timing=TimingRecord.from_dict(timing) if timing is not None else None,
                   extra=extra)


def figures(samples: Sequence[float], device_samples: Sequence[float] | None, work: Work,
            workload: Any, params: Mapping[str, Any],
            info: Mapping[str, Any] | None) -> tuple[Summary, dict[str, float]]:
    """The summary of `samples` and every metric derived from it: the work model's, the device
    time's, and the workload's own (`Workload.extra_metrics`)."""
    summary = summarize(list(samples))
    metrics = derive_metrics(summary, work)
    if device_samples:
        metrics["device_latency_s"] = summarize(list(device_samples)).median
    metrics.update(workload.extra_metrics(params, summary.median, info or {}))
    return summary, metrics
