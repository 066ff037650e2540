"""gemm and stream on every compute backend installed here, each checked against NumPy; the
OpenCL kernels built from source (every variant) and loaded from a program binary; device time
from OpenCL profiling events; bad input (dtype, platform, device, build failure, binary)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from harness.backends.base import parse_backend
from harness.errors import CheckFailed, UserError
from harness.workload import make_case
from harness.workload import registry as workloads

FAST = ("--budget", "0.2", "--quiet")


def _usable(spec: str) -> str | None:
    model = spec.split(":")[0]
    package = {"onnxruntime": "onnxruntime", "opencl": "pyopencl"}.get(model, model)
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed"
    return parse_backend(spec).unusable_reason()


BACKENDS = ["numpy:cpu", "torch:cpu", "jax:cpu", "onnxruntime:cpu", "opencl:pocl"]
_backends: dict[str, Any] = {}


def backend(spec: str) -> Any:
    """One set-up backend per spec for the whole session (OpenCL contexts are not free)."""
    reason = _usable(spec)
    if reason:
        pytest.skip(f"{spec} is not usable here: {reason}")
    if spec not in _backends:
        b = parse_backend(spec)
        b.setup()
        _backends[spec] = b
    return _backends[spec]


def prepare(workload: str, spec: str, **raw: Any):
    case = make_case(workload, spec, {k: str(v) for k, v in raw.items()}, "test")
    return workloads.get(workload)().prepare(backend(spec), case.param_dict), case


@pytest.mark.parametrize("spec", BACKENDS)
def test_gemm_matches_reference(spec):
    # Ragged sizes: no dimension a multiple of any tile or vector width.
    prepared, _ = prepare("gemm", spec, m=37, n=45, k=29)
    prepared.check()  # raises CheckFailed on a wrong result
    kern = importlib.import_module(f"kernels.array.{spec.split(':')[0]}")
    got = kern.to_host(prepared.op())
    assert got.shape == (37, 45)
    assert np.isfinite(got).all() and np.abs(got).max() > 0.1


@pytest.mark.parametrize("spec", BACKENDS)
@pytest.mark.parametrize("op", ["copy", "scale", "add", "triad"])
def test_stream_matches_reference(spec, op):
    prepared, _ = prepare("stream", spec, n=1001, op=op, dtype="float32")
    prepared.check()


@pytest.mark.parametrize("spec,dtype", [("torch:cpu", "bfloat16"), ("jax:cpu", "bfloat16"),
                                        ("jax:cpu", "float16"), ("onnxruntime:cpu", "float16"),
                                        ("opencl:pocl", "float64")])
def test_gemm_other_dtypes(spec, dtype):
    prepare("gemm", spec, m=24, n=33, k=40, dtype=dtype)[0].check()


@pytest.mark.parametrize("variant", ["cpu", "tiled", "naive"])
def test_opencl_variants_from_source(variant):
    prepared, _ = prepare("gemm", "opencl:pocl", m=70, n=33, k=50, variant=variant)
    prepared.check()
    info = prepared.info
    assert info["variant"] == variant and info["build_origin"] == "source"
    assert info["build_path"].endswith(".cl") and info["build_s"] >= 0
    assert "-DT=float" in info["build_options"]


def test_opencl_default_variant_follows_device_type():
    prepared, _ = prepare("gemm", "opencl:pocl", m=16, n=16, k=16)
    assert prepared.info["variant"] == "cpu"  # PoCL is a CPU device


def test_opencl_tunables_from_build_options():
    prepared, _ = prepare("gemm", "opencl:pocl", m=70, n=33, k=50, variant="cpu",
                          build_options="-DRB=3 -DVW=8")
    prepared.check()  # the host launched the geometry the kernel was built for
    assert "-DRB=3 -DVW=8" in prepared.info["build_options"]
    assert "-DRB=8" not in prepared.info["build_options"]


def test_opencl_compiler_warnings_go_to_info_not_to_the_output(capfd):
    import os

    # a macro defined twice: the compiler warns (a fresh name, so no cache has the build)
    name = f"ACCELBENCH_TWICE_{os.getpid()}"
    capfd.readouterr()
    prepared, _ = prepare("gemm", "opencl:pocl", m=16, n=16, k=16,
                          build_options=f"-D{name}=1 -D{name}=2")
    out, err = capfd.readouterr()
    assert "warning" not in (out + err).lower(), err
    assert "macro redefined" in prepared.info["build_log"]
    prepared.check()  # it still built and runs


def test_opencl_binary_with_other_tunables_fails_the_check(workdir):
    """A binary built with RB=4, launched as the default RB=8: half of C is never written.
    Fast and wrong must fail, not win."""
    from kernels.opencl.build import GEMM_VARIANTS, build, save_binary

    built = build(backend("opencl:pocl"), GEMM_VARIANTS["cpu"], "float32", "-DRB=4")
    path = save_binary(built, workdir / "rb4.bin")
    prepared, _ = prepare("gemm", "opencl:pocl", m=256, n=64, k=64, binary=path)
    with pytest.raises(CheckFailed, match="relative error"):
        prepared.check()
    # Told the tunables it was built with, the host launches it correctly.
    prepared, _ = prepare("gemm", "opencl:pocl", m=256, n=64, k=64, binary=path,
                          build_options="-DRB=4")
    prepared.check()


def test_opencl_device_time_from_profiling_events():
    from harness.timing import Engine, TimingPolicy

    b = backend("opencl:pocl")
    prepared, _ = prepare("gemm", "opencl:pocl", m=256, n=256, k=256)
    timing = Engine(b, TimingPolicy(budget=0.3, warmup_budget=0.1, target_ci=0.05)).measure(
        prepared.op)
    assert timing.device_samples is not None
    assert len(timing.device_samples) == len(timing.samples)
    dev, host = np.median(timing.device_samples), np.median(timing.samples)
    assert 0 < dev <= host * 1.05  # kernels run inside the host-timed region


def test_opencl_from_binary(bench, workdir):
    """The FPGA path: a program binary built offline (here: by PoCL) is loaded, not compiled."""
    from kernels.opencl.build import GEMM_VARIANTS, build, save_binary

    built = build(backend("opencl:pocl"), GEMM_VARIANTS["cpu"], "float32")
    path = save_binary(built, workdir / "gemm_cpu.pocl.bin")
    assert path.stat().st_size > 1000
    res = bench("run", "-w", "gemm", "-b", "opencl:pocl", "-p", "m=40", "-p", "n=50", "-p",
                "k=30", "-p", f"binary={path}", *FAST, "--json")
    assert res.rc == 0, res.stderr
    (m,) = res.json()["measurements"]
    assert m["status"] == "ok"  # the check against NumPy passed
    assert m["info"]["build_origin"] == "binary" and m["info"]["build_path"] == str(path)
    assert m["metrics"]["device_latency_s"] > 0


# -- bad input -----------------------------------------------------------------------------------


def one_line_error(res, *needles: str) -> str:
    assert res.rc == 2, (res.rc, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("args,needles", [
    (["-b", "opencl:pocl", "-p", "dtype=float16"], ["has no float16 (cl_khr_fp16)", "float32"]),
    (["-b", "onnxruntime:cpu", "-p", "dtype=bfloat16"], ["no bfloat16", "float16"]),
    (["-b", "numpy:cpu", "-p", "variant=tiled"], ["'variant' applies only to opencl"]),
], ids=["opencl float16", "onnxruntime bfloat16", "opencl-only parameter"])
def test_unsupported_shape_on_backend(bench_inproc, workdir, args, needles):
    if ("dtype=float16" in args
            and "cl_khr_fp16" in backend("opencl:pocl").cl_device.extensions.split()):
        pytest.skip("this OpenCL device has float16 (cl_khr_fp16)")
    one_line_error(bench_inproc("run", "-w", "gemm", *args, *FAST), *needles)
    assert list(workdir.iterdir()) == []


def test_opencl_platform_that_does_not_exist(bench_inproc, workdir):
    backend("opencl:pocl")
    line = one_line_error(bench_inproc("run", "-w", "gemm", "-b", "opencl:nvidia", *FAST),
                          "no platform matches 'nvidia'")
    assert "Portable Computing Language" in line  # the platforms that do exist
    line = one_line_error(bench_inproc("run", "-w", "gemm", "-b", "opencl:pocl:7", *FAST),
                          "no device", "index 7")
    assert "0: " in line
    one_line_error(bench_inproc("run", "-w", "gemm", "-b", "opencl:pocl:fpga", *FAST),
                   "no device on 'Portable Computing Language' matches 'fpga'")
    assert list(workdir.iterdir()) == []


def test_opencl_kernel_that_fails_to_build(bench_inproc):
    backend("opencl:pocl")
    line = one_line_error(bench_inproc("run", "-w", "gemm", "-b", "opencl:pocl", "-p",
                                       "variant=cpu", "-p", "build_options=-DRB=oops", *FAST),
                          "gemm_cpu.cl failed to build", "-DRB=oops")
    assert "oops" in line.split("-DRB=oops", 1)[1]  # the compiler's log names the bad token


@pytest.mark.parametrize("content,needle", [(None, "binary not found"),
                                            (b"not a binary", "not a program binary")])
def test_opencl_bad_binary(bench_inproc, workdir, content, needle):
    backend("opencl:pocl")
    path = workdir / "bad.aocx"
    if content is not None:
        path.write_bytes(content)
    one_line_error(bench_inproc("run", "-w", "gemm", "-b", "opencl:pocl", "-p",
                                f"binary={path}", *FAST), needle)


def test_binary_without_the_kernels(workdir):
    from kernels.opencl.build import GEMM_VARIANTS, STREAM_VARIANTS, build, save_binary

    b = backend("opencl:pocl")
    path = save_binary(build(b, STREAM_VARIANTS["simple"], "float32"), workdir / "s.bin")
    with pytest.raises(UserError, match=r"has no kernel 'pack_b'.*stream_triad"):
        build(b, GEMM_VARIANTS["cpu"], "float32", binary=str(path))


# -- conv2d --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", BACKENDS)
@pytest.mark.parametrize("stride,padding,kernel", [(1, -1, 3), (2, 0, 5)])
def test_conv2d_matches_reference(spec, stride, padding, kernel):
    prepared, _ = prepare("conv2d", spec, batch=2, channels=3, filters=5, size=13,
                          kernel=kernel, stride=stride, padding=padding)
    prepared.check()


def test_conv2d_reference_on_known_cases():
    from workloads.conv2d import reference

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6))
    # A 1x1 kernel mixes channels: a matrix product per pixel.
    w = rng.standard_normal((4, 3, 1, 1))
    np.testing.assert_allclose(reference(x, w, 1, 0), np.einsum("oc,ncyx->noyx", w[:, :, 0, 0], x))
    # A 3x3 kernel with a single 1 at the centre, padded by 1: the identity.
    ident = np.zeros((3, 3, 3, 3))
    for c in range(3):
        ident[c, c, 1, 1] = 1
    np.testing.assert_allclose(reference(x, ident, 1, 1), x)
    # Stride 2 keeps every other output of stride 1.
    w3 = rng.standard_normal((2, 3, 3, 3))
    np.testing.assert_allclose(reference(x, w3, 2, 1), reference(x, w3, 1, 1)[:, :, ::2, ::2])


def test_conv2d_work_model():
    from workloads.conv2d import Conv2d

    case = make_case("conv2d", "torch:cpu", {"batch": "2", "channels": "3", "filters": "4",
                                             "size": "10", "kernel": "3", "stride": "2",
                                             "padding": "0"}, "test")
    work = Conv2d().work(case.param_dict)
    # output 4x4; each output element takes 3*3*3 multiply-adds
    assert work.flops == 2 * 2 * 4 * 4 * 4 * 27
    assert work.items == 2 and work.item_unit == "images"
    assert work.bytes == (2 * 3 * 100 + 4 * 3 * 9 + 2 * 4 * 16) * 4


def test_conv2d_kernel_larger_than_image(bench_inproc, workdir):
    one_line_error(bench_inproc("run", "-w", "conv2d", "-p", "size=4", "-p", "kernel=7", "-p",
                                "padding=0", *FAST), "does not fit")
    assert list(workdir.iterdir()) == []
