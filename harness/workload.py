"""Workload and Case: what is measured, and one point of it on one backend."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from harness.backends.base import Backend, parse_backend
from harness.backends.base import registry as backends
from harness.errors import UserError
from harness.params import Param
from harness.registry import Registry, check_name
from harness.workmodel import Work

if TYPE_CHECKING:
    from harness.timing import TimingPolicy


@dataclass
class Prepared:
    """A workload set up on a backend: the operation to time and how to check its result."""

    op: Callable[[], Any]
    check: Callable[[], None] | None = None  # raises CheckFailed on a wrong result
    close: Callable[[], None] | None = None
    info: dict[str, Any] = field(default_factory=dict)  # facts recorded with the measurement
    # Collectives: the ranks' own barrier, met before every timed sample (see DistributedEngine)
    barrier: Callable[[], None] | None = None
    # Called once timing ends, with how many calls were timed (the op's last ones: the engine's
    # first call and warm-up came before): settles info on exactly those, and raises
    # CheckFailed when they are not a valid result (a server's p99 bound broken over the timed
    # run). Such a case fails with its figures kept, to show why.
    after_timing: Callable[[int], None] | None = None


# info key: lines a figure that stands needs beside it (a server whose p99 bound did not hold
# at the rate asked for); the run prints them as warnings, `bench show` with the case.
WARNINGS = "warnings"


# info key: seconds of the operation's first call when prepare or check already made it (and so
# took its JIT/compilation); the engine's own first call is then warm, and the case's compile_s
# counts this one instead. Set it with `first_call`.
FIRST_CALL = "first_call_s"


def first_call(op: Callable[[], Any], backend: Backend, info: dict[str, Any]) -> Any:
    """Make the operation's first call (in a check, before timing), timed to the end of the
    device's work; its seconds go to info[FIRST_CALL]. Returns the call's result."""
    t0 = time.perf_counter()
    out = op()
    backend.synchronize(out)
    info[FIRST_CALL] = time.perf_counter() - t0
    return out


class Workload:
    """A named thing to measure: typed parameters, a work model, per-backend implementations."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    models: ClassVar[tuple[str, ...]] = ("numpy",)  # backend models it runs on
    default_backend: ClassVar[str] = "numpy:cpu"
    # The case's timing policy, set by the runner before `prepare` (None outside a run): a
    # workload whose setup measures too (a max-QPS search) sizes that from policy.budget.
    policy: TimingPolicy | None = None

    @classmethod
    def runs_on(cls, model: str) -> bool:
        """Whether it runs on backends of `model`: one it names, or one that names it."""
        return model in cls.models or (model in backends
                                       and cls.name in backends.get(model).workloads)

    @classmethod
    def backend_models(cls) -> tuple[str, ...]:
        """Every model it runs on: those it names, then the backends that name it."""
        return (*cls.models, *(m for m in backends.names()
                               if m not in cls.models and cls.runs_on(m)))

    def validate(self, params: Mapping[str, Any], backend: str) -> None:
        """Checks across parameters, or of a parameter against the backend; raise UserError."""

    def validate_device(self, params: Mapping[str, Any], backend: Backend) -> None:
        """Checks of the parameters against the set-up backend's device (an element type the
        device lacks), made before a run writes anything; raise UserError."""
        if isinstance(params.get("dtype"), str):
            backend.require_dtype(params["dtype"])

    def work(self, params: Mapping[str, Any]) -> Work:
        return Work()

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        raise NotImplementedError

    def extra_metrics(self, params: Mapping[str, Any], median_s: float,
                      info: Mapping[str, Any]) -> dict[str, float]:
        """Metrics beyond the work model's (e.g. a collective's bus bandwidth)."""
        return {}


registry: Registry[type[Workload]] = Registry("workload", "accelbench.workloads")


def workload(
    name: str,
    *,
    params: Mapping[str, Param] | None = None,
    work: Callable[[Mapping[str, Any]], Work] | None = None,
    models: tuple[str, ...] = ("numpy",),
    description: str = "",
) -> Callable[[Callable[..., Any]], type[Workload]]:
    """Register a function as a workload: the user's own code, measured like a built-in.

    The function receives the backend and the parameters as keyword arguments and returns the
    zero-argument callable to time (or a `Prepared`)::

        @workload("mysort", params={"n": Param("int", 1000, min=1)},
                  work=lambda p: Work(items=p["n"]))
        def mysort(backend, n):
            data = list(range(n, 0, -1))
            return lambda: sorted(data)
    """

    check_name(name, "workload")
    for pname in params or {}:
        check_name(pname, f"workload {name} parameter")

    def decorate(fn: Callable[..., Any]) -> type[Workload]:
        def prepare(self: Workload, backend: Backend, p: Mapping[str, Any]) -> Prepared:
            out = fn(backend, **p)
            return out if isinstance(out, Prepared) else Prepared(op=out)

        cls = type(
            f"FunctionWorkload_{name}",
            (Workload,),
            {
                "name": name,
                "description": description or (fn.__doc__ or "").strip().split("\n")[0],
                "params": dict(params or {}),
                "models": models,
                "default_backend": f"{models[0]}:cpu",
                "work": (lambda self, p: work(p)) if work else Workload.work,
                "prepare": prepare,
            },
        )
        registry.register(name, cls)
        return cls

    return decorate


def _fmt(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Case:
    """One workload x backend x parameter point. `params` holds every parameter, defaults too."""

    workload: str
    backend: str
    params: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def key(self) -> str:
        """Stable, readable identity used to match cases across runs."""
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in self.params)
        return f"{self.workload}[{self.backend}]({inner})"

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)


def make_case(workload_name: str, backend: str | None, raw: Mapping[str, Any], where: str) -> Case:
    """Validate raw (string or TOML) parameter values and fill in defaults."""
    cls = registry.get(workload_name)
    unknown = sorted(set(raw) - set(cls.params))
    if unknown:
        known = ", ".join(cls.params) or "none"
        raise UserError(
            f"{where}: workload {workload_name!r} has no parameter {unknown[0]!r}; "
            f"its parameters: {known}"
        )
    try:
        backend = parse_backend(backend or cls.default_backend).name
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    model = backend.split(":", 1)[0]
    if not cls.runs_on(model):
        raise UserError(
            f"{where}: workload {workload_name!r} does not run on {backend!r}; "
            f"it runs on: {', '.join(cls.backend_models())}"
        )
    values = {}
    for pname, spec in cls.params.items():
        if spec.models is not None and model not in spec.models:
            if pname in raw:
                raise UserError(
                    f"{where}: {workload_name} parameter {pname!r} applies only to "
                    f"{', '.join(spec.models)} backends, not {backend!r}"
                )
            continue
        values[pname] = (
            spec.parse(raw[pname], f"{where}: {workload_name} parameter {pname!r}")
            if pname in raw
            else spec.default
        )
    values = {k: v for k, v in values.items() if cls.params[k].applies(values)
              and not (cls.params[k].omit_default and v == cls.params[k].default)}
    cls().validate(values, backend)
    return Case(workload_name, backend, tuple(sorted(values.items())))
