"""The results store's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

SCHEMA_VERSION is stored in `meta`; `MIGRATIONS[v]` upgrades a store from version v to v + 1.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1

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
    Column("started_at", String(32)),
    Column("finished_at", String(32)),
    Index("ix_measurements_run", "run_id", "seq", unique=True),
)

samples = Table(
    "samples", metadata,
    Column("measurement_id", Integer,
           ForeignKey("measurements.measurement_id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("seconds", Float, nullable=False),
    Column("device_seconds", Float),
)

# version -> function upgrading a connection's store from that version to the next
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}
