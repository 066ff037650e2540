"""Loading run files into the store: explicitly (`bench ingest`) and before every read.

A file that breaks the run file schema, or reuses a stored run id for another run, is never
stored in part: it is reported in one line (`on_bad`) and skipped, or raised (BadRunFile).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from results.runfile import PART, BadRunFile, find_run_files, read_run_file, writer_alive
from results.store import RunConflict, Store

OnBad = Callable[[BadRunFile], None]


def ingest_paths(store: Store, paths: list[Path], on_bad: OnBad | None = None) -> Counter[str]:
    """Ingest run files (or folders of them); counts of added/replaced/unchanged/running, and
    `rejected` for the files given to `on_bad` (without it, the first such file raises)."""
    counts: Counter[str] = Counter()
    sources: dict[str, Path] = {}  # run id -> the file it was read from in this call
    for path in find_run_files(paths):
        try:
            outcome, run_id = _ingest_file(store, path)
        except BadRunFile as exc:
            if isinstance(exc, RunConflict) and exc.run_id in sources:
                exc = exc.naming(sources[exc.run_id])
            if on_bad is None:
                raise exc from None
            on_bad(exc)
            counts["rejected"] += 1
            continue
        sources.setdefault(run_id, path)
        counts[outcome] += 1
    return counts


def _ingest_file(store: Store, path: Path) -> tuple[str, str]:
    if path.suffix == ".json":  # run files are .jsonl; .json is pytest-benchmark's format
        from results.pytest_benchmark import to_run_record

        record = to_run_record(path)
        return store.ingest(record), record.run_id
    record = read_run_file(path)
    if path.name.endswith(PART) and writer_alive(record.header):
        return "running", record.run_id
    return store.ingest(record), record.run_id


def warn_skipped(exc: BadRunFile) -> None:
    """How a read that ingests by the way reports a bad file: one warning line, then on."""
    sys.stderr.write(f"bench: warning: skipped {exc}\n")


def sync_run_dir(store: Store, run_dir: Path, on_bad: OnBad = warn_skipped) -> Counter[str]:
    """Pick up run files left in the run folder (e.g. by ranks, or by a run that was killed);
    a bad one is skipped with a warning, so that it cannot stop every read."""
    if not run_dir.is_dir():
        return Counter()
    return ingest_paths(store, [run_dir], on_bad)
