"""What the store hands out: its runs, cases and measurements as immutable values.

A stored measurement is a `harness.measurement.Measurement` (what the run file held, less the
raw samples, which `Store.samples_of` reads on demand) plus the keys the store gave it: its
row id, its run and its place in that run. A stored run is the `runs` row: the store keeps
less of a run than `harness.run.Run` carries (no pid, launcher, world size or format version;
git as a revision and a dirty flag) and adds the number of measurements, so it is a record of
its own rather than a `Run` with invented fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.measurement import OK, Measurement, TimingRecord
from harness.stats import Summary
from results.schema import SUMMARY_COLUMNS


@dataclass(frozen=True)
class StoredRun:
    """A row of the `runs` table; `env` is the run's environment fingerprint where it was read
    with it (`Store.run`), else None."""

    run_id: str
    started_at: str
    finished_at: str | None
    status: str
    command: str
    suite: str | None
    git_revision: str | None
    git_dirty: bool | None
    slurm_job_id: str | None
    host: str | None
    env_hash: str | None
    tags: dict[str, Any]
    harness_version: str | None
    n_measurements: int
    env: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredRun:
        return cls(**{k: row[k] for k in _RUN_COLUMNS}, env=row.get("env"))

    def to_dict(self) -> dict[str, Any]:
        """The `runs` row (without `env`), in the table's column order: `bench runs --json`."""
        return {k: getattr(self, k) for k in _RUN_COLUMNS}


_RUN_COLUMNS = tuple(f.name for f in fields(StoredRun) if f.name != "env")


@dataclass(frozen=True)
class StoredCase:
    """A row of the `cases` table: what a case key stands for."""

    case_key: str
    workload: str
    backend: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"case_key": self.case_key, "workload": self.workload, "backend": self.backend,
                "params": self.params}


@dataclass(frozen=True)
class StoredMeasurement:
    """A measurement as the store holds it: the `Measurement` (samples not read) and the
    store's keys. The measurement is shared, not copied: treat it as read-only."""

    measurement_id: int
    run_id: str
    seq: int
    run_started_at: str
    measurement: Measurement

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredMeasurement:
        """From a `measurements` row joined with its case and its run's start."""
        stats = {c: row[c] for c in SUMMARY_COLUMNS}
        summary, extra = None, {}
        if all(v is not None for v in stats.values()):
            summary = Summary(**stats)
        elif any(v is not None for v in stats.values()):
            extra["summary"] = stats  # another tool's partial statistics, as stored
        timing = row["timing"]
        m = Measurement(case_key=row["case_key"], workload=row["workload"],
                        backend=row["backend"], params=row["params"],
                        started_at=row["started_at"], status=row["status"], error=row["error"],
                        work=row["work"], summary=summary, metrics=row["metrics"],
                        timing=TimingRecord.from_dict(timing) if timing is not None else None,
                        info=row["info"], finished_at=row["finished_at"], extra=extra)
        return cls(measurement_id=row["measurement_id"], run_id=row["run_id"], seq=row["seq"],
                   run_started_at=row["run_started_at"], measurement=m)

    # the measurement's fields that readers of the store use most, read-only
    @property
    def case_key(self) -> str:
        return self.measurement.case_key

    @property
    def workload(self) -> str:
        return self.measurement.workload

    @property
    def backend(self) -> str:
        return self.measurement.backend

    @property
    def params(self) -> dict[str, Any]:
        return self.measurement.params

    @property
    def status(self) -> str:
        return self.measurement.status

    @property
    def ok(self) -> bool:
        return self.measurement.status == OK

    @property
    def error(self) -> str | None:
        return self.measurement.error

    @property
    def summary(self) -> Summary | None:
        """The summary when the store holds a whole one (None for a failed case, and for a
        partial one another tool gave: see `summary_columns`)."""
        return self.measurement.summary

    @property
    def metrics(self) -> dict[str, float]:
        return self.measurement.metrics

    @property
    def timing(self) -> TimingRecord | None:
        return self.measurement.timing

    @property
    def info(self) -> dict[str, Any] | None:
        return self.measurement.info

    @property
    def work(self) -> dict[str, Any] | None:
        return self.measurement.work

    @property
    def median(self) -> float | None:
        """The median as stored: a whole summary's, or a partial one's (None: failed)."""
        return self.summary_columns()["median"]

    def summary_columns(self) -> dict[str, Any]:
        """The summary as the store's columns hold it (schema.SUMMARY_COLUMNS, in that order;
        None where the store has no value): a partial summary's figures too."""
        if self.summary is not None:
            return {c: getattr(self.summary, c) for c in SUMMARY_COLUMNS}
        partial = self.measurement.extra.get("summary") or {}
        return {c: partial.get(c) for c in SUMMARY_COLUMNS}
