"""`local`: this `bench` starts the ranks itself, on this host."""

from __future__ import annotations

from collections.abc import Sequence

from cluster.launchers import Launcher, register


@register
class Local(Launcher):
    name = "local"

    def command(self, n: int, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
        return None
