"""Bad input ends with exit code 2, exactly one line `bench: error: ...` on stderr, no traceback,
and nothing written: no new run in the store, no run file, no half-made store.

Most cases call harness.cli.main in this process (`cli`: the same code path as the console
script, without an interpreter start each); a representative few start the real `bench`."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest
from bad_input_table import BAD_FILES, BAD_SUITES, TABLE
from conftest import assert_user_error, snapshot

from results.runfile import RunFileWriter, read_run_file
from results.store import Store

FAST = ("--budget", "0.2", "--quiet")
SECRET_URL = "postgresql+psycopg://user:secret@127.0.0.1:1/db"


@pytest.fixture(scope="session")
def template_store(tmp_path_factory):
    """A store (bench.db) that holds one finished run, and its run folder, made once."""
    from conftest import _header, _measurement

    folder = tmp_path_factory.mktemp("template")
    writer = RunFileWriter(folder / "bench-runs", _header())
    writer.append(_measurement())
    final = writer.finish("complete", "2024-01-01T00:00:01+00:00")
    st = Store(str(folder / "bench.db"))
    assert st.ingest(read_run_file(final)) == "added"
    st.engine.dispose()
    return folder


@pytest.fixture
def existing(workdir, template_store):
    """A copy of the template store and run folder in the working folder; its snapshot."""
    shutil.copy2(template_store / "bench.db", workdir / "bench.db")
    shutil.copytree(template_store / "bench-runs", workdir / "bench-runs")
    return snapshot(workdir)


def n_runs(workdir: Path) -> int:
    with sqlite3.connect(workdir / "bench.db") as db:
        return int(db.execute("select count(*) from runs").fetchone()[0])


def assert_nothing_written(workdir: Path, before: dict[str, tuple[int, int]]) -> None:
    assert snapshot(workdir) == before
    assert n_runs(workdir) == 1


@pytest.fixture
def cli(bench_inproc):
    return bench_inproc


# -- the table: every distinct bad input, the same four checks -----------------------------------


def store_digest(workdir: Path) -> str:
    return hashlib.sha256((workdir / "bench.db").read_bytes()).hexdigest()


def expand(args: list[str]) -> list[str]:
    return [a.replace("{F}", str(BAD_FILES)).replace("{S}", str(BAD_SUITES)) for a in args]


@pytest.fixture
def table_dir(workdir, existing):
    """The store with one run, plus a regular file and an empty folder to aim outputs at."""
    (workdir / "afile").write_text("a regular file\n")
    (workdir / "adir").mkdir()
    return workdir


def test_table_holds_at_least_200_distinct_inputs():
    ids = [name for name, _, _ in TABLE]
    inputs = [tuple(args) for _, args, _ in TABLE]
    assert len(set(ids)) == len(ids), "two rows share a name"
    assert len(set(inputs)) == len(inputs), "two rows are the same input"
    print(f"bad-input table: {len(TABLE)} distinct inputs")
    assert len(TABLE) >= 200, len(TABLE)


@pytest.mark.parametrize("args,needles", [(a, n) for _, a, n in TABLE],
                         ids=[name for name, _, _ in TABLE])
def test_bad_input(cli, table_dir, args, needles):
    before, digest = snapshot(table_dir), store_digest(table_dir)
    res = cli(*expand(args))
    assert_user_error(res, *needles)
    assert res.stdout == ""
    assert snapshot(table_dir) == before  # nothing written, not even a file left half-made
    assert store_digest(table_dir) == digest
    assert n_runs(table_dir) == 1


ROWS = {name: (args, needles) for name, args, needles in TABLE}


@pytest.mark.parametrize("name", ["run: unknown workload", "run: below minimum",
                                  "run: param without =", "show: latest beyond int64",
                                  "report: docx is not html"])
def test_bad_input_console_script(bench, table_dir, name):
    """A few rows through the real console script (a new interpreter each)."""
    args, needles = ROWS[name]
    before, digest = snapshot(table_dir), store_digest(table_dir)
    res = bench(*expand(args))
    assert_user_error(res, *needles)
    assert res.stdout == ""
    assert snapshot(table_dir) == before and store_digest(table_dir) == digest


def test_bad_input_in_a_fresh_folder_creates_nothing(cli, workdir):
    for args in (["-w", "nope"], ["-w", "spin", "-p", "us=-1"], ["--suite", "nope"]):
        assert_user_error(cli("run", *args, *FAST))
    assert list(workdir.iterdir()) == []


def test_case_keys_with_newlines_and_escapes_make_assert_user_error(cli, workdir, make_header,
                                                           make_measurement):
    """`history` naming several matching cases whose keys hold a newline and a terminal escape:
    still one line, the characters shown escaped."""
    writer = RunFileWriter(workdir / "bench-runs", make_header())
    for text in ("a\nb", "c\x1b[2Jd"):
        m = make_measurement()
        m.update(case_key=f"note[numpy:cpu](text={text})", workload="note",
                 params={"text": text})
        writer.append(m)
    writer.finish("complete", "2024-01-01T00:00:01+00:00")
    line = assert_user_error(cli("history", "note"), "matches 2 cases", "text=a\\nb",
                             "c\\x1b[2Jd")
    assert "\x1b" not in line
    after = cli("runs")
    assert after.rc == 0 and "\x1b" not in after.stdout


def test_plugin_that_fails_to_import(cli, workdir, existing):
    (workdir / "broken.py").write_text("import no_such_module_here\n")
    before = snapshot(workdir)
    res = cli("run", "--plugin", "broken.py", "-w", "spin", *FAST)
    assert_user_error(res, "broken.py", "failed to import", "no_such_module_here")
    assert_nothing_written(workdir, before)
    assert_user_error(cli("list", "--plugin", "broken.py"), "failed to import")


# -- suites --------------------------------------------------------------------------------------


def _suite(workdir: Path, text: str) -> str:
    (workdir / "s.toml").write_text(textwrap.dedent(text).lstrip())
    return "s.toml"


def test_malformed_toml_names_file_and_line(bench, workdir, existing):  # the real script
    name = _suite(workdir, '''
        description = "x"
        [[matrix]]
        workload = "spin"
        params = { us = [10, }
    ''')
    before = snapshot(workdir)
    line = assert_user_error(bench("run", "--suite", name, *FAST), "s.toml:4", "TOML")
    assert "line 4" not in line  # said once, as file:line
    assert_nothing_written(workdir, before)


SUITE_ERRORS = {
    "unknown top key": ('description = "x"\nbogus = 1\n[[matrix]]\nworkload = "spin"\n',
                        "s.toml:2", "'bogus'"),
    "unknown workload": ('[[matrix]]\nworkload = "spin"\n\n[[matrix]]\nworkload = "nope"\n',
                         "s.toml:5", "unknown workload 'nope'"),
    "unknown matrix key": ('[[matrix]]\nworkload = "spin"\nbackends = "numpy:cpu"\n',
                           "s.toml:3", "'backends'"),
    "out of range": ('[[matrix]]\nworkload = "spin"\nparams = { us = -5 }\n',
                     "s.toml:", "minimum"),
    "unknown param": ('[[matrix]]\nworkload = "spin"\nparams = { foo = 1 }\n',
                      "s.toml:3", "'foo'"),
    "no matrix": ('description = "x"\n', "s.toml", "[[matrix]]"),
    "bad timing": ('[timing]\nbudget = "long"\n[[matrix]]\nworkload = "spin"\n',
                   "s.toml", "budget"),
}


@pytest.mark.parametrize("text,where,what", SUITE_ERRORS.values(), ids=SUITE_ERRORS.keys())
def test_bad_suite(cli, workdir, existing, text, where, what):
    name = _suite(workdir, text)
    before = snapshot(workdir)
    assert_user_error(cli("run", "--suite", name, *FAST), where, what)
    assert_nothing_written(workdir, before)


# -- stores --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", [["run", "-w", "spin", *FAST], ["runs"], ["show"]])
def test_store_in_missing_folder(cli, workdir, cmd):
    res = cli(*cmd, "--store", "missing/bench.db")
    assert_user_error(res, "does not exist")
    assert not (workdir / "missing").exists()
    assert not (workdir / "bench-runs").exists() or not any((workdir / "bench-runs").iterdir())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_store_in_read_only_folder(cli, workdir):
    ro = workdir / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = cli("run", "-w", "spin", *FAST, "--store", "ro/bench.db")
        assert_user_error(res, "not writable")
        assert list(ro.iterdir()) == []
        assert not (workdir / "bench-runs").exists()
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("cmd", [["run", "-w", "spin", *FAST], ["runs"], ["show", "latest"],
                                 ["export", "-o", "x.csv"]])
def test_corrupt_store(cli, workdir, cmd):
    text = "this is a text file, not a database\n" * 10
    (workdir / "bench.db").write_text(text)
    res = cli(*cmd)
    assert_user_error(res, "bench.db", "not a database")
    assert (workdir / "bench.db").read_text() == text
    assert not (workdir / "x.csv").exists()
    assert not (workdir / "bench-runs").exists()


@pytest.mark.parametrize("url,needle", [
    ("postgresql://::bad", "cannot parse store URL"),
    ("postgresql://user:secret@host:notaport/db", "cannot parse store URL"),
    ("notadialect://x", "unsupported database kind 'notadialect'"),
])
def test_unparseable_store_url(cli, workdir, url, needle):
    line = assert_user_error(cli("runs", "--store", url), needle)
    assert "secret" not in line
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("cmd", [["run", "-w", "spin", *FAST], ["runs"], ["show"],
                                 ["ingest", "."], ["export", "-o", "x.csv"]])
@pytest.mark.parametrize("how", ["option", "env"])
def test_store_password_never_shown(cli, workdir, cmd, how):
    if how == "option":
        res = cli(*cmd, "--store", SECRET_URL)
    else:
        res = cli(*cmd, env={"BENCH_STORE": SECRET_URL})
    assert_user_error(res, "127.0.0.1")
    assert "secret" not in res.stderr and "secret" not in res.stdout
    if importlib.util.find_spec("psycopg") is None:
        assert "pip install 'accelbench[postgres]'" in res.stderr


def test_store_errors_console_script(bench, workdir):
    """The real script: a corrupt store and a store URL with a password."""
    (workdir / "bench.db").write_text("not a database\n")
    assert_user_error(bench("run", "-w", "spin", *FAST), "bench.db", "not a database")
    assert not (workdir / "bench-runs").exists()
    res = bench("run", "-w", "spin", *FAST, "--store", SECRET_URL)
    assert_user_error(res, "127.0.0.1")
    assert "secret" not in res.stderr + res.stdout
    assert not (workdir / "bench-runs").exists()


# -- backends ------------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="jax is installed")
def test_backend_not_installed(cli, workdir):
    from harness.backends.base import parse_backend

    assert_user_error(cli("env", "-b", "jax:cpu"), "jax", "pip install 'accelbench[jax]'")
    # `bench list backends` shows this reason (tests/test_cli.py runs it).
    assert "pip install 'accelbench[jax]'" in parse_backend("jax:cpu").unusable_reason()
    assert list(workdir.iterdir()) == []


def _cuda_visible() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_absent_device(bench, workdir, existing):
    if _cuda_visible():
        pytest.skip("a CUDA device is visible here")
    res = bench("run", "-w", "gemm", "-b", "torch:cuda", "-p", "m=8", *FAST)
    assert_user_error(res, "torch:cuda", "no CUDA device")
    assert_nothing_written(workdir, existing)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_absent_device_in_fresh_folder(cli, workdir):
    if _cuda_visible():
        pytest.skip("a CUDA device is visible here")
    assert_user_error(cli("run", "-w", "gemm", "-b", "torch:cuda:7", *FAST), "torch:cuda")
    assert list(workdir.iterdir()) == []


# -- reading commands ----------------------------------------------------------------------------


def test_show_in_empty_store(cli):
    assert_user_error(cli("show"), "no run 'latest'")


def test_ingest_corrupt_run_file(cli, workdir, existing):
    (run_file,) = (workdir / "bench-runs").glob("*.jsonl")
    lines = run_file.read_text().splitlines()
    lines[1] = lines[1][:20]
    (workdir / "torn.jsonl").write_text("\n".join(lines) + "\n")
    before = snapshot(workdir)
    assert_user_error(cli("ingest", "torn.jsonl"), "torn.jsonl:2", "corrupt")
    assert_nothing_written(workdir, before)


def test_control_characters_from_the_store_are_shown_escaped(cli, workdir, make_header,
                                                             make_measurement):
    """Tags and params holding a terminal escape or a bell, as anyone sharing a store could
    write them: `bench runs` and `bench show` print them escaped, never raw."""
    tags = {"ansi": "\x1b[31mRED", "bell": "x\x07"}
    writer = RunFileWriter(workdir / "bench-runs", make_header(tags=tags))
    m = make_measurement()
    m.update(case_key="note[numpy:cpu](text=c\x1b[2Jd)", workload="note",
             params={"text": "c\x1b[2Jd"})
    writer.append(m)
    writer.finish("complete", "2024-01-01T00:00:01+00:00")
    assert cli("ingest", "bench-runs").rc == 0
    for cmd in (["runs"], ["show", "latest"]):
        res = cli(*cmd)
        assert res.rc == 0, res.stderr
        out = res.stdout + res.stderr
        assert "\x1b" not in out and "\x07" not in out, (cmd, out)
        assert "ansi=\\x1b[31mRED" in res.stdout and "bell=x\\x07" in res.stdout, (cmd, out)
    assert "text=c\\x1b[2Jd" in cli("show", "latest").stdout


def test_runs_limit_beyond_any_store_lists_every_run(cli, workdir, existing):
    """-n larger than a 64-bit integer: every run, as any -n beyond the store's size (the
    documented cap), not an overflow."""
    for n in ("99999999999999999999", str(2**63)):
        res = cli("runs", "-n", n, "--json")
        assert res.rc == 0, res.stderr
        assert len(res.json()) == n_runs(workdir) == 1
    assert "all of them" in cli("runs", "--help").stdout
