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


def test_a_launchers_own_rank_variable_tells_its_ranks_from_other_processes() -> None:
    launchers.names()
    batch = {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0"}
    assert not placement(batch).launched  # a batch script: Slurm's variables, but no step
    step = placement({**batch, "SLURM_PROCID": "2", "SLURM_STEP_ID": "0"})
    assert step.launched and (step.rank, step.world_size, step.launcher) == (2, 4, "srun")


def test_the_launcher_says_which_variable_takes_the_sites_mpi_type(tmp_path) -> None:
    from cluster import slurm
    from cluster.sites import Site

    def script(launcher: str) -> str:
        site = Site("t", launcher=launcher, mpi="pmix")
        return slurm.render(slurm.JobRequest("q", ["-w", "spin"], tmp_path, tmp_path, site,
                                             ntasks=2))

    assert "export SLURM_MPI_TYPE=pmix" in script("srun")
    assert "SLURM_MPI_TYPE" not in script("mpirun")


def test_ranks_reach_rank_0_on_the_allocations_first_node_only_where_they_run_there(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from cluster import launch

    monkeypatch.setenv("SLURM_JOB_NODELIST", "node[7-8]")
    monkeypatch.delenv("BENCH_NODES", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, "192.0.2.7\n192.0.2.8\n", ""))
    assert launch.rank0_host("srun") == "192.0.2.7"
    assert launch.rank0_host("mpirun") == "127.0.0.1"


def test_a_site_names_a_launcher_that_starts_ranks_in_a_batch_job(tmp_path) -> None:
    from cluster.sites import batch_launchers, load_site
    from harness.errors import UserError

    assert set(batch_launchers()) == {"srun", "mpirun"}  # not local, torchrun, flux
    for name in ("srun", "mpirun"):
        (tmp_path / f"{name}.toml").write_text(f'launcher = "{name}"\n')
        assert load_site(str(tmp_path / f"{name}.toml")).launcher == name
    (tmp_path / "torchrun.toml").write_text('launcher = "torchrun"\n')
    with pytest.raises(UserError, match="launcher must be one of mpirun, srun, got 'torchrun'"):
        load_site(str(tmp_path / "torchrun.toml"))
