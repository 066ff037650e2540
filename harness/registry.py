"""Workloads and backends register by name; built-ins and third parties alike through entry points.

A third party adds a workload with an entry point in the `accelbench.workloads` group, or with
`bench run --plugin path/to/file.py`, a file that defines workloads with `@harness.workload`.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from harness.errors import UserError

if TYPE_CHECKING:
    from importlib import metadata

T = TypeVar("T")
# A name is shown in case keys, on terminals and in file names: letters, digits and _ . + -
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def check_name(name: object, kind: str) -> None:
    """Refuse a workload, parameter or backend name with control characters, spaces or the
    characters of a case key ([ ] ( ) , = :), which would print as something else."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(f"{kind} name {name!r} is not allowed: use up to 64 letters, digits and "
                        "_ . + - (starting with a letter or digit)")


class Registry(Generic[T]):
    """Name -> object, filled by `register` and, lazily, by an entry-point group."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._entry_points: dict[str, metadata.EntryPoint] | None = None

    def register(self, name: str, obj: T) -> T:
        check_name(name, self.kind)
        self._items[name] = obj
        return obj

    def _eps(self) -> dict[str, metadata.EntryPoint]:
        if self._entry_points is None:
            from importlib import metadata  # (tens of ms: not before a registry is read)

            self._entry_points = {ep.name: ep for ep in metadata.entry_points(group=self.group)}
        return self._entry_points

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._eps()))

    def get(self, name: str) -> T:
        if name not in self._items and name in self._eps():
            ep = self._eps()[name]
            try:
                self._items[name] = ep.load()
            except ImportError as exc:
                raise UserError(f"{self.kind} {name!r} could not be loaded ({exc})") from None
        try:
            return self._items[name]
        except KeyError:
            raise UserError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; known: {', '.join(known)}"

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._eps()


def load_plugin(path: str | Path) -> None:
    """Import a Python file whose `@workload` definitions register themselves."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"plugin file not found: {p}")
    module_name = f"accelbench_plugin_{abs(hash(str(p.resolve())))}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, p)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot load plugin {p}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(f"plugin {p} failed to import: {type(exc).__name__}: {exc}") from None

