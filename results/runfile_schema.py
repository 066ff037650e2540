"""The run file's JSON Schema (results/schemas/run-file.schema.json): what is wrong with a line.

Every line a reader takes in is checked against the schema for its kind of record; a problem is
told as one line (`summary.median: 'nan' is not of type 'number'`), never as a traceback later.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("schemas") / "run-file.schema.json"
DEFS = {"run": "header", "measurement": "measurement", "end": "end"}  # record kind -> $defs
# Checked here rather than by the validator, which takes ~7 us per item: a case may hold
# 100,000 samples, and every read command reads the run folder.
SAMPLE_ARRAYS = ("samples", "device_samples")
_SHOWN = 40  # characters of an offending value shown in a message


@functools.cache
def schema() -> dict[str, Any]:
    """The schema as a dict (its `$defs` name each kind of line)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@functools.cache
def _validator(definition: str) -> Any:
    from jsonschema import Draft202012Validator  # costs ~0.1 s: only when a file is read

    return Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": schema()["$defs"]})


def problem(record: dict[str, Any]) -> str | None:
    """What the schema finds wrong with one record, in one line; None when it holds."""
    kind = record.get("kind")
    definition = DEFS.get(kind) if isinstance(kind, str) else None
    if definition is None:
        return f"unknown record kind {_short(kind)}"
    from jsonschema.exceptions import best_match

    rest = {k: v for k, v in record.items() if k not in SAMPLE_ARRAYS}
    error = best_match(_validator(definition).iter_errors(rest))
    if error is not None:
        where = error.json_path.removeprefix("$").removeprefix(".")
        message = error.message.replace(repr(error.instance), _short(error.instance))
        return f"{where}: {message}" if where else message
    for key in SAMPLE_ARRAYS:
        if key in record:
            bad = _not_numbers(record[key])
            if bad is not None:
                return f"{key}{bad}"
    return None


def _not_numbers(value: Any) -> str | None:
    """The schema's `seconds` (an array of numbers) or null, checked at list speed."""
    if value is None:
        return None
    if not isinstance(value, list):
        return f": {_short(value)} is not of type 'array'"
    for i, x in enumerate(value):
        if type(x) is not float and type(x) is not int:  # bool is not a number here
            return f"[{i}]: {_short(x)} is not of type 'number'"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."
