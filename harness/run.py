"""A run as a value: the run file's header and the measurements that followed it.

`Run.to_dict()` is the run file's header record (results/schemas/run-file.schema.json) and
`Run.from_dict()` reads the header of any format version back, in the style of
`harness.measurement.Measurement`: fields this version does not name (format 1's `format`,
`bench ab`'s `ab`) are kept in `extra` and written back unchanged, and named fields an older
writer did not write are not written back either. The measurements, the status and the end time
are the run file's other records; `results.runfile` writes and reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from harness.measurement import Measurement

COMPLETE, PARTIAL, FAILED = "complete", "partial", "failed"
@dataclass(kw_only=True)
class Run:
    """One `bench run` (or one side of a `bench ab`): what ran, where, from which code, and the
    store it was made for (None: any store may pick its file up), then what it measured."""

    # The version of the file it was read from; None for a run not read from a file (the
    # writer stamps its own version).
    format_version: int | None = None
    run_id: str
    started_at: str
    command: str = ""
    suite: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] | None = None
    slurm_job_id: str | None = None
    host: str | None = None
    pid: int | None = None
    harness_version: str | None = None
    launcher: str | None = None
    world_size: int | None = None
    env_hash: str
    env: dict[str, Any]
    store: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    status: str = PARTIAL  # until an end record says otherwise (a killed writer wrote none)
    finished_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # named header fields the record read back did not have (an older writer): not written back
    absent: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def version(self) -> int:
        """The run file format it was read from; version 1 named it `format` (or, earliest,
        nothing)."""
        if self.format_version is not None:
            return int(self.format_version)
        return int(self.extra.get("format", 1))

    def to_dict(self) -> dict[str, Any]:
        """The header record (without its `kind`)."""
        return {**{k: getattr(self, k) for k in _HEADER if k not in self.absent},
                **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Run:
        """A run from its header record; its measurements and end are added as they are read."""
        named = {k: d[k] for k in _HEADER if k in d}
        extra = {k: v for k, v in d.items() if k not in _HEADER and k != "kind"}
        return cls(**named, extra=extra, absent=frozenset(_HEADER) - set(named))


# The header record's fields; the others come from the run file's measurement and end records.
_HEADER = tuple(f.name for f in fields(Run)
                if f.name not in ("measurements", "status", "finished_at", "extra", "absent"))
