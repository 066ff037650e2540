"""pandas is the analysis API: the store as a DataFrame, and its export to files."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import UserError
from results.schema import SUMMARY_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from results.store import Store

FORMATS = ("csv", "json", "parquet")


def load(store: Store | str | None = None, runs: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per measurement: run, case, workload, backend, params (JSON), summary in
    seconds, stop rule and one column per metric. `runs` are run refs (id, prefix, latest~N)."""
    import pandas as pd

    from results.store import Store

    st = store if isinstance(store, Store) else Store(store)
    ids = [st.resolve(r) for r in runs] if runs is not None else None
    rows = []
    for m in st.measurements(ids):
        row = {
            "run_id": m["run_id"],
            "run_started_at": m["run_started_at"],
            "seq": m["seq"],
            "case": m["case_key"],
            "workload": m["workload"],
            "backend": m["backend"],
            "params": json.dumps(m["params"], sort_keys=True),
            "status": m["status"],
            "error": m["error"],
            **{c: m[c] for c in SUMMARY_COLUMNS},
            "stop_reason": (m["timing"] or {}).get("stop_reason"),
            "block": (m["timing"] or {}).get("block"),
            "block_rule": (m["timing"] or {}).get("block_rule"),
            **(m["metrics"] or {}),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def export(df: pd.DataFrame, fmt: str, path: Path) -> None:
    """Write to a temporary name in the target folder, then rename: never a half-written file."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    folder = path.resolve().parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        elif fmt == "json":
            df.to_json(tmp, orient="records", indent=1)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
