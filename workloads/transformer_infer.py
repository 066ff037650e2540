"""`transformer-infer`: encoder inference (kernels/nn/reference.py) on torch, jax and
onnxruntime (the torch model exported with torch.onnx), under an inference scenario
(workloads/scenarios.py):

- single-stream: a call answers one query (`batch` sequences): the summary's percentiles are
  the query latency percentiles;
- offline: a call answers `queries` sequences in batches of `batch`: items/s is samples/s;
- server: a call is a session of `queries` queries (`batch` sequences each) arriving as a
  Poisson process at `qps`; the latency of each runs from its arrival, and the metrics add
  server_p50/p99_latency_s over the timed sessions and p99_bound_held (1 or 0) against
  `p99_ms` (a bound that did not hold is also a warning);
- max-qps: the rate is searched first (a search sized from the time budget, its candidate
  confirmed with other seeds), then timed as the server scenario; a rate whose p99 broke the
  bound over the timed sessions is not a valid max QPS, and the case fails saying so.

Every backend runs the same seeded weights on the same input; the check compares the output
with the float64 NumPy forward pass (relative error 1e-4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness import (
    WARNINGS,
    Backend,
    CheckFailed,
    Param,
    Prepared,
    UserError,
    Work,
    Workload,
    first_call,
)
from harness.peaks import PeakMetrics, for_backend
from harness.timing import TimingPolicy
from kernels.nn import nn_kernels
from kernels.nn.reference import transformer_flops, transformer_forward, transformer_params
from workloads import scenarios

TOLERANCE = 1e-4


class TransformerInfer(PeakMetrics, Workload):
    name = "transformer-infer"
    description = "Transformer encoder inference under an MLPerf-style scenario (float32)"
    params = {
        "layers": Param("int", 4, "encoder layers", min=1, max=256),
        "d_model": Param("int", 256, "model width", min=8, max=16384),
        "heads": Param("int", 4, "attention heads (divide d_model)", min=1, max=256),
        "ff": Param("int", 0, "feed-forward width (0: 4 x d_model)", min=0, max=65536),
        "seq": Param("int", 128, "tokens per sequence", min=1, max=65536),
        "batch": Param("int", 8, "sequences per query", min=1, max=4096),
        "scenario": Param("str", "single-stream", "inference scenario",
                          choices=scenarios.SCENARIOS),
        "queries": Param("int", 32, "offline: sequences per call; server, max-qps: queries "
                         "per timed session (the max-qps search sizes its own from the budget)",
                         min=1, max=1_000_000,
                         when=("scenario", ("offline", "server", "max-qps"))),
        "qps": Param("float", 20.0, "server: Poisson arrival rate (queries/s)", min=0.001,
                     max=1e6, when=("scenario", ("server",))),
        "p99_ms": Param("float", 100.0, "server, max-qps: p99 latency bound (ms)", min=0.001,
                        max=1e6, when=("scenario", ("server", "max-qps"))),
    }
    models = ("torch", "jax", "onnxruntime")
    default_backend = "torch:cpu"

    @staticmethod
    def _ff(params: Mapping[str, Any]) -> int:
        return params["ff"] or 4 * params["d_model"]

    def validate(self, params: Mapping[str, Any], backend: str) -> None:
        if params["d_model"] % params["heads"]:
            raise UserError(f"transformer-infer: heads={params['heads']} does not divide "
                            f"d_model={params['d_model']}")

    def _calls(self, params: Mapping[str, Any]) -> int:
        """Queries (of `batch` sequences) answered by one call of the op."""
        if params["scenario"] == "offline":
            return math.ceil(params["queries"] / params["batch"])
        return params["queries"] if params["scenario"] in ("server", "max-qps") else 1

    def work(self, params: Mapping[str, Any]) -> Work:
        per_query = transformer_flops(params["layers"], params["d_model"], self._ff(params),
                                      params["seq"], params["batch"])
        calls = self._calls(params)
        items = params["queries"] if params["scenario"] == "offline" else calls * params["batch"]
        return Work(items=items, flops=per_query * calls, item_unit="sequences")

    def extra_metrics(self, params: Mapping[str, Any], median_s: float,
                      info: Mapping[str, Any]) -> dict[str, float]:
        out = super().extra_metrics(params, median_s, info)
        if median_s > 0:
            out["tokens_per_s"] = self.work(params).items * params["seq"] / median_s
        if "max_qps" in info and info.get("max_qps_valid", True):
            out["max_qps"] = info["max_qps"]
        server = info.get("server")
        if server:
            out.update(server_p50_latency_s=server["p50_s"], server_p99_latency_s=server["p99_s"],
                       server_achieved_qps=server["achieved_qps"],
                       p99_bound_held=1.0 if server["held"] else 0.0)
        return out

    def prepare(self, backend: Backend, params: Mapping[str, Any]) -> Prepared:
        weights = transformer_params(params["layers"], params["d_model"], self._ff(params))
        rng = np.random.default_rng(1)
        x = rng.standard_normal((params["batch"], params["seq"], params["d_model"]))
        x = x.astype(np.float32)
        kern = nn_kernels(backend.model)
        query = kern.transformer(weights, x, params["heads"], backend)
        info: dict[str, Any] = {"peak": for_backend(backend, "float32")}
        sync = backend.synchronize

        def check() -> None:
            # single-stream times `query` itself: its first call here takes the compilation
            got = kern.to_host(first_call(query, backend, info) if scenario == "single-stream"
                               else query())
            ref = transformer_forward(np, {k: v.astype(np.float64) for k, v in weights.items()},
                                      x.astype(np.float64), params["heads"])
            err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
            if not np.isfinite(err) or err > TOLERANCE:
                raise CheckFailed(f"transformer-infer output differs from the float64 "
                                  f"reference: relative error {err:.3g} > {TOLERANCE:.0e}")

        scenario = params["scenario"]
        if scenario == "single-stream":
            op = query
        elif scenario == "offline":
            calls = self._calls(params)

            def op() -> Any:
                out = None
                for _ in range(calls):
                    out = query()
                return out
        else:
            qps = (self._search_max_qps(query, sync, params, info,
                                        (self.policy or TimingPolicy()).budget)
                   if scenario == "max-qps" else params["qps"])
            sessions = scenarios.ServerSessions(query, sync, qps, params["queries"],
                                                params["p99_ms"] / 1e3)

            def op() -> Any:
                sessions.run()

            def after_timing(timed: int) -> None:
                self._judge_server(sessions.result(timed), timed, scenario, info)

            return Prepared(op=op, check=check, info=info, after_timing=after_timing)

        return Prepared(op=op, check=check, info=info)

    @staticmethod
    def _judge_server(result: scenarios.ServerResult, timed: int, scenario: str,
                      info: dict[str, Any]) -> None:
        """The timed sessions' result into info; a bound they broke is a warning for a rate
        the user asked for, and makes a searched max QPS invalid (LoadGen's rule)."""
        info["server"] = {**result.to_dict(), "sessions": timed}
        if result.held:
            return
        broke = scenarios.broke_bound(result)
        if scenario != "max-qps":
            info.setdefault(WARNINGS, []).append(
                f"server: {broke} over the {timed} timed session(s): not a valid server "
                "result at this rate (p99_bound_held=0); lower qps or raise p99_ms")
            return
        info["max_qps_valid"] = False
        raise CheckFailed(f"max-qps {result.qps:.4g} is not valid: {broke} over the {timed} "
                          "timed session(s), though the search confirmed it; run again with a "
                          "larger --budget (longer search sessions) or on a quieter machine")

    @staticmethod
    def _search_max_qps(query: Any, sync: Any, params: Mapping[str, Any],
                        info: dict[str, Any], budget_s: float) -> float:
        """MLPerf's server figure: the highest Poisson rate whose p99 holds the bound, the
        search sized from the budget. Every server session of the search is kept in info
        (max_qps_search), its size in max_qps_plan; the case fails if no rate is confirmed."""
        bound = params["p99_ms"] / 1e3
        found = scenarios.max_qps(query, sync, bound, budget_s=budget_s)
        info["max_qps_search"] = [r.to_dict() for r in found.runs]
        info["max_qps_plan"] = {**found.to_dict(), "budget_s": budget_s}
        late = scenarios.over_budget(found.plan, budget_s, found.ceiling_qps, found.search_s)
        if late is not None:  # the plan's minimums, not the budget, sized the search: say so
            info.setdefault(WARNINGS, []).append(late)
        if found.qps <= 0:  # a failed case keeps no info: the error carries the warning
            also = f" ({late})" if late is not None else ""
            bound_ms = f"{params['p99_ms']:g} ms"
            if found.confirmations:  # candidates, none confirmed: the p99 moves between seeds
                last = found.confirmations[-1]
                raise CheckFailed(
                    f"transformer-infer: no arrival rate was confirmed: the search's candidates "
                    f"held p99 <= {bound_ms} in one session but not over "
                    f"{found.plan.confirm} more ({found.step_downs} step-down(s), down to "
                    f"{last.qps:.4g} queries/s, where {last.over} of {last.queries} queries "
                    f"took longer); on a busy machine the tail moves between sessions: run on "
                    f"a quieter one, or raise p99_ms{also}")
            low = min(found.runs, key=lambda r: r.qps)
            raise CheckFailed(f"transformer-infer: no arrival rate holds p99 <= {bound_ms}, "
                              f"not even 5% of the single-stream rate (p99 "
                              f"{low.p99_s * 1e3:.3g} ms there); raise p99_ms{also}")
        info["max_qps"] = found.qps
        return found.qps
