"""What a read picks up from the run folder: only this store's run files (or files made for no
store), and never a file again once its run is stored and the file can no longer change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import results.ingest

FAST = ("--budget", "0.05", "-q")
KILLED = Path(__file__).parent / "fixtures" / "runs" / "v1" / "killed.jsonl.part"


def test_a_run_made_for_another_store_stays_out_until_ingested(bench_inproc, workdir):
    assert bench_inproc("run", "-w", "spin", "-p", "us=5", *FAST, "--store", "other.db",
                        "--tag", "only=other").rc == 0
    assert bench_inproc("runs", "--json").json() == []  # ./bench.db: not its store
    (theirs,) = bench_inproc("runs", "--json", "--store", "other.db").json()
    assert theirs["tags"] == {"only": "other"}
    assert bench_inproc("ingest", "bench-runs").stdout.strip() == "1 added"  # when asked
    assert [r["run_id"] for r in bench_inproc("runs", "--json").json()] == [theirs["run_id"]]


def test_a_run_made_with_no_store_is_picked_up_by_the_store_that_reads_it(bench_inproc,
                                                                          workdir):
    assert bench_inproc("run", "-w", "spin", "-p", "us=5", *FAST, "--no-store").rc == 0
    (run,) = bench_inproc("runs", "--json").json()
    assert run["status"] == "complete"


def test_stored_files_are_not_read_again(bench_inproc, workdir, monkeypatch):
    assert bench_inproc("run", "-w", "spin", "-p", "us=5", *FAST, "--no-store").rc == 0
    (workdir / "bench-runs").mkdir(exist_ok=True)
    killed = json.loads(KILLED.read_text().splitlines()[0])["run_id"]  # a writer long gone:
    shutil.copyfile(KILLED, workdir / "bench-runs" / f"{killed}.jsonl.part")  # its own name
    reads: list[str] = []
    real = results.ingest.read_run_file
    monkeypatch.setattr(results.ingest, "read_run_file",
                        lambda path: reads.append(Path(path).name) or real(path))
    runs = bench_inproc("runs", "--json").json()
    assert sorted(r["status"] for r in runs) == ["complete", "partial"]
    assert len(reads) == 2
    reads.clear()
    assert len(bench_inproc("runs", "--json").json()) == 2
    assert bench_inproc("show", "latest", "--json").rc == 0
    assert reads == []  # neither the finished file nor the recovered .part is parsed again
