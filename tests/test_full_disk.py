"""A full disk under the run folder, the store and an output file: one line naming the path and
the cause, exit 2, no traceback; the finished cases kept; a store cut short while it was being
created is completed once there is room, or named as half-created with the fix.

The full filesystem is real: a 1 MiB tmpfs mounted for the test and filled to the few KiB wanted.
That needs root (or CAP_SYS_ADMIN); where `mount -t tmpfs` is refused the tests skip. (This
container runs the tests as root and allows it. /dev/full would give ENOSPC for a single write
only, not a folder where a run file, then its end record, then a store must be written.)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_user_error

from results import schema
from results.runfile import read_run_file
from results.store import Store

SIZE = 1 << 20
RUN = ("run", "-w", "spin", "-p", "us=1,2,3,4,5,6,7,8,9,10,11,12", "--budget", "0.05",
       "--max-samples", "300", "--quiet")


class FullFs:
    """A mounted tmpfs of 1 MiB; fill(kib) leaves about `kib` KiB free."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self, kib: int) -> None:
        self.filler.unlink(missing_ok=True)
        free = shutil.disk_usage(self.root).free
        with open(self.filler, "wb") as fh:
            fh.write(b"\0" * max(0, free - kib * 1024))

    def free_up(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[FullFs]:
    root = tmp_path / "fs"
    root.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(root)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}); "
                    "needs root or CAP_SYS_ADMIN")
    try:
        yield FullFs(root)
    finally:  # lazily if a file there is still open: never leave the mount behind
        if subprocess.run(["umount", str(root)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, timeout=30)


def measurements_in(path: Path) -> int:
    return len(read_run_file(path).measurements)


def test_run_folder_fills_up_mid_run(bench, workdir, full_fs):
    runs = full_fs.root / "runs"
    runs.mkdir()
    full_fs.fill(32)  # room for the header and a few cases, not for twelve
    res = bench(*RUN, "--run-dir", str(runs))
    (part,) = runs.glob("*.jsonl.part")  # no end record could be written: it stays .part
    line = assert_user_error(res, str(part), "No space left on device", "free space",
                    "finished cases kept", "partial")
    kept = measurements_in(part)
    assert 1 <= kept < 12, (kept, line)
    with sqlite3.connect(workdir / "bench.db") as db:  # the store (elsewhere) has them too
        (status, n), = db.execute("select status, n_measurements from runs").fetchall()
    assert (status, n) == ("partial", kept)
    full_fs.free_up()  # later reads pick up nothing new and raise nothing
    assert bench("runs", "--run-dir", str(runs)).rc == 0


def test_run_folder_full_before_the_header(bench, workdir, full_fs):
    runs = full_fs.root / "runs"
    runs.mkdir()
    full_fs.fill(0)
    res = bench(*RUN, "--run-dir", str(runs))
    assert_user_error(res, f"cannot write run files in {runs}", "No space left on device")
    assert list(runs.iterdir()) == []  # no empty or torn run file left behind
    assert not (workdir / "bench.db").exists() or sqlite3.connect(
        workdir / "bench.db").execute("select count(*) from runs").fetchone() == (0,)


SMALL = ("run", "-w", "spin", "-p", "us=1", "--budget", "0.05", "--quiet")

# Two ranks (the local launcher, collectives over Gloo): rank 0 alone writes, and says what
# happened in one line; rank 1 ends quietly, not with a line of its own about losing rank 0.
RANKS = ("run", "-w", "allreduce", "-b", "gloo", "-p", "size=8B..64KiB*2", "--budget", "0.05",
         "-n", "2", "--timeout", "20", "--quiet")
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="gloo comes with torch: pip install 'accelbench[torch]'")


@needs_torch
def test_two_ranks_run_folder_fills_up_mid_run(bench, workdir, full_fs):
    runs = full_fs.root / "runs"
    runs.mkdir()
    full_fs.fill(24)  # room for the header and a few of the 14 cases
    res = bench(*RANKS, "--run-dir", str(runs), timeout=180)
    (part,) = runs.glob("*.jsonl.part")
    assert_user_error(res, str(part), "No space left on device", "finished cases kept", "partial")
    kept = measurements_in(part)
    assert 1 <= kept < 14, kept
    with sqlite3.connect(workdir / "bench.db") as db:
        (status, n), = db.execute("select status, n_measurements from runs").fetchall()
    assert (status, n) == ("partial", kept)


@needs_torch
def test_two_ranks_store_on_a_full_disk(bench, workdir, full_fs):
    db = full_fs.root / "s.db"
    full_fs.fill(16)
    assert_user_error(bench(*RANKS, "--store", str(db), timeout=180), str(db), "full")
    assert not (workdir / "bench-runs").exists()  # nothing ran, nothing half-written


def test_store_created_on_a_full_disk_is_completed_later(bench, workdir, full_fs):
    db = full_fs.root / "s.db"
    full_fs.fill(16)  # room for a few tables, not for all of them and their version row
    first = assert_user_error(bench(*SMALL, "--store", str(db)), str(db))
    assert "full" in first
    assert not (workdir / "bench-runs").exists()  # the store is opened before anything runs
    if db.exists() and db.stat().st_size > 0:  # tables were made, the version row was not
        again = assert_user_error(bench("runs", "--store", str(db)), str(db))
        assert "half-created" in again and "free space" in again, again
    full_fs.free_up()
    res = bench(*SMALL, "--store", str(db))
    assert res.rc == 0, res.stderr
    st = Store(str(db))
    try:
        assert st.schema_version() == schema.SCHEMA_VERSION
        assert len(st.runs()) == 1
    finally:
        st.engine.dispose()  # (an open file would keep the tmpfs busy)


def test_store_on_a_disk_with_no_room_leaves_no_file(bench, workdir, full_fs):
    db = full_fs.root / "s.db"
    full_fs.fill(0)
    assert_user_error(bench(*SMALL, "--store", str(db)), str(db), "full")
    assert not db.exists()  # not an empty file that every later open would trip over


@pytest.mark.parametrize("args", [["export", "-o", "{fs}/x.csv"],
                                  ["export", "--format", "json", "-o", "{fs}/x.json"],
                                  ["report", "latest", "-o", "{fs}/r.html"],
                                  ["compare", "latest", "latest", "--format", "markdown",
                                   "-o", "{fs}/c.md"]])
def test_output_file_on_a_full_disk(bench_inproc, workdir, full_fs, spin_run, args):
    st = Store(str(workdir / "bench.db"))
    spin_run(st, workdir / "bench-runs", us=(10.0,), budget=0.05)
    st.engine.dispose()
    full_fs.fill(0)
    res = bench_inproc(*[a.replace("{fs}", str(full_fs.root)) for a in args])
    assert_user_error(res, str(full_fs.root), "No space left on device", "free space")
    assert sorted(os.listdir(full_fs.root)) == ["filler"]  # no temporary file left


# A store whose creation stopped between its tables and its version row, made here without a
# full disk (SQLite commits each CREATE TABLE on its own, so that is where a full disk stops it).

def _tables_without_version(path: Path) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{path}")
    schema.metadata.create_all(engine)
    engine.dispose()


def test_half_created_store_is_completed(tmp_path):
    db = tmp_path / "half.db"
    _tables_without_version(db)
    st = Store(str(db))
    assert st.schema_version() == schema.SCHEMA_VERSION
    st.engine.dispose()


def test_store_with_runs_but_no_version_is_named(tmp_path, bench_inproc, workdir):
    db = tmp_path / "odd.db"
    _tables_without_version(db)
    with sqlite3.connect(db) as conn:
        conn.execute("insert into environments (env_hash, data) values ('h', '{}')")
        conn.execute("insert into runs (run_id, started_at, status, command, env_hash, tags, "
                     "n_measurements) values ('r', '2024', 'complete', '', 'h', '{}', 0)")
    before = db.read_bytes()
    assert_user_error(bench_inproc("runs", "--store", str(db)), "holds runs but no schema version")
    assert db.read_bytes() == before
