"""The results store's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

SCHEMA_VERSION is stored in `meta`; `MIGRATIONS[v]` upgrades a store from version v to v + 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 4

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

environments = Table(
    "environments", metadata,
    Column("env_hash", String(64), primary_key=True),
    Column("data", JSON, nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("run_id", String(36), primary_key=True),
    Column("started_at", String(32), nullable=False, index=True),
    Column("finished_at", String(32)),
    Column("status", String(16), nullable=False),
    Column("command", Text, nullable=False),
    Column("suite", String(256)),
    Column("git_revision", String(64)),
    Column("git_dirty", Boolean),
    Column("slurm_job_id", String(64)),
    Column("host", String(256)),
    Column("env_hash", String(64), ForeignKey("environments.env_hash")),
    Column("tags", JSON, nullable=False),
    Column("harness_version", String(32)),
    Column("n_measurements", Integer, nullable=False),
)

cases = Table(
    "cases", metadata,
    Column("case_key", Text, primary_key=True),
    Column("workload", String(128), nullable=False, index=True),
    Column("backend", String(128), nullable=False),
    Column("params", JSON, nullable=False),
)

SUMMARY_COLUMNS = ("n", "min", "max", "mean", "stdev", "median", "p5", "p25", "p75", "p95",
                   "p99", "iqr", "ci_low", "ci_high", "ci_level", "outliers")

measurements = Table(
    "measurements", metadata,
    Column("measurement_id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("case_key", Text, ForeignKey("cases.case_key"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    *(Column(name, Integer if name in ("n", "outliers") else Float) for name in SUMMARY_COLUMNS),
    Column("metrics", JSON, nullable=False),
    Column("work", JSON, nullable=False),
    Column("timing", JSON, nullable=False),
    # Facts the workload recorded with the measurement (compile/build time and build options,
    # the peak held against, a max-QPS search); NULL for measurements stored before version 3.
    Column("info", JSON),
    Column("started_at", String(32)),
    Column("finished_at", String(32)),
    Index("ix_measurements_run", "run_id", "seq", unique=True),
    # A case's history reads its own rows, not the whole table (bench history, bench serve).
    Index("ix_measurements_case", "case_key"),
)

# Raw samples, one row per measurement: little-endian float64 arrays. (Version 1 kept one row per
# sample; a million samples then took seconds to write and to read back.)
samples = Table(
    "samples", metadata,
    Column("measurement_id", Integer,
           ForeignKey("measurements.measurement_id", ondelete="CASCADE"), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("seconds", LargeBinary, nullable=False),
    Column("device_seconds", LargeBinary),
)


def pack(values: Sequence[float] | np.ndarray) -> bytes:
    return np.asarray(values, dtype="<f8").tobytes()


def unpack(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(blob or b"", dtype="<f8")


def _v1_to_v2(conn: Connection) -> None:
    """Samples from one row per sample to one packed row per measurement."""
    rows = conn.execute(sa.text(
        "SELECT measurement_id, seconds, device_seconds FROM samples "
        "ORDER BY measurement_id, idx")).all()
    conn.execute(sa.text("DROP TABLE samples"))
    samples.create(conn)
    grouped: dict[int, tuple[list[float], list[float | None]]] = {}
    for mid, sec, dev in rows:
        values, device = grouped.setdefault(mid, ([], []))
        values.append(sec)
        device.append(dev)
    if grouped:
        conn.execute(sa.insert(samples), [
            {"measurement_id": mid, "n": len(v), "seconds": pack(v),
             "device_seconds": None if any(x is None for x in d) else pack(d)}  # type: ignore[arg-type]
            for mid, (v, d) in grouped.items()
        ])


def _v2_to_v3(conn: Connection) -> None:
    """Measurements gain `info`: NULL for those stored before (their run files still hold it)."""
    kind = measurements.c.info.type.compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE measurements ADD COLUMN info {kind}"))


def _v3_to_v4(conn: Connection) -> None:
    """Measurements gain an index by case key: a case's history across 10,000 runs reads its
    10,000 rows instead of every measurement in the store."""
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_measurements_case "
                         "ON measurements (case_key)"))


# version -> function upgrading a connection's store from that version to the next
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}
