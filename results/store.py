"""The results store: SQLite by default, PostgreSQL by URL, the same code for both.

Only `ingest` writes runs, and it is idempotent by run id: a run file loaded twice is stored
once; a run file that has grown (a `.part` file read again, then finished) replaces its run; an
older copy of a stored run changes nothing; a different run under a stored run id is refused
(RunConflict), never merged and never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)

from harness.env import mask_secrets
from harness.errors import UserError
from harness.files import unwritable
from harness.measurement import Measurement
from results import schema as s
from results.runfile import BadRunFile, RunRecord
from results.stored import StoredCase, StoredMeasurement, StoredRun

DEFAULT_STORE = "bench.db"
_MAX_ROWS = 2**62  # a LIMIT larger than this means "all" (SQLite's integers are 64-bit)
_REF = re.compile(r"^latest(?:~(\d+))?$")


def store_url(ref: str | None, create: bool = True) -> URL:
    """A path or SQLAlchemy URL (or $BENCH_STORE, or ./bench.db) as a URL. With create=False (a
    command that only reads) a store file named explicitly must exist: a mistyped path is an
    error, not a new empty store."""
    if ref is not None and not ref.strip():
        raise UserError("--store is empty; give a file path or URL, or leave it out for "
                        f"$BENCH_STORE or ./{DEFAULT_STORE}")
    explicit = ref or os.environ.get("BENCH_STORE")
    ref = explicit or DEFAULT_STORE
    if "://" in ref:
        try:
            url = make_url(ref)
        except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
            raise UserError(f"cannot parse store URL {mask_secrets(ref)!r}; expected a file path "
                            "or a URL such as postgresql+psycopg://user@host/db") from None
        _check_kind(url)
        return url
    path = Path(ref).expanduser()
    if path.is_dir():
        raise UserError(f"store {ref!r} is a directory; give a file path such as {path}/bench.db")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise UserError(f"store directory {parent} does not exist; create it or choose another "
                        "--store path")
    if not create and explicit and not path.exists():
        raise UserError(f"no such store {ref!r}: nothing was created; check --store (or "
                        "BENCH_STORE), or make it with `bench run` or `bench ingest`")
    if not os.access(parent, os.W_OK):
        raise UserError(f"store {path} cannot be written: folder {parent} {unwritable(parent)}; "
                        "choose another --store path")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"store {path} {unwritable(path)}; choose another --store path")
    return URL.create("sqlite", database=str(path.resolve()))


# Database kinds the store's SQL is written for (see _insert_ignore), and the driver that
# `pip install 'accelbench[postgres]'` installs.
KINDS = ("sqlite", "postgresql")
PG_DRIVER = "psycopg"


def _check_kind(url: URL) -> None:
    """Refuse a URL the store cannot keep runs in, before any driver is imported."""
    kind = url.get_backend_name()
    if kind not in KINDS:
        raise UserError(f"store {_safe(url)}: unsupported database kind {kind!r}; use a file "
                        "path (SQLite) or postgresql+psycopg://user@host/db")
    if kind == "sqlite" and url.database in (None, "", ":memory:"):
        raise UserError(f"store {_safe(url)} is an in-memory database: nothing would be kept; "
                        "give a file path such as bench.db")


def _driver_hint(url: URL, module: str | None) -> str:
    """What to install (or write) when the URL's driver is missing."""
    if url.get_driver_name() == PG_DRIVER:
        return "pip install 'accelbench[postgres]'"
    return (f"write postgresql+{PG_DRIVER}://... to use the driver that "
            "`pip install 'accelbench[postgres]'` installs, or install "
            f"{module or url.get_driver_name()!r} yourself")


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _float(v: Any) -> Any:
    return float(v) if isinstance(v, str) else v


_TAG_KEY = re.compile(r"^[\w.:-]{1,128}$")


@dataclass(frozen=True)
class RunFilter:
    """Which runs a listing wants; every field given must hold. `tags` are (key, value) pairs;
    `backend` is a backend (`numpy:cpu`) or its model (`numpy`) that measured at least one case
    of the run; `since` and `until` are ISO dates or times (UTC), `until` a date taking in that
    whole day."""

    tags: tuple[tuple[str, str], ...] = ()
    host: str | None = None
    backend: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None

    def conditions(self) -> list[Any]:
        """The filter as SQL conditions on the runs table (UserError for a bad value)."""
        out: list[Any] = []
        for key, value in self.tags:
            if not _TAG_KEY.match(key):
                raise UserError(f"tag filter {key!r}: a tag name is letters, digits and . _ : -")
            out.append(s.runs.c.tags[key].as_string() == value)
        if self.host:
            out.append(s.runs.c.host == self.host)
        if self.status:
            out.append(s.runs.c.status == self.status)
        if self.backend:
            out.append(sa.exists(
                sa.select(1).select_from(s.measurements.join(s.cases))
                .where(s.measurements.c.run_id == s.runs.c.run_id,
                       sa.or_(s.cases.c.backend == self.backend,
                              s.cases.c.backend.like(f"{_escape_like(self.backend)}:%",
                                                     escape="\\")))))
        if self.since:
            out.append(s.runs.c.started_at >= _iso(self.since, "since"))
        if self.until:
            out.append(s.runs.c.started_at < _iso(self.until, "until", end_of_day=True))
        return out


def _iso(text: str, what: str, end_of_day: bool = False) -> str:
    """An ISO date or time as the store writes times (UTC); a date as `until` is the next
    day's start, so that the whole day is in."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return (day + dt.timedelta(days=1) if end_of_day else day).isoformat()
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{what} {text!r} is not an ISO date or time (e.g. 2026-12-03 or "
                        "2026-12-03T08:00)") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return when.isoformat()


class Store:
    def __init__(self, ref: str | None = None, *, create: bool = True) -> None:
        """Open (with create=True, also make) the store `ref` (see `store_url`)."""
        self.url = store_url(ref, create)
        self.name = _safe(self.url)
        path = Path(self.url.database) if self.url.get_backend_name() == "sqlite" else None
        is_new = path is not None and not path.exists()
        try:
            self._open()
        except BaseException:
            if is_new and path is not None and path.exists() and path.stat().st_size == 0:
                path.unlink()  # an empty file this call created: leave nothing behind
            raise

    def _open(self) -> None:
        try:
            kwargs: dict[str, Any] = {}
            if self.url.get_backend_name() == "sqlite":
                kwargs["connect_args"] = {"timeout": 60}
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
            if self.url.get_backend_name() == "sqlite":
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self._ensure_schema()
        except NoSuchModuleError:
            raise UserError(f"store {self.name}: unsupported database kind "
                            f"{self.url.drivername!r}; use a file path or postgresql+psycopg://"
                            ) from None
        except ModuleNotFoundError as exc:
            raise UserError(f"store {self.name}: driver {exc.name!r} is not installed: "
                            f"{_driver_hint(self.url, exc.name)}") from None
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).splitlines()[0]
            if _disk_full(reason):
                raise UserError(f"store {self.name} cannot be written: {reason}; "
                                "free space there or choose another --store") from None
            raise UserError(f"store {self.name} cannot be opened: {reason}") from None

    def _ensure_schema(self) -> None:
        # Several processes may open a new store at once: the loser of the race to create it
        # sees the winner's tables (or, in the instant between them, tables without their
        # version row) and looks again. Tables that stay without a version row are a store
        # whose creation was cut short (SQLite commits each CREATE TABLE on its own, so a full
        # disk can stop it half-way): it is completed here once it can be.
        attempts = 8
        for attempt in range(attempts):
            try:
                return self._create_or_migrate()
            except _SchemaInProgress:
                if attempt == attempts - 1:
                    return self._complete_half_created()
                time.sleep(0.05 * (attempt + 1) * (1 + random.random()))
            except (IntegrityError, OperationalError, ProgrammingError) as exc:
                if attempt == attempts - 1 or _disk_full(str(getattr(exc, "orig", exc))):
                    raise
                time.sleep(0.05 * (attempt + 1) * (1 + random.random()))

    def _complete_half_created(self) -> None:
        """Tables without a schema version, seen for seconds: finish creating the store, or
        say that it is half-created and what to do."""
        try:
            with self.engine.begin() as conn:
                if sa.inspect(conn).has_table("runs") and conn.execute(
                        sa.select(sa.func.count()).select_from(s.runs)).scalar_one():
                    raise UserError(f"store {self.name} holds runs but no schema version; it "
                                    "was not made by accelbench, or is damaged: choose another "
                                    "--store")
                s.metadata.create_all(conn)  # the tables that were never made
                conn.execute(sa.insert(s.meta).values(key="schema_version",
                                                      value=str(s.SCHEMA_VERSION)))
        except IntegrityError:
            return  # another process completed it just now
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).splitlines()[0]
            raise UserError(f"store {self.name} is half-created (its tables exist but not its "
                            f"schema version) and cannot be completed: {reason}; free space "
                            "there and run the command again, or delete the file") from None

    def _create_or_migrate(self) -> None:
        with self.engine.begin() as conn:
            if not sa.inspect(conn).has_table("meta"):
                s.metadata.create_all(conn)
                conn.execute(sa.insert(s.meta).values(key="schema_version",
                                                      value=str(s.SCHEMA_VERSION)))
                return
            found = conn.execute(sa.select(s.meta.c.value).where(
                s.meta.c.key == "schema_version")).scalar()
            if found is None:
                raise _SchemaInProgress(f"store {self.name} has no schema version yet")
            version = int(found)
            if version > s.SCHEMA_VERSION:
                raise UserError(f"store {self.name} has schema version {version}, newer than "
                                f"this accelbench ({s.SCHEMA_VERSION}); upgrade accelbench")
            while version < s.SCHEMA_VERSION:
                s.MIGRATIONS[version](conn)
                version += 1
                conn.execute(sa.update(s.meta).where(s.meta.c.key == "schema_version")
                             .values(value=str(version)))

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(s.meta.c.value).where(
                s.meta.c.key == "schema_version")).scalar_one())

    # -- writing ---------------------------------------------------------------------------------

    def ingest(self, record: RunRecord) -> str:
        """Store a run; 'added', 'replaced' or 'unchanged'. Safe to call concurrently: a
        transaction that loses a race (the same run inserted by another process, a lock
        timeout, a deadlock) is rolled back whole and tried again."""
        attempts = 6
        for attempt in range(attempts):
            try:
                return self._ingest(record)
            except (IntegrityError, OperationalError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1) * (1 + random.random()))
        raise AssertionError("unreachable")

    def _ingest(self, record: RunRecord) -> str:
        run = record.run
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(s.runs.c.status, s.runs.c.n_measurements, s.runs.c.started_at,
                          s.runs.c.host, s.runs.c.env_hash)
                .where(s.runs.c.run_id == run.run_id)
            ).first()
            if existing is not None:
                if self._same_run(conn, existing, record) == "unchanged":
                    return "unchanged"
                conn.execute(sa.delete(s.samples).where(s.samples.c.measurement_id.in_(
                    sa.select(s.measurements.c.measurement_id)
                    .where(s.measurements.c.run_id == run.run_id))))
                conn.execute(sa.delete(s.measurements)
                             .where(s.measurements.c.run_id == run.run_id))
                conn.execute(sa.delete(s.runs).where(s.runs.c.run_id == run.run_id))
            _insert_ignore(conn, s.environments, [{"env_hash": run.env_hash, "data": run.env}])
            git = run.git or {}
            conn.execute(sa.insert(s.runs).values(
                run_id=run.run_id, started_at=run.started_at, finished_at=run.finished_at,
                status=run.status, command=run.command, suite=run.suite,
                git_revision=git.get("revision"), git_dirty=git.get("dirty"),
                slurm_job_id=run.slurm_job_id, host=run.host, env_hash=run.env_hash,
                tags=run.tags, harness_version=run.harness_version,
                n_measurements=len(run.measurements),
            ))
            # Sorted, so concurrent ingests lock shared rows in one order and cannot deadlock.
            cases = {m.case_key: m for m in run.measurements}
            _insert_ignore(conn, s.cases, [
                {"case_key": k, "workload": m.workload, "backend": m.backend,
                 "params": m.params} for k, m in sorted(cases.items())
            ])
            for seq, m in enumerate(run.measurements):
                summary = _summary(m)
                mid = conn.execute(sa.insert(s.measurements).values(
                    run_id=run.run_id, seq=seq, case_key=m.case_key, status=m.status,
                    error=m.error, metrics=m.metrics, work=m.work or {},
                    timing=m.timing.to_dict() if m.timing is not None else {},
                    info=m.info or {}, started_at=m.started_at, finished_at=m.finished_at,
                    **{c: _float(summary.get(c)) for c in s.SUMMARY_COLUMNS},
                ).returning(s.measurements.c.measurement_id)).scalar_one()
                values = m.samples or []
                device = m.device_samples
                if values:
                    conn.execute(sa.insert(s.samples).values(
                        measurement_id=mid, n=len(values), seconds=s.pack(values),
                        device_seconds=s.pack(device) if device else None))
        return "replaced" if existing is not None else "added"

    def _same_run(self, conn: sa.Connection, stored: sa.Row[Any], record: RunRecord) -> str:
        """'unchanged' or 'replaced' for another copy of the stored run (as far as either has
        got: a `.part` file grows, then ends); RunConflict for a different run under its id."""
        run = record.run
        ours = (run.started_at, run.host, run.env_hash)
        cases = [(m.case_key, m.status, *_figures(m)) for m in run.measurements]
        theirs = [tuple(r) for r in conn.execute(
            sa.select(s.measurements.c.case_key, s.measurements.c.status, s.measurements.c.n,
                      s.measurements.c.median, s.measurements.c.started_at)
            .where(s.measurements.c.run_id == run.run_id).order_by(s.measurements.c.seq))]
        if ours != tuple(stored[2:]):
            field, here, there = next((f, a, b) for f, a, b in zip(
                ("started_at", "host", "env_hash"), ours, stored[2:], strict=True) if a != b)
            raise RunConflict.of(record, stored, self.name,
                                 f"its {field} is {here}, the stored run's {there}")
        if cases == theirs and stored.status == run.status:
            return "unchanged"
        if cases[:len(theirs)] == theirs and stored.status == "partial":
            return "replaced"  # the stored copy was read before the run got this far
        if theirs[:len(cases)] == cases and run.status == "partial":
            return "unchanged"  # an older copy of what the store holds
        i = next((i for i, (a, b) in enumerate(zip(cases, theirs, strict=False)) if a != b),
                 None)
        if i is None:
            why = (f"it holds {len(cases)} case(s), {run.status}; the stored run "
                   f"{len(theirs)}, {stored.status}")
        else:
            why = (f"its case {i + 1} is {_shown(cases[i])}, the stored run's "
                   f"{_shown(theirs[i])}")
        raise RunConflict.of(record, stored, self.name, why)

    # -- reading ---------------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """A run id from an id, a unique id prefix, `latest`, `latest~N` or `tag:KEY=VALUE`
        (the newest run with that tag)."""
        if not ref.strip():
            raise UserError("empty run reference; give a run id or a prefix of one, latest, "
                            "latest~N or tag:KEY=VALUE (see `bench runs`)")
        if ref.startswith("tag:"):
            key, sep, value = ref[4:].partition("=")
            if not sep or not key:
                raise UserError(f"run reference {ref!r}: write tag:KEY=VALUE, e.g. tag:branch=main")
            for run in self.runs():
                if str(run.tags.get(key)) == value:
                    return run.run_id
            raise UserError(f"no run tagged {key}={value} in {self.name}; see `bench runs`")
        with self.engine.connect() as conn:
            m = _REF.match(ref)
            if m:
                digits = m.group(1) or "0"
                offset = int(digits) if len(digits) <= 18 else _MAX_ROWS
                total = self.count_runs(conn)
                if offset >= total:  # (and an offset past any integer the database holds)
                    raise UserError(f"no run {ref!r}: the store {self.name} holds "
                                    f"{total} run(s)")
                rid = conn.execute(sa.select(s.runs.c.run_id)
                                   .order_by(s.runs.c.started_at.desc()).offset(offset)
                                   .limit(1)).scalar()
                if rid is None:
                    raise UserError(f"no run {ref!r}: the store {self.name} holds "
                                    f"{self.count_runs(conn)} run(s)")
                return str(rid)
            ids = conn.execute(sa.select(s.runs.c.run_id)
                               .where(s.runs.c.run_id.like(f"{_escape_like(ref)}%", escape="\\"))
                               .limit(2)).scalars().all()
        if not ids:
            raise UserError(f"no run {ref!r} in {self.name}; see `bench runs`")
        if len(ids) > 1:
            raise UserError(f"run prefix {ref!r} is ambiguous; give more characters")
        return str(ids[0])

    @staticmethod
    def count_runs(conn: sa.Connection) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(s.runs)).scalar_one())

    def runs(self, limit: int | None = None) -> list[StoredRun]:
        """The newest `limit` runs (all without one), newest first."""
        with self.engine.connect() as conn:
            q = sa.select(s.runs).order_by(s.runs.c.started_at.desc())
            if limit:
                q = q.limit(min(limit, _MAX_ROWS))
            return [StoredRun.from_row(r._mapping) for r in conn.execute(q)]

    def find_runs(self, where: RunFilter | None = None, offset: int = 0,
                  limit: int | None = None) -> tuple[int, list[StoredRun]]:
        """(how many runs match, the matching runs newest first from `offset`, at most
        `limit` of them)."""
        conditions = (where or RunFilter()).conditions()
        with self.engine.connect() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(s.runs)
                                     .where(*conditions)).scalar_one())
            q = (sa.select(s.runs).where(*conditions)
                 .order_by(s.runs.c.started_at.desc(), s.runs.c.run_id).offset(offset))
            if limit is not None:
                q = q.limit(min(limit, _MAX_ROWS))
            return total, [StoredRun.from_row(r._mapping) for r in conn.execute(q)]

    def case(self, case_key: str) -> StoredCase | None:
        """A case's workload, backend and params, or None if the store has never measured it."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.cases).where(s.cases.c.case_key == case_key)).first()
        return StoredCase(**row._mapping) if row is not None else None

    def case_series(self, case_key: str, run_ids: Sequence[str] | None = None,
                    where: RunFilter | None = None, last: int | None = None
                    ) -> dict[str, list[Any]]:
        """A case's successful measurements across runs, oldest first, as columns: run_id,
        run_started_at, host, env_hash, median, ci_low, ci_high, units_per_call (None where
        absent: 1; results.definition) (the newest `last` only)."""
        m, r = s.measurements.c, s.runs.c
        q = (sa.select(m.run_id, r.started_at.label("run_started_at"), r.host, r.env_hash,
                       m.median, m.ci_low, m.ci_high,
                       m.timing["units_per_call"].as_float().label("units_per_call"))
             .join(s.runs, m.run_id == r.run_id)
             .where(m.case_key == case_key, m.status == "ok", m.median.is_not(None),
                    m.median != 0, *(where or RunFilter()).conditions())
             .order_by(r.started_at.desc(), m.seq.desc()))
        if run_ids is not None:
            q = q.where(m.run_id.in_(list(run_ids)))
        if last is not None:
            q = q.limit(last)
        with self.engine.connect() as conn:
            result = conn.execute(q)
            keys = list(result.keys())
            rows = result.all()  # Rows are tuples: transposed below, no dict per row
        columns = list(zip(*reversed(rows), strict=True)) if rows else [() for _ in keys]
        return {k: list(col) for k, col in zip(keys, columns, strict=True)}

    def environments(self, env_hashes: Iterable[str]) -> dict[str, Any]:
        """Environment fingerprints by hash."""
        wanted = sorted({h for h in env_hashes if h})
        out: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                out.update((h, data) for h, data in conn.execute(
                    sa.select(s.environments.c.env_hash, s.environments.c.data)
                    .where(s.environments.c.env_hash.in_(wanted[start:start + 500]))))
        return out

    def run(self, run_id: str) -> StoredRun:
        """A run by its id, with its environment."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.runs, s.environments.c.data.label("env"))
                               .join(s.environments, isouter=True)
                               .where(s.runs.c.run_id == run_id)).first()
            if row is None:
                raise UserError(f"no run {run_id!r} in {self.name}")
            return StoredRun.from_row(row._mapping)

    def measurements(self, run_ids: Sequence[str] | None = None) -> list[StoredMeasurement]:
        """The measurements of the given runs (of all without them), in run and case order."""
        with self.engine.connect() as conn:
            q = (sa.select(s.measurements, s.cases.c.workload, s.cases.c.backend,
                           s.cases.c.params, s.runs.c.started_at.label("run_started_at"))
                 .join(s.cases).join(s.runs)
                 .order_by(s.runs.c.started_at, s.measurements.c.seq))
            if run_ids is not None:
                q = q.where(s.measurements.c.run_id.in_(list(run_ids)))
            return [StoredMeasurement.from_row(r._mapping) for r in conn.execute(q)]

    def samples(self, measurement_id: int) -> list[float]:
        with self.engine.connect() as conn:
            blob = conn.execute(sa.select(s.samples.c.seconds)
                                .where(s.samples.c.measurement_id == measurement_id)).scalar()
        return s.unpack(blob).tolist()

    def samples_of(self, measurement_ids: Sequence[int]
                   ) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
        """Raw samples (seconds, device seconds or None) of many measurements, by id."""
        out: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        ids = list(measurement_ids)
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):  # bounded IN lists
                rows = conn.execute(sa.select(s.samples.c.measurement_id, s.samples.c.seconds,
                                              s.samples.c.device_seconds)
                                    .where(s.samples.c.measurement_id.in_(ids[start:start + 500])))
                for mid, sec, dev in rows:
                    out[int(mid)] = (s.unpack(sec), s.unpack(dev) if dev is not None else None)
        return out

    def case_rounds(self, run_id: str) -> dict[str, list[float]]:
        """Per-round medians of a run's measurements taken in several rounds, by case key."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(s.measurements.c.case_key, s.measurements.c.timing)
                .where(s.measurements.c.run_id == run_id, s.measurements.c.status == "ok")).all()
        return {key: [float(x) for x in (timing or {}).get("round_medians_s", [])]
                for key, timing in rows if len((timing or {}).get("round_medians_s", [])) > 1}

    def case_samples(self, run_id: str) -> dict[str, np.ndarray]:
        """Raw samples of a run's successful measurements, by case key."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(s.measurements.c.case_key, s.samples.c.seconds)
                .join(s.samples, s.samples.c.measurement_id == s.measurements.c.measurement_id)
                .where(s.measurements.c.run_id == run_id, s.measurements.c.status == "ok")
                .order_by(s.measurements.c.seq)).all()
        return {key: s.unpack(blob) for key, blob in rows}

    def run_statuses(self) -> dict[str, str]:
        """Every stored run's id and status."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(s.runs.c.run_id, s.runs.c.status)).all())

    def has_run(self, run_id: str, status: str, n: int) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.runs.c.status, s.runs.c.n_measurements)
                               .where(s.runs.c.run_id == run_id)).first()
        return row is not None and tuple(row) == (status, n)


def _disk_full(reason: str) -> bool:
    """A database error that says the disk (or the database's file system) is full."""
    reason = reason.lower()
    return "disk is full" in reason or "no space left" in reason


def _summary(m: Measurement) -> Mapping[str, Any]:
    """The summary the file holds, never recomputed from the samples: a partial one (another
    tool's statistics, which `Measurement` keeps in `extra`) as it is."""
    if m.summary is not None:
        return m.summary.to_dict()
    return m.extra.get("summary") or {}


def _figures(m: Measurement) -> tuple[Any, Any, Any]:
    """A measurement's n, median and start, as the store holds them."""
    summary = _summary(m)
    return summary.get("n"), _float(summary.get("median")), m.started_at


def _shown(case: tuple[Any, ...]) -> str:
    key, status, n, median, _started = case
    return f"{key} ({status}, n={n}, median={median})"


class RunConflict(BadRunFile):
    """A run file whose run id the store already holds for a different run."""

    def __init__(self, path: Path, run_id: str, stored: str, why: str, source: str) -> None:
        self.run_id, self.stored, self.why = run_id, stored, why
        super().__init__(path, f"run id {run_id} is already the id of another run, in {source} "
                         f"({stored}): {why}; nothing stored from this file: ingest it into "
                         "another --store, or remove one of the two")

    @classmethod
    def of(cls, record: RunRecord, stored: sa.Row[Any], store: str, why: str) -> RunConflict:
        return cls(record.path or Path("<run record>"), record.run_id,
                   f"started {stored.started_at} on {stored.host}, {stored.n_measurements} "
                   f"case(s), {stored.status}", why, store)

    def naming(self, source: Path) -> RunConflict:
        """The same conflict, naming the file the stored run was read from."""
        return RunConflict(self.path, self.run_id, self.stored, self.why, str(source))


class _SchemaInProgress(SQLAlchemyError):
    """Tables exist but the version row does not (yet): another process is creating them."""


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _insert_ignore(conn: sa.Connection, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover
        raise UserError(f"unsupported store database {dialect!r}")
    conn.execute(insert(table).on_conflict_do_nothing(), rows)
