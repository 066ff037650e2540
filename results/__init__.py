"""The results store and what is made of it."""

from __future__ import annotations

from typing import Any


def load(*args: Any, **kwargs: Any) -> Any:
    """`results.load(store=None, runs=None) -> pandas.DataFrame`; see results.frame.load."""
    from results.frame import load as _load

    return _load(*args, **kwargs)


__all__ = ["load"]
