"""Loading run files into the store: explicitly (`bench ingest`) and before every read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from results.runfile import PART, find_run_files, read_run_file, writer_alive
from results.store import Store


def ingest_paths(store: Store, paths: list[Path]) -> Counter[str]:
    """Ingest run files (or folders of them); counts of added/replaced/unchanged/running."""
    counts: Counter[str] = Counter()
    for path in find_run_files(paths):
        if path.suffix == ".json":  # run files are .jsonl; .json is pytest-benchmark's format
            from results.pytest_benchmark import to_run_record

            counts[store.ingest(to_run_record(path))] += 1
            continue
        record = read_run_file(path)
        if path.name.endswith(PART) and writer_alive(record.header):
            counts["running"] += 1
            continue
        counts[store.ingest(record)] += 1
    return counts


def sync_run_dir(store: Store, run_dir: Path) -> Counter[str]:
    """Pick up run files left in the run folder (e.g. by ranks, or by a run that was killed)."""
    if not run_dir.is_dir():
        return Counter()
    return ingest_paths(store, [run_dir])
