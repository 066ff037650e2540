"""Outputs, a store and a run folder on a read-only file system: one line naming the path and
the cause, exit 2, no traceback, nothing written anywhere.

The read-only file system is real: a small tmpfs mounted read-only for the test (as
tests/test_full_disk.py mounts its full one). A folder made read-only with chmod would not do
here: root, which runs these tests in the container, writes into it anyway. Where `mount` is
refused (no root, no CAP_SYS_ADMIN) the tests skip.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_user_error, snapshot

CAUSE = "read-only file system"
RUN = ("run", "-w", "spin", "-p", "us=10", "--budget", "0.05", "--quiet")


@pytest.fixture
def ro_fs(workdir: Path) -> Iterator[Path]:
    """A read-only tmpfs mounted at ./ro."""
    root = workdir / "ro"
    root.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(root)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({proc.stderr.strip() or proc.returncode}"
                    "); needs root or CAP_SYS_ADMIN")
    try:
        yield root
    finally:
        if subprocess.run(["umount", str(root)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, timeout=30)


@pytest.fixture
def two_runs(workdir, spin_run):
    from results.store import Store

    st = Store(str(workdir / "bench.db"))
    for _ in range(2):
        spin_run(st, workdir / "bench-runs", us=(10.0,), budget=0.05)
    st.engine.dispose()


@pytest.mark.parametrize("args,named", [
    (["export", "latest", "-o", "ro/x.csv"], "ro/x.csv"),
    (["report", "latest", "-o", "ro/r.html"], "ro/r.html"),
    (["report", "latest", "-o", "r.html", "--plots", "ro/plots"], "ro/plots"),
    (["report", "latest", "-o", "r.html", "--plots", "ro"], "ro"),
    (["compare", "latest~1", "latest", "-o", "ro/c.md"], "ro/c.md"),
], ids=["export", "report", "report-plots-new-folder", "report-plots-folder", "compare"])
def test_output_on_a_read_only_fs(bench_inproc, workdir, ro_fs, two_runs, args, named):
    before = snapshot(workdir)
    res = bench_inproc(*args)
    line = assert_user_error(res, CAUSE)
    assert f" {named}:" in line, line  # the path as given
    assert res.stdout == ""
    assert snapshot(workdir) == before  # not r.html beside the plots, nothing in the store


def test_store_on_a_read_only_fs(bench, workdir, ro_fs):
    db = ro_fs / "s.db"
    assert_user_error(bench(*RUN, "--store", str(db)), f"store {db}", str(ro_fs), CAUSE)
    assert sorted(p.name for p in workdir.iterdir()) == ["ro"]  # no run file, no bench.db


@pytest.mark.parametrize("where,ranks", [("ro", ()), ("ro/runs", ()), ("ro/a/b", ()),
                                         ("ro/runs", ("-n", "2"))],
                         ids=["mount", "folder", "nested", "two-ranks"])
def test_run_folder_on_a_read_only_fs(bench, workdir, ro_fs, where, ranks):
    res = bench(*RUN, *ranks, "--run-dir", where, timeout=120)
    assert_user_error(res, f"cannot write run files in {where}", str(ro_fs), CAUSE)
    # checked before the store is opened: not even an empty ./bench.db is left
    assert sorted(p.name for p in workdir.iterdir()) == ["ro"]
