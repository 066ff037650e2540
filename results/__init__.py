"""The results store and what is made of it."""

from __future__ import annotations

from typing import Any


def load(*args: Any, **kwargs: Any) -> Any:
    """`results.load(store=None, runs=None, samples=False) -> pandas.DataFrame`, one row per
    measurement (with `samples`, its raw samples as lists); see results.frame.load."""
    from results.frame import load as _load

    return _load(*args, **kwargs)


def samples(*args: Any, **kwargs: Any) -> Any:
    """`results.samples(store=None, runs=None) -> pandas.DataFrame`, one row per raw sample;
    see results.frame.samples."""
    from results.frame import samples as _samples

    return _samples(*args, **kwargs)


__all__ = ["load", "samples"]
