"""The results store: round trip of a real run, idempotent ingest, run references, schema
versions and migrations, and the pandas view with its exports."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import results
from harness.errors import UserError
from results import schema
from results.frame import export, load
from results.ingest import ingest_paths, sync_run_dir
from results.runfile import RunFileWriter, read_run_file
from results.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "bench.db"))


FIXTURES = Path(__file__).parent / "fixtures"


def _sample_total(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(schema.samples.c.n), 0)))
                   .scalar_one())


def _count(st: Store, table: sa.Table) -> int:
    with st.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _finished_run(directory, header, measurements, status="complete"):
    w = RunFileWriter(directory, header)
    for m in measurements:
        w.append(m)
    return w.finish(status, "2024-01-01T00:00:09+00:00")


# -- a real run ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, spin_run):
    """One tiny real run (spin, 2 cases) through harness.runner.execute."""
    tmp = tmp_path_factory.mktemp("real")
    st = Store(str(tmp / "bench.db"))
    result = spin_run(st, tmp / "bench-runs", us=(10.0, 200.0), tags={"k": "v"})
    return st, result


def test_real_run_round_trip(real_run):
    st, result = real_run
    assert result.status == "complete" and result.exit_code == 0
    assert result.ingested == "added"
    assert result.path.name == f"{result.run_id}.jsonl" and result.path.exists()

    (row,) = st.runs()
    assert row.run_id == result.run_id
    assert row.status == "complete"
    assert row.n_measurements == 2
    assert row.tags == {"k": "v"}
    assert row.finished_at is not None

    header = st.run(result.run_id)
    assert header.env["host"] and header.env_hash == read_run_file(
        result.path).header["env_hash"]

    stored = st.measurements([result.run_id])
    assert [m.case_key for m in stored] == [m.case_key for m in result.measurements]
    for got, want in zip(stored, (m.to_dict() for m in result.measurements), strict=True):
        assert got.workload == "spin" and got.backend == "numpy:cpu"
        assert got.params == want["params"]
        assert got.status == "ok"
        stored_summary = got.summary_columns()
        for col in schema.SUMMARY_COLUMNS:
            assert stored_summary[col] == pytest.approx(float(want["summary"][col]),
                                                        rel=1e-12), col
        assert got.metrics == pytest.approx(want["metrics"])
        assert got.timing.stop_reason == want["timing"]["stop_reason"]
        raw = st.samples(got.measurement_id)
        assert len(raw) == len(want["samples"]) == got.summary.n
        assert raw == pytest.approx(want["samples"], rel=1e-12)


def test_the_store_hands_out_values(real_run):
    """What a reader gets back is the run's own Measurement (samples aside) under the store's
    keys, and nothing it reads can be changed in place."""
    import dataclasses

    st, result = real_run
    (run,) = st.runs()
    assert (run.run_id, run.status, run.tags, run.env) == (result.run_id, "complete",
                                                          {"k": "v"}, None)
    assert st.run(result.run_id).env["host"]
    stored = st.measurements([result.run_id])
    for seq, (got, want) in enumerate(zip(stored, result.measurements, strict=True)):
        assert (got.run_id, got.seq, got.run_started_at) == (result.run_id, seq,
                                                             run.started_at)
        assert got.measurement == dataclasses.replace(want, samples=None, device_samples=None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.run_id = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "failed"  # type: ignore[misc]
    case = st.case(stored[0].case_key)
    assert case is not None and case.to_dict() == {
        "case_key": stored[0].case_key, "workload": "spin", "backend": "numpy:cpu",
        "params": stored[0].params}


def test_real_run_medians_match_request(real_run):
    _, result = real_run
    for m in (x.to_dict() for x in result.measurements):
        want = m["params"]["us"] * 1e-6
        assert m["summary"]["median"] == pytest.approx(want, rel=0.05)


# -- ingest --------------------------------------------------------------------------------------


def test_ingest_twice_is_unchanged(tmp_path, store, make_header, make_measurement):
    path = _finished_run(tmp_path / "runs", make_header(),
                         [make_measurement(10.0), make_measurement(20.0, n=30)])
    assert store.ingest(read_run_file(path)) == "added"
    assert store.ingest(read_run_file(path)) == "unchanged"
    assert ingest_paths(store, [path]) == {"unchanged": 1}
    assert ingest_paths(store, [tmp_path / "runs"]) == {"unchanged": 1}
    assert len(store.runs()) == 1
    assert _count(store, schema.runs) == 1
    assert _count(store, schema.measurements) == 2
    assert _sample_total(store) == 50
    assert _count(store, schema.cases) == 2
    assert _count(store, schema.environments) == 1


def test_grown_part_file_replaces(tmp_path, store, make_header, make_measurement):
    header = make_header()
    w = RunFileWriter(tmp_path, header)
    w.append(make_measurement(10.0))
    assert store.ingest(read_run_file(w.part)) == "added"
    assert store.ingest(read_run_file(w.part)) == "unchanged"
    (row,) = store.runs()
    assert (row.status, row.n_measurements) == ("partial", 1)

    w.append(make_measurement(20.0))
    assert store.ingest(read_run_file(w.part)) == "replaced"
    (row,) = store.runs()
    assert (row.status, row.n_measurements) == ("partial", 2)
    assert _count(store, schema.measurements) == 2
    assert _sample_total(store) == 40

    path = w.finish("complete", "2024-01-01T00:00:09+00:00")
    assert store.ingest(read_run_file(path)) == "replaced"
    (row,) = store.runs()
    assert (row.status, row.n_measurements) == ("complete", 2)
    assert row.finished_at == "2024-01-01T00:00:09+00:00"
    assert _count(store, schema.measurements) == 2
    assert _sample_total(store) == 40
    assert store.has_run(header["run_id"], "complete", 2)


def test_sync_run_dir(tmp_path, store, make_header, make_measurement):
    assert sync_run_dir(store, tmp_path / "absent") == {}
    _finished_run(tmp_path / "runs", make_header(), [make_measurement()])
    assert sync_run_dir(store, tmp_path / "runs") == {"added": 1}
    assert sync_run_dir(store, tmp_path / "runs") == {}  # stored, and finished: not read again


def test_failed_measurement_is_stored(tmp_path, store, make_header, make_measurement):
    failed = {**make_measurement(), "status": "failed", "error": "boom", "summary": None,
              "metrics": {}, "samples": None}
    path = _finished_run(tmp_path, make_header(), [make_measurement(), failed], "failed")
    store.ingest(read_run_file(path))
    ms = store.measurements()
    assert [m.status for m in ms] == ["ok", "failed"]
    assert ms[1].error == "boom" and ms[1].median is None
    assert store.samples(ms[1].measurement_id) == []


# -- references ----------------------------------------------------------------------------------


@pytest.fixture
def three_runs(tmp_path, store, make_header, make_measurement):
    ids = ["aaaa1111-0000-0000-0000-000000000001", "aaaa2222-0000-0000-0000-000000000002",
           "bbbb3333-0000-0000-0000-000000000003"]
    for i, rid in enumerate(ids):
        header = make_header(run_id=rid, started_at=f"2024-01-0{i + 1}T00:00:00.000000+00:00")
        store.ingest(read_run_file(_finished_run(tmp_path / "runs", header,
                                                 [make_measurement()])))
    return ids


def test_resolve(store, three_runs):
    first, second, third = three_runs
    assert store.resolve("latest") == third
    assert store.resolve("latest~0") == third
    assert store.resolve("latest~1") == second
    assert store.resolve("latest~2") == first
    assert store.resolve(first) == first
    assert store.resolve("bbbb") == third
    assert store.resolve("aaaa2") == second
    assert [r.run_id for r in store.runs()] == [third, second, first]
    assert [r.run_id for r in store.runs(limit=1)] == [third]


def test_resolve_errors(store, three_runs):
    with pytest.raises(UserError, match="ambiguous"):
        store.resolve("aaaa")
    with pytest.raises(UserError, match="no run 'cccc'"):
        store.resolve("cccc")
    with pytest.raises(UserError, match="latest~3"):
        store.resolve("latest~3")
    with pytest.raises(UserError):  # LIKE wildcards are taken literally
        store.resolve("%")
    with pytest.raises(UserError):
        store.resolve("____")
    with pytest.raises(UserError):
        store.run("cccc")


def test_resolve_in_empty_store(store):
    with pytest.raises(UserError, match="0 run"):
        store.resolve("latest")


# -- schema --------------------------------------------------------------------------------------


def test_schema_version_recorded(tmp_path, store):
    assert store.schema_version() == schema.SCHEMA_VERSION
    with sqlite3.connect(tmp_path / "bench.db") as db:
        (value,) = db.execute("select value from meta where key='schema_version'").fetchone()
    assert int(value) == schema.SCHEMA_VERSION
    # Opening again leaves it as it is.
    assert Store(str(tmp_path / "bench.db")).schema_version() == schema.SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path, store):
    with sqlite3.connect(tmp_path / "bench.db") as db:
        db.execute("update meta set value='99' where key='schema_version'")
    with pytest.raises(UserError, match="schema version 99") as exc:
        Store(str(tmp_path / "bench.db"))
    assert "upgrade" in str(exc.value)


def test_migration_is_applied(tmp_path, store, monkeypatch, make_header, make_measurement):
    path = _finished_run(tmp_path / "runs", make_header(), [make_measurement()])
    store.ingest(read_run_file(path))
    current = schema.SCHEMA_VERSION
    assert store.schema_version() == current
    store.engine.dispose()

    calls = []

    def to_next(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN note TEXT"))
        conn.execute(sa.text("UPDATE runs SET note = 'migrated'"))

    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(schema.MIGRATIONS, current, to_next)
    upgraded = Store(str(tmp_path / "bench.db"))
    assert calls == [1]
    assert upgraded.schema_version() == current + 1
    with upgraded.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT note FROM runs")).scalars().all() == ["migrated"]
    assert len(upgraded.runs()) == 1  # the data is still there
    Store(str(tmp_path / "bench.db"))  # opening the upgraded store migrates nothing again
    assert calls == [1]


def test_version_1_store_migrates_forward(tmp_path):
    """A store written by version 1 (a golden dump, one row per sample) upgrades in place."""
    db = tmp_path / "v1.db"
    with sqlite3.connect(db) as conn:
        conn.executescript((FIXTURES / "store_v1.sql").read_text())
        v1_rows = conn.execute(
            "SELECT measurement_id, seconds FROM samples ORDER BY measurement_id, idx").fetchall()
        assert conn.execute("SELECT value FROM meta").fetchone() == ("1",)
    st = Store(str(db))
    assert st.schema_version() == schema.SCHEMA_VERSION
    (run,) = st.runs()
    ms = st.measurements([run.run_id])
    assert len(ms) == 2
    for m in ms:
        want = [sec for mid, sec in v1_rows if mid == m.measurement_id]
        assert len(want) == m.summary.n == 12
        assert st.samples(m.measurement_id) == want
    assert set(st.case_samples(run.run_id)) == {m.case_key for m in ms}


def test_store_ref_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Store().url.database == str(tmp_path / "bench.db")
    monkeypatch.setenv("BENCH_STORE", str(tmp_path / "env.db"))
    assert Store().url.database == str(tmp_path / "env.db")
    st = Store(f"sqlite:///{tmp_path / 'url.db'}")
    assert st.schema_version() == schema.SCHEMA_VERSION
    assert (tmp_path / "url.db").exists()


# -- pandas and export ---------------------------------------------------------------------------


EXPECTED_COLUMNS = {"run_id", "run_started_at", "seq", "case", "workload", "backend", "params",
                    "status", "error", "median", "ci_low", "ci_high", "n", "stop_reason",
                    "latency_s"}


def test_load_dataframe(real_run):
    st, result = real_run
    df = results.load(st)
    assert isinstance(df, pd.DataFrame)
    assert set(df.columns) >= EXPECTED_COLUMNS
    assert len(df) == 2
    assert set(df["run_id"]) == {result.run_id}
    assert list(df["workload"]) == ["spin", "spin"]
    assert list(df["backend"]) == ["numpy:cpu", "numpy:cpu"]
    assert [json.loads(p) for p in df["params"]] == [{"us": 10.0}, {"us": 200.0}]
    assert list(df["median"]) == pytest.approx(
        [m.to_dict()["summary"]["median"] for m in result.measurements])
    # By reference, and by path.
    assert len(load(st, ["latest"])) == 2
    assert len(load(st.url.database, [result.run_id[:8]])) == 2


def test_load_empty_store(store):
    assert len(load(store)) == 0


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_reads_back(tmp_path, real_run, fmt):
    st, _ = real_run
    df = load(st)
    out = tmp_path / f"out.{fmt}"
    export(df, fmt, out)
    back = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
    assert len(back) == len(df) == 2
    assert set(df.columns) <= set(back.columns)
    assert list(back["median"]) == pytest.approx(list(df["median"]))
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_export_errors(tmp_path, real_run):
    df = load(real_run[0])
    with pytest.raises(UserError, match="format"):
        export(df, "xlsx", tmp_path / "x.xlsx")
    with pytest.raises(UserError, match="does not exist"):
        export(df, "csv", tmp_path / "missing" / "x.csv")


# -- what the workload recorded (info) and the compile time of a first call made in its check ----


def test_info_is_stored_and_shown(tmp_path, store, make_header, make_measurement):
    m = make_measurement()
    m["info"] = {"build_options": "-DRB=3", "first_call_s": 19.0, "search": [1, 2]}
    store.ingest(read_run_file(_finished_run(tmp_path / "runs", make_header(), [m])))
    (got,) = store.measurements()
    assert got.info == m["info"]


def test_version_2_store_gains_info(tmp_path, make_header, make_measurement):
    """A version-2 store (no info column) upgrades; its old measurements have no info."""
    db = tmp_path / "v2.db"
    st = Store(str(db))
    st.ingest(read_run_file(_finished_run(tmp_path / "runs", make_header(), [make_measurement()])))
    st.engine.dispose()
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE measurements DROP COLUMN info")
        conn.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    st = Store(str(db))
    assert st.schema_version() == schema.SCHEMA_VERSION
    (old,) = st.measurements()
    assert old.info is None
    m = make_measurement(us=5.0)
    m["info"] = {"k": 1}
    st.ingest(read_run_file(_finished_run(tmp_path / "runs2", make_header(), [m])))
    assert [x.info for x in st.measurements()] == [None, {"k": 1}]


COMPILING_PLUGIN = '''
import time
from harness import Prepared, first_call, workload

@workload("compiling")
def compiling(backend):
    state = {"calls": 0}
    def op():
        state["calls"] += 1
        if state["calls"] == 1:
            time.sleep(0.3)  # the "compilation", taken by the check's first call
    info = {}
    return Prepared(op=op, check=lambda: first_call(op, backend, info), info=info)
'''


def test_compile_in_the_check_counts_in_compile_s(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from harness.cli import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.py").write_text(COMPILING_PLUGIN)
    res = CliRunner().invoke(cli, ["run", "--plugin", "p.py", "-w", "compiling", "--budget",
                                   "0.2", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    (m,) = json.loads(res.stdout)["measurements"]
    assert m["info"]["first_call_s"] >= 0.3  # a sleep lasts at least that long
    assert m["timing"]["compile_s"] >= 0.25  # steady calls take microseconds
    text = CliRunner().invoke(cli, ["show", "latest"]).stdout
    assert "compiling[numpy:cpu]" in text and "compile " in text
    shown = CliRunner().invoke(cli, ["show", "latest", "--json"])
    (stored,) = json.loads(shown.stdout)["measurements"]
    assert stored["info"]["first_call_s"] == m["info"]["first_call_s"]


# -- raw samples in pandas and in exports ---------------------------------------------------------


def _stored_samples(st):
    return {m.case_key: st.samples(m.measurement_id) for m in st.measurements()}


def test_load_with_samples_and_the_long_format(real_run):
    st, _ = real_run
    want = _stored_samples(st)
    df = results.load(st, samples=True)
    assert {c: list(v) for c, v in zip(df["case"], df["samples"], strict=True)} == want
    assert df["n"].tolist() == [len(want[c]) for c in df["case"]]
    assert "samples" not in results.load(st).columns  # only when asked
    long = results.samples(st)
    assert len(long) == sum(len(v) for v in want.values())
    for case, g in long.groupby("case"):
        assert g["sample"].tolist() == list(range(len(want[case])))
        assert g["seconds"].tolist() == want[case]
        assert g["device_seconds"].isna().all()  # numpy: no device time
    assert list(results.samples(st, runs=["latest"]).columns) == list(long.columns)


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_export_carries_samples_as_a_list_column(tmp_path, real_run, fmt):
    st, _ = real_run
    out = tmp_path / f"x.{fmt}"
    export(load(st, samples=True), fmt, out)
    back = (pd.read_json(out, precise_float=True) if fmt == "json" else pd.read_parquet(out))
    assert {c: list(v) for c, v in zip(back["case"], back["samples"], strict=True)} == \
        _stored_samples(st)  # every digit


def test_bench_export_samples(tmp_path, real_run):
    from click.testing import CliRunner

    from harness.cli import cli

    st, result = real_run
    args = ["--store", st.url.database, "--run-dir", str(result.path.parent)]
    csv = tmp_path / "long.csv"
    res = CliRunner().invoke(cli, ["export", "latest", "-o", str(csv), "--samples", *args])
    assert res.exit_code == 0, res.output
    long = pd.read_csv(csv)
    want = _stored_samples(st)
    assert len(long) == sum(len(v) for v in want.values())
    got = long.groupby("case")["seconds"].apply(list).to_dict()
    assert set(got) == set(want)
    for case, values in want.items():
        assert got[case] == pytest.approx(values, rel=1e-12)
    pq = tmp_path / "x.parquet"
    assert CliRunner().invoke(cli, ["export", "latest", "-o", str(pq), *args]).exit_code == 0
    assert [len(v) for v in pd.read_parquet(pq)["samples"]] == [len(v) for v in want.values()]
