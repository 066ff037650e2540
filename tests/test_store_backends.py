"""The same store code on SQLite and on a real PostgreSQL server.

PostgreSQL comes from $BENCH_TEST_PG_URL (`.ci/run` starts one) or, where PostgreSQL is installed,
from a throwaway server this module starts with `.ci/postgres`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from results import schema
from results.runfile import RunFileWriter
from results.store import Store

ROOT = Path(__file__).resolve().parents[1]
PG_SCRIPT = ROOT / ".ci" / "postgres"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    url = os.environ.get("BENCH_TEST_PG_URL")
    if url:
        yield url
        return
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    folder.chmod(0o755)  # the server runs as the postgres user
    port = str(20000 + os.getpid() % 20000)
    out = subprocess.run([str(PG_SCRIPT), "start", str(folder / "pg"), port],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        yield out.stdout.strip()
    finally:
        subprocess.run([str(PG_SCRIPT), "stop", str(folder / "pg")], timeout=60)


def _fresh_pg_database(server_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.engine.make_url(server_url).set(database=name).render_as_string(
        hide_password=False))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "bench.db")
    return _fresh_pg_database(request.getfixturevalue("pg_server"))


def _write_runs(folder: Path, make_header, make_measurement, count: int) -> list[str]:
    ids = []
    for i in range(count):
        header = make_header(started_at=f"2024-01-01T00:00:{i:02d}.000000+00:00")
        w = RunFileWriter(folder, header)
        for us in (10.0, 20.0, 30.0):
            w.append(make_measurement(us + i % 3, n=50))
        w.finish("complete", f"2024-01-01T00:01:{i:02d}+00:00")
        ids.append(header["run_id"])
    return ids


def _counts(url: str) -> dict[str, int]:
    st = Store(url)
    with st.engine.connect() as conn:
        out = {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
               for t in (schema.runs, schema.measurements, schema.samples, schema.cases)}
        out["sample_total"] = int(conn.execute(sa.select(sa.func.sum(schema.samples.c.n)))
                                  .scalar_one() or 0)
    st.engine.dispose()
    return out


def test_round_trip_and_reads(store_url, bench):
    r = bench("run", "-w", "spin", "-p", "us=20,50", "--budget", "0.2", "-q", "--json",
              "--tag", "k=v", "--store", store_url)
    assert r.rc == 0, r.stderr
    run = r.json()
    st = Store(store_url)
    assert st.schema_version() == schema.SCHEMA_VERSION
    assert st.resolve("latest") == run["run_id"] == st.resolve("tag:k=v")
    stored = st.measurements([run["run_id"]])
    assert [m.median for m in stored] == [m["summary"]["median"] for m in run["measurements"]]
    samples = st.case_samples(run["run_id"])
    assert [len(v) for v in samples.values()] == [m["summary"]["n"] for m in run["measurements"]]
    shown = bench("show", "latest", "--json", "--store", store_url)
    assert shown.rc == 0 and len(shown.json()["measurements"]) == 2
    again = bench("ingest", "bench-runs", "--store", store_url)
    assert again.rc == 0 and "1 unchanged" in again.stdout
    cmp = bench("compare", "latest", "latest", "--format", "json", "--store", store_url)
    assert cmp.rc == 0 and cmp.json()["counts"]["unchanged"] == 2


def test_concurrent_ingest_from_8_processes(store_url, tmp_path, bench, make_header,
                                            make_measurement):
    folder = tmp_path / "runs"
    ids = _write_runs(folder, make_header, make_measurement, 12)
    files = sorted(folder.glob("*.jsonl"))

    def ingest(i: int):
        # each process ingests every file, starting at a different one, all at once
        order = [str(p) for p in files[i:] + files[:i]]
        return bench("ingest", *order, "--store", store_url, timeout=180)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ingest, range(8)))
    for r in results:
        assert r.rc == 0, r.stderr
    added = sum(int(r.stdout.split(" added")[0].split()[-1]) for r in results
                if " added" in r.stdout)
    assert added == 12  # each run added exactly once, by whichever process got there first
    counts = _counts(store_url)
    assert counts["runs"] == 12
    assert counts["measurements"] == 36
    assert counts["samples"] == 36 and counts["sample_total"] == 36 * 50
    assert counts["cases"] == len({us + i % 3 for us in (10, 20, 30) for i in range(12)})
    assert {r.run_id for r in Store(store_url).runs()} == set(ids)


def test_credentials_never_appear(pg_server, bench):
    url = sa.engine.make_url(_fresh_pg_database(pg_server)).set(password="hunter2-secret")
    full = url.render_as_string(hide_password=False)
    assert "hunter2-secret" in full
    ok = bench("run", "-w", "spin", "-p", "us=20", "--budget", "0.2", "-q", "--store", full)
    assert ok.rc == 0, ok.stderr
    assert "hunter2-secret" not in ok.stdout + ok.stderr
    assert "***" in ok.stdout  # "stored in postgresql+psycopg://bench:***@..."
    bad = bench("runs", "--store", str(url.set(port=1).render_as_string(hide_password=False)))
    assert bad.rc == 2
    assert "hunter2-secret" not in bad.stdout + bad.stderr
    env_bad = bench("runs", env={"BENCH_STORE": str(url.set(database="no_such_db")
                                                    .render_as_string(hide_password=False))})
    assert env_bad.rc == 2 and "hunter2-secret" not in env_bad.stderr
    for f in Path("bench-runs").glob("*.jsonl"):
        assert "hunter2-secret" not in f.read_text()
