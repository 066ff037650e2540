"""Launchers are one module each (cluster/launchers/): the registry, the CLI's choices, the rank
variables they register, and a launcher that is not installed here (flux)."""

from __future__ import annotations

import shutil

import pytest

from cluster import launchers
from harness.placement import placement


def test_the_cli_offers_exactly_the_registered_launchers(bench) -> None:
    res = bench("run", "--help")
    assert res.rc == 0
    for name in launchers.names():
        assert name in res.stdout
    assert set(launchers.names()) >= {"local", "mpirun", "srun", "torchrun", "flux"}


def test_a_launchers_rank_variables_tell_a_rank_its_place() -> None:
    launchers.names()  # load them: each registers its variables
    where = placement({"FLUX_TASK_RANK": "3", "FLUX_JOB_SIZE": "8", "FLUX_TASK_LOCAL_ID": "1"})
    assert (where.rank, where.world_size, where.local_rank, where.launcher) == (3, 8, 1, "flux")


def test_flux_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/opt/flux/bin/{name}")
    cmd = launchers.get("flux").command(4, ["run", "-w", "spin"], {"BENCH_LAUNCHED": "flux"})
    assert cmd[:4] == ["/opt/flux/bin/flux", "run", "-n", "4"]
    assert "--env=BENCH_LAUNCHED" in cmd and cmd[-3:] == ["run", "-w", "spin"]


def test_a_launcher_not_installed_is_one_line_naming_its_package(bench) -> None:
    if shutil.which("flux"):
        pytest.skip("flux is installed here")
    res = bench("run", "-w", "spin", "--launcher", "flux", "-n", "2")
    assert res.rc == 2 and len(res.err_lines) == 1
    assert "flux is not installed here" in res.stderr and "flux-core" in res.stderr


def test_unknown_launcher_names_the_known_ones() -> None:
    from harness.errors import UserError

    with pytest.raises(UserError, match="known: local, mpirun"):
        launchers.get("pbsdsh")
