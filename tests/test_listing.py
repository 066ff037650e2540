"""`bench list` imports no framework; whether a backend works here comes from a real probe
(`--probe`), remembered while nothing it depends on changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import ClassVar

import pytest

from harness.backends.base import Backend, BackendUnavailable
from harness.backends.probe import cache_path, usability

FRAMEWORKS = ("torch", "jax", "jaxlib", "onnxruntime", "pyopencl", "mpi4py", "grpc")


def test_list_imports_no_framework(tmp_path):
    code = ("import sys\nfrom harness.cli import main\n"
            "try:\n    main(['list'])\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', [m for m in {FRAMEWORKS!r} if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "BENCH_CACHE_DIR": str(tmp_path)},
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout[-500:]
    assert "numpy:cpu" in proc.stdout and "gemm" in proc.stdout


class Counted(Backend):
    """A backend whose package (json) is installed and whose check counts its calls."""

    model = "counted"
    package = "json"
    extra = "none"
    devices = ("cpu", "gpu")
    calls: ClassVar[list[str]] = []

    def _setup(self) -> None:
        Counted.calls.append(self.device)
        if self.device == "gpu":
            raise BackendUnavailable("counted:gpu: no gpu here")


class Absent(Counted):
    model = "absent"
    package = "no_such_package_for_accelbench"


@pytest.fixture
def probe_env(monkeypatch, tmp_path):
    from harness.backends import base

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(base.registry._items, "counted", Counted)
    monkeypatch.setitem(base.registry._items, "absent", Absent)
    Counted.calls.clear()
    return tmp_path


SPECS = [("counted:cpu", Counted), ("counted:gpu", Counted), ("absent:cpu", Absent)]


def test_not_probed_until_asked_then_remembered(probe_env, monkeypatch):
    first = usability(SPECS)
    assert [u.usable for u in first] == [None, None, False]
    assert "not probed yet" in first[0].reason and "--probe" in first[0].reason
    assert "no_such_package_for_accelbench" in first[2].reason
    assert Counted.calls == []  # nothing was set up
    probed = usability(SPECS, probe=True)
    assert [u.usable for u in probed] == [True, False, False]
    assert probed[1].reason == "counted:gpu: no gpu here"
    assert sorted(Counted.calls) == ["cpu", "gpu"]
    assert set(json.loads(cache_path().read_text())["entries"]) == {"counted:cpu", "counted:gpu"}
    again = usability(SPECS)
    assert again == probed and len(Counted.calls) == 2  # from the cache: no new setup
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # another device selection: probe again
    assert [u.usable for u in usability(SPECS)] == [None, None, False]


def test_a_broken_cache_is_not_probed(probe_env):
    cache_path().write_text("{not json")
    assert [u.usable for u in usability(SPECS)] == [None, None, False]
    assert [u.usable for u in usability(SPECS, probe=True)] == [True, False, False]
