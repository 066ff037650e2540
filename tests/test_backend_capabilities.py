"""What a backend, kernel module or launcher can do is declared by it, and asked for by name of
the capability, never by checking the backend's name elsewhere."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from cluster import launchers
from harness.backends.base import parse_backend
from harness.errors import UserError
from kernels import check_dtype, kernel_dtypes
from kernels.collectives.torch_dist import GlooBackend, NcclBackend

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("numpy", "torch", "jax", "onnxruntime", "opencl", "nccl", "gloo", "mpi", "grpc")
# `backend.model == "torch"`, `model in ("torch", ...)`, `.startswith("mpi:")` and the like
NAME_CHECK = re.compile(
    r"""(model\s*(==|!=|in|not\ in)\s*\(?\s*|startswith\(\s*)["'](""" + "|".join(MODELS)
    + r""")[:"']""")


def test_no_code_outside_a_backend_module_checks_a_backend_name():
    own = {ROOT / "harness" / "backends", ROOT / "kernels" / "collectives",
           ROOT / "kernels" / "array", ROOT / "kernels" / "nn"}
    found = []
    for package in ("harness", "workloads", "results", "cluster", "kernels"):
        for path in (ROOT / package).rglob("*.py"):
            if path.parent in own:
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if NAME_CHECK.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


# `launcher == "srun"`, `site.launcher != "local"`, `launcher in ("srun", "flux")`
LAUNCHER_CHECK = re.compile(
    r"""launcher\w*\s*(==|!=|in|not\ in)\s*\(?\s*["'](""" + "|".join(launchers.names())
    + r""")["']""")


def test_no_code_outside_a_launcher_module_checks_a_launcher_name():
    found = []
    for package in ("harness", "workloads", "results", "cluster", "kernels"):
        for path in (ROOT / package).rglob("*.py"):
            if path.parent == ROOT / "cluster" / "launchers":
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if LAUNCHER_CHECK.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_launcher_check_pattern_catches_what_it_forbids():
    for line in ('if launcher == "srun" and x:', "req.site.launcher == 'srun'",
                 'placement().launcher != "local"', 'if launcher in ("torchrun", "flux"):'):
        assert LAUNCHER_CHECK.search(line), line
    assert not LAUNCHER_CHECK.search('launcher: str = "srun"')


def test_the_name_check_pattern_catches_what_it_forbids():
    for line in ('if backend.model == "opencl":', "if model in ('torch', 'nccl'):",
                 'p.case.backend.startswith("mpi:")'):
        assert NAME_CHECK.search(line), line
    assert not NAME_CHECK.search('model = "torch"')


@pytest.mark.parametrize("spec,index", [
    ("numpy:cpu", None), ("torch:cpu", None), ("torch:cuda", 0), ("torch:cuda:3", 3),
    ("jax:gpu:1", 1), ("jax:tpu", None), ("opencl:pocl", None), ("nccl", 0), ("gloo", None),
])
def test_each_backend_says_which_gpu_it_computes_on(spec, index):
    backend = parse_backend(spec)
    assert backend.gpu_index() == index
    assert backend.gpu_uuid() is None  # nothing has opened a GPU here


def test_host_backends_are_the_host_in_the_peaks_catalogue():
    for spec in ("numpy:cpu", "torch:cpu"):
        backend = parse_backend(spec)
        if backend.unusable_reason():
            continue
        assert backend.catalogue_device()[1] is True, spec


@pytest.mark.skipif(importlib.util.find_spec("pyopencl") is None, reason="pyopencl not installed")
def test_an_opencl_device_is_the_host_when_its_type_is_cpu():
    backend = parse_backend("opencl")  # the default device: the first platform's first device
    if backend.unusable_reason() and "no OpenCL platform" in backend.unusable_reason():
        pytest.skip(f"no OpenCL device here: {backend.unusable_reason()}")
    name, host = backend.catalogue_device()
    assert name == backend.describe()["device_name"]
    assert host is (backend.describe()["device_type"] == "cpu")


def test_torch_distributed_transports_declare_what_differs(monkeypatch):
    # before_init sets GLOO_SOCKET_IFNAME in this process's environment: undone afterwards
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "unset-by-the-test")
    monkeypatch.delenv("GLOO_SOCKET_IFNAME")
    gloo, nccl = GlooBackend("cpu"), NcclBackend("cuda")
    assert gloo.init_options("dev") == {}
    assert nccl.init_options("dev") == {"device_id": "dev"}
    record = gloo.before_init("127.0.0.1")
    assert "gloo_socket_ifname" in record or "gloo_socket_ifname_from" in record, record
    assert nccl.before_init("127.0.0.1") == {}


def test_mpi_ranks_need_a_launcher_that_makes_an_mpi_world():
    assert parse_backend("mpi").needs_mpi_world and not parse_backend("gloo").needs_mpi_world
    able = {n for n in launchers.names() if launchers.get(n).mpi_world}
    assert {"mpirun", "srun"} <= able and not {"local", "torchrun"} & able


@pytest.mark.parametrize("model", ["numpy", "torch", "jax", "onnxruntime", "opencl"])
def test_kernel_modules_declare_their_element_types_and_can_convert_them(model):
    declared = {k: kernel_dtypes(model, k) for k in ("gemm", "stream", "conv2d")}
    if declared["gemm"] is None:
        pytest.skip(f"{model}'s framework is not installed")
    module = importlib.import_module(f"kernels.array.{model}")
    for kernel, dtypes in declared.items():
        assert dtypes and set(dtypes) <= set(module.DTYPES), (kernel, dtypes)


def test_workloads_refuse_what_the_kernel_module_does_not_declare():
    with pytest.raises(UserError, match=r"conv2d: numpy has no float16 convolution \(on "
                                        r"numpy:cpu\); use dtype=float64 or float32"):
        check_dtype("conv2d", "conv2d", "convolution", "numpy:cpu", "float16")
    check_dtype("gemm", "gemm", "matrix multiply", "numpy:cpu", "float16")  # numpy has it
