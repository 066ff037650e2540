"""Typed workload parameters: declared once, parsed from the CLI and suites, validated up front."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_TYPES = ("int", "float", "str", "bool", "size")


def parse_size(text: str) -> int:
    """'4096', '64KiB', '1MiB', '2GB' -> bytes."""
    m = _SIZE_RE.match(text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 4096, 64KiB, 1MiB, 2GB)")
    value = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if value != int(value):
        raise ValueError(f"not a whole number of bytes: {text!r}")
    return int(value)


@dataclass(frozen=True)
class Param:
    """One parameter of a workload: its type, default, bounds and help text."""

    type: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: Sequence[Any] | None = field(default=None)
    # Backend models the parameter applies to (None: all). On other models it is left out of the
    # case, so it never changes their case keys; giving it explicitly there is an error.
    models: tuple[str, ...] | None = None
    # (other parameter, its values) where this one applies, e.g. ("mode", ("uni", "bi")).
    # Elsewhere it is left out of the case, so a sweep over it does not repeat that case.
    when: tuple[str, tuple[Any, ...]] | None = None
    # The default means "nothing chosen" (empty, auto): a case with the default leaves the
    # parameter out, so its key names only what was chosen (the workload reads it as absent).
    omit_default: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"Param type must be one of {_TYPES}, got {self.type!r}")

    def applies(self, values: dict[str, Any]) -> bool:
        """Whether this parameter belongs in a case with these (other) values."""
        return self.when is None or values.get(self.when[0]) in self.when[1]

    def parse(self, value: Any, where: str) -> Any:
        """Convert a CLI string or TOML value to this type and check it; UserError if wrong."""
        try:
            converted = self._convert(value)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: {exc}") from None
        if self.choices is not None and converted not in self.choices:
            opts = ", ".join(map(str, self.choices))
            raise UserError(f"{where}: {converted!r} is not one of: {opts}")
        if self.min is not None and converted < self.min:
            raise UserError(f"{where}: {converted} is below the minimum {self.min}")
        if self.max is not None and converted > self.max:
            raise UserError(f"{where}: {converted} is above the maximum {self.max}")
        return converted

    def _convert(self, value: Any) -> Any:
        t = self.type
        if t == "str":
            if not isinstance(value, str):
                raise ValueError(f"expected text, got {value!r}")
            return value
        if t == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if t == "size":
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                return parse_size(value)
            raise ValueError(f"expected a size such as 1MiB, got {value!r}")
        if t == "int":
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    raise ValueError(f"expected an integer, got {value!r}") from None
            raise ValueError(f"expected an integer, got {value!r}")
        # float
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ValueError(f"expected a number, got {value!r}") from None
        else:
            raise ValueError(f"expected a number, got {value!r}")
        if number != number:  # NaN passes every min/max comparison
            raise ValueError(f"expected a number, got {value!r}")
        return number

    def describe(self) -> str:
        bits = [self.type, f"default {self.default}"]
        if self.choices is not None:
            bits.append("one of " + "|".join(map(str, self.choices)))
        if self.min is not None:
            bits.append(f">= {self.min}")
        if self.max is not None:
            bits.append(f"<= {self.max}")
        if self.models is not None:
            bits.append("only on " + "|".join(self.models))
        if self.when is not None:
            bits.append(f"only with {self.when[0]}=" + "|".join(map(str, self.when[1])))
        if self.omit_default:
            bits.append("left out of the case key when default")
        return ", ".join(bits)
