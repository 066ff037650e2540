"""Errors that end a command with one clear line instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: says what is wrong and how to fix it. The CLI prints it and exits 2."""

    exit_code = 2


class BackendUnavailable(UserError):
    """A backend's package is not installed or its device is absent."""


class CheckFailed(Exception):
    """A workload computed a wrong result: the case fails, loudly, whatever its speed."""
