"""pandas is the analysis API: the store as a DataFrame, and its export to files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import UserError
from harness.files import write_atomic

if TYPE_CHECKING:
    import pandas as pd

    from results.store import Store
    from results.stored import StoredMeasurement

FORMATS = ("csv", "json", "parquet")


def _open(store: Store | str | None, runs: Sequence[str] | None
          ) -> tuple[Store, list[StoredMeasurement]]:
    from results.store import Store

    st = store if isinstance(store, Store) else Store(store)
    ids = [st.resolve(r) for r in runs] if runs is not None else None
    return st, st.measurements(ids)


def load(store: Store | str | None = None, runs: Sequence[str] | None = None,
         samples: bool = False) -> pd.DataFrame:
    """One row per measurement: run, case, workload, backend, params (JSON), summary in
    seconds, stop rule and one column per metric. `runs` are run refs (id, prefix, latest~N).
    With `samples`, also `samples` and `device_samples`: each measurement's raw per-call
    seconds as a list (device_samples None where the device kept no time of its own)."""
    import pandas as pd

    st, measurements = _open(store, runs)
    raw = st.samples_of([m.measurement_id for m in measurements]) if samples else {}
    rows = []
    for m in measurements:
        extra: dict[str, Any] = {}
        if samples:
            sec, dev = raw.get(m.measurement_id, (np.empty(0), None))
            extra = {"samples": sec.tolist(),
                     "device_samples": dev.tolist() if dev is not None else None}
        timing = m.timing
        row = {
            "run_id": m.run_id,
            "run_started_at": m.run_started_at,
            "seq": m.seq,
            "case": m.case_key,
            "workload": m.workload,
            "backend": m.backend,
            "params": json.dumps(m.params, sort_keys=True),
            "status": m.status,
            "error": m.error,
            **m.summary_columns(),
            "stop_reason": timing.stop_reason if timing else None,
            "block": timing.block if timing else None,
            "block_rule": timing.block_rule if timing else None,
            **(m.metrics or {}),
            **extra,
        }
        rows.append(row)
    return pd.DataFrame(rows)


SAMPLE_COLUMNS = ("run_id", "seq", "case", "workload", "backend", "params", "sample", "seconds",
                  "device_seconds")


def samples(store: Store | str | None = None, runs: Sequence[str] | None = None
            ) -> pd.DataFrame:
    """One row per raw sample (long format): run_id, seq, case, workload, backend, params
    (JSON), sample (its index in the measurement), seconds (per call) and device_seconds (NaN
    where the device kept none). Failed measurements have no samples."""
    import pandas as pd

    st, measurements = _open(store, runs)
    raw = st.samples_of([m.measurement_id for m in measurements])
    parts = []
    for m in measurements:
        sec, dev = raw.get(m.measurement_id, (np.empty(0), None))
        if not len(sec):
            continue
        n = len(sec)
        parts.append(pd.DataFrame({
            "run_id": m.run_id, "seq": m.seq, "case": m.case_key,
            "workload": m.workload, "backend": m.backend,
            "params": json.dumps(m.params, sort_keys=True), "sample": np.arange(n),
            "seconds": sec,
            "device_seconds": dev if dev is not None and len(dev) == n else np.full(n, np.nan),
        }))
    if not parts:
        return pd.DataFrame({c: [] for c in SAMPLE_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def _plain(value: Any) -> Any:
    """A DataFrame cell as JSON: numbers at full precision, NaN/inf and missing as null."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def export(df: pd.DataFrame, fmt: str, path: Path) -> None:
    """Write to a temporary name in the target folder, then rename: never a half-written file."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")

    def write(tmp: Path) -> None:
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        elif fmt == "json":
            # not DataFrame.to_json: it rounds to 10 decimal places, 4 digits of a microsecond
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump([{k: _plain(v) for k, v in r.items()} for r in df.to_dict("records")],
                          fh, indent=1, allow_nan=False)
        else:
            df.to_parquet(tmp, index=False)

    write_atomic(path, write)
