"""Loading run files into the store: explicitly (`bench ingest`) and before every read.

A file that breaks the run file schema, or reuses a stored run id for another run, is never
stored in part: it is reported in one line (`on_bad`) and skipped, or raised (BadRunFile).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results.runfile import (
    PART,
    SUFFIX,
    BadRunFile,
    find_run_files,
    read_run_file,
    writer_alive,
)
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
    if path.name.endswith(PART) and writer_alive(record.run.to_dict()):
        return "running", record.run_id
    return store.ingest(record), record.run_id


def warn_skipped(exc: BadRunFile) -> None:
    """How a read that ingests by the way reports a bad file: one warning line, then on."""
    sys.stderr.write(f"bench: warning: skipped {exc}\n")


def sync_run_dir(store: Store, run_dir: Path, on_bad: OnBad = warn_skipped) -> Counter[str]:
    """Pick up run files left in the run folder (e.g. by ranks, or by a run that was killed);
    a bad one is skipped with a warning, so that it cannot stop every read.

    Only files for this store: one made for another store (its header's `store`) is left to
    `bench ingest`, and one made with no store is anyone's. A file whose run is stored already
    is not read again: a finished one does not change, nor does the `.part` file of a writer
    that is gone (`bench ingest` reads every file it is given)."""
    if not run_dir.is_dir():
        return Counter()
    known = store.run_statuses()
    wanted = []
    for path in find_run_files([run_dir]):
        part = path.name.endswith(PART)
        named = path.name.removesuffix(PART).removesuffix(SUFFIX)  # a run's file bears its id
        stored = known.get(named)
        if stored is not None and not part:
            continue
        header = _header(path)
        if header is None:  # unreadable: the full read says why
            wanted.append(path)
            continue
        if header.get("store") not in (None, store.name):
            continue
        if (stored == "partial" and header.get("run_id") == named
                and not writer_alive(header)):
            continue
        wanted.append(path)
    return ingest_paths(store, wanted, on_bad) if wanted else Counter()


def _header(path: Path) -> dict[str, Any] | None:
    """A run file's first record, read alone; None where it is not one."""
    try:
        with path.open("rb") as fh:
            first = json.loads(fh.readline())
    except (OSError, ValueError):
        return None
    return first if isinstance(first, dict) and first.get("kind") == "run" else None
