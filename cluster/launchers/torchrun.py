"""`torchrun`: PyTorch's elastic launcher, on this host."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from cluster.launchers import Launcher, register


@register
class Torchrun(Launcher):
    name = "torchrun"
    provides = "PyTorch: pip install 'accelbench[torch]'"
    rank_variables = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

    def command(self, n: int, args: Sequence[str], env: dict[str, str]) -> list[str] | None:
        if importlib.util.find_spec("torch") is None:
            raise self.missing()
        return [sys.executable, "-m", "cluster.launchers.torchrun_agent",
                "--nproc-per-node", str(n),
                "--master-addr", env["MASTER_ADDR"], "--master-port", env["MASTER_PORT"],
                "-m", "harness", *args]
