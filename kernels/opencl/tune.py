"""The tuner: search a kernel's declared parameters on the device at hand, cache the best.

A tunable kernel variant (kernels/opencl/build.py) declares a `Space`: the legal values of each
`-D` option its source takes (work-group shape, elements per work-item, vector width, tiles,
unroll) and a constraint on a combination given the device's facts. `search` tries candidates
on the device: every one exhaustively when the legal space is small, else a coordinate descent
from the variant's defaults followed by seeded random picks, until the time budget is spent.
Each candidate is built, run once and checked against a reference before it is timed; a
candidate that fails to build, computes a wrong result or is hopelessly slow is rejected and
can never be chosen. Timing is the project's engine (harness.timing) with a short policy.

The best candidate is cached per (platform, device, driver version, kernel, source hash,
dtype, size class) in a JSON file under the user's cache folder (`$BENCH_TUNE_CACHE` names
the file; else `$XDG_CACHE_HOME/accelbench/opencl-tune.json`, else ~/.cache/...). A later
build of the kernel for that key reuses the parameters without searching; a change of the
kernel's source changes its hash, so the old entry no longer applies.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import CheckFailed, UserError
from kernels.opencl.build import BASE_OPTIONS, SOURCES, DeviceFacts, Space, Variant

CACHE_ENV = "BENCH_TUNE_CACHE"
CACHE_VERSION = 1
EXHAUSTIVE_MAX = 48  # legal candidates up to which the search tries every one
SLOW_FACTOR = 3.0  # a candidate whose second call takes this many times the best is not timed
STRATEGIES = ("auto", "exhaustive", "descent", "random")
FINALISTS = 3  # the fastest candidates met head to head again at the end
CONTENDER = 1.15  # a candidate timed within this factor of the best meets it head to head
FINAL_SHARE = 0.15  # of the budget kept for those final rounds


# ---------------------------------------------------------------------------------------------
# Keys and the cache


def source_hash(variant: Variant) -> str:
    """A short hash of what the kernel is built from: its source text and the base options."""
    text = (SOURCES / variant.source).read_bytes()
    h = hashlib.sha256(text)
    h.update(" ".join(BASE_OPTIONS).encode())
    return h.hexdigest()[:16]


def pow2_class(x: float) -> int:
    """x rounded to the nearest power of two (a size class: 1500 and 2048 share one)."""
    return 1 << max(0, round(math.log2(max(x, 1.0))))


@dataclass(frozen=True)
class TuneKey:
    """What a tuned result holds for: another device, driver, source, type or size needs its
    own search."""

    platform: str
    device: str
    driver: str
    kernel: str  # "<source>:<variant>:<kernel>"
    source_hash: str
    dtype: str
    size_class: str

    def text(self) -> str:
        return "|".join(asdict(self).values())


def make_key(facts: DeviceFacts, variant: Variant, kernel: str, dtype: str,
             size_class: str) -> TuneKey:
    return TuneKey(facts.platform, facts.device, facts.driver,
                   f"{variant.source}:{variant.name}:{kernel}", source_hash(variant), dtype,
                   size_class)


def cache_path() -> Path:
    """The cache file: $BENCH_TUNE_CACHE, else under $XDG_CACHE_HOME (or ~/.cache)."""
    named = os.environ.get(CACHE_ENV)
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "accelbench" / "opencl-tune.json"


class TuneCache:
    """The per-device cache: one JSON file, {"version": 1, "entries": {key text: entry}}.

    A file that cannot be read or parsed counts as empty (and is replaced on the next write);
    writes go to a temporary file renamed over the old, re-reading it first so that two
    tuning processes lose nothing but a race on the same key."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def get(self, key: TuneKey) -> dict[str, Any] | None:
        entry = self._load().get(key.text())
        if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
            return None
        return entry

    def put(self, key: TuneKey, entry: dict[str, Any]) -> None:
        entries = self._load()
        entries[key.text()] = {**entry, "key": asdict(key)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tune-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump({"version": CACHE_VERSION, "entries": entries}, f, indent=1)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise UserError(f"opencl tuner: cannot write the tuning cache {self.path}: "
                            f"{exc.strerror or exc}; set {CACHE_ENV} to a writable file") from None


def cached_params(facts: DeviceFacts, variant: Variant, kernel: str, dtype: str,
                  size_class: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parameters, tune info) for a build: the cached best for this key, else the variant's
    defaults. The info says which, and is stored with the measurement."""
    key = make_key(facts, variant, kernel, dtype, size_class)
    entry = TuneCache().get(key)
    legal = entry is not None and variant.space is not None and variant.space.allows(
        {**variant.defines, **entry["params"]}, facts, dtype)
    if entry is not None and legal:
        params = {**variant.defines, **{k: v for k, v in entry["params"].items()
                                        if k in variant.defines}}
        return params, {"params": params, "from_cache": True, "source": "cache",
                        "key": key.text(), "cache": str(TuneCache().path),
                        "tuned_s_per_call": entry.get("seconds"),
                        "tuned_at": entry.get("tuned_at")}
    return dict(variant.defines), {"params": dict(variant.defines), "from_cache": False,
                                   "source": "default", "key": key.text(),
                                   "cache": str(TuneCache().path)}


# ---------------------------------------------------------------------------------------------
# The search


@dataclass
class Trial:
    """One candidate made ready: the operation to time, its backend, and the check that runs
    it once and raises CheckFailed when its result is wrong."""

    op: Callable[[], Any]
    backend: Any
    check: Callable[[], None]


@dataclass
class Candidate:
    params: dict[str, Any]
    seconds: float | None = None  # median seconds per call from the engine; None: rejected
    error: str | None = None  # why it was rejected
    check_s: float | None = None  # the checked first call (includes the kernel's JIT)
    single_s: float | None = None  # one call, for a candidate too slow to time
    rounds: list[float] = field(default_factory=list)  # the engine's median per timing
    paired: float | None = None  # its time over the best's, timed back to back (contenders)

    @property
    def ok(self) -> bool:
        return self.seconds is not None and self.error is None


@dataclass
class TuneResult:
    key: TuneKey
    best: Candidate
    candidates: list[Candidate]
    strategy: str
    elapsed_s: float
    from_cache: bool
    legal: int = 0  # legal candidates in the space
    complete: bool = False  # every legal candidate was tried
    entry: dict[str, Any] = field(default_factory=dict)

    def ranked(self) -> list[Candidate]:
        good = sorted((c for c in self.candidates if c.ok), key=lambda c: c.seconds or 0.0)
        return good + [c for c in self.candidates if not c.ok]

    def info(self) -> dict[str, Any]:
        return {"params": self.best.params, "from_cache": self.from_cache,
                "source": "cache" if self.from_cache else "tuner", "key": self.key.text(),
                "strategy": self.strategy, "tried": len(self.candidates),
                "rejected": sum(1 for c in self.candidates if not c.ok),
                "legal": self.legal, "elapsed_s": self.elapsed_s}


def default_policy(budget_s: float) -> Any:
    """The engine's policy for one candidate: short, but the engine's warm-up and rule."""
    from harness.timing import TimingPolicy

    per = min(0.4, max(0.05, budget_s / 150))
    return TimingPolicy(target_ci=0.02, budget=per, min_samples=3, warmup_budget=per / 2,
                        warmup_min_time=0.0, min_time=0.0, min_block_time=0.0)


class Search:
    """Tries candidates under a time budget; `evaluate` is one candidate's whole life: make,
    check, time."""

    def __init__(self, space: Space, facts: DeviceFacts, dtype: str,
                 make: Callable[[dict[str, Any]], Trial], defaults: dict[str, Any],
                 budget_s: float, seed: int = 0, policy: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.space, self.facts, self.dtype, self.make = space, facts, dtype, make
        self.defaults = dict(defaults)
        self.budget_s, self.clock = budget_s, clock
        self.rng = random.Random(seed)
        self.policy = policy or default_policy(budget_s)
        self.tried: dict[tuple[Any, ...], Candidate] = {}
        self.start = clock()
        self._engines: dict[int, Any] = {}
        self._trials: dict[tuple[Any, ...], Trial] = {}
        self.search_s = budget_s * (1 - FINAL_SHARE)  # the rest: final rounds of the best

    def _id(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params[k] for k in self.space.values)

    def out_of_time(self) -> bool:
        return self.clock() - self.start >= self.search_s

    def best(self) -> Candidate | None:
        good = [c for c in self.tried.values() if c.ok]
        return min(good, key=lambda c: c.seconds or 0.0) if good else None

    def _engine(self, backend: Any) -> Any:
        from harness.timing import Engine

        if id(backend) not in self._engines:
            self._engines[id(backend)] = Engine(backend, self.policy)
        return self._engines[id(backend)]

    def evaluate(self, params: dict[str, Any]) -> Candidate:
        ident = self._id(params)
        if ident in self.tried:
            return self.tried[ident]
        cand = Candidate(dict(params))
        self.tried[ident] = cand
        try:
            trial = self.make(dict(params))
            t0 = time.perf_counter()
            trial.check()
            cand.check_s = time.perf_counter() - t0
        except CheckFailed as exc:
            cand.error = f"wrong result: {exc}"
            return cand
        except UserError as exc:
            cand.error = f"failed: {exc}"
            return cand
        except Exception as exc:  # the runtime refused it (a launch error, out of resources)
            cand.error = f"failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            return cand
        # A second call, timed alone: a candidate more than SLOW_FACTOR times the best cannot
        # win, so it is not worth the engine's time (its one call is kept for the table).
        best = self.best()
        t0 = time.perf_counter()
        trial.backend.synchronize(trial.op())
        once = time.perf_counter() - t0
        if best is not None and best.seconds and once > SLOW_FACTOR * best.seconds:
            cand.error = f"slow: one call {once:.3g} s, over {SLOW_FACTOR:g}x the best"
            cand.single_s = once
            return cand
        seconds = self._time(trial)
        cand.rounds = [seconds]
        best = self.best()
        held = None if best is None else self._trials.get(self._id(best.params))
        if best is not None and best.seconds and held is not None and (
                seconds < CONTENDER * best.seconds):
            # A contender meets the best head to head: how long it takes relative to the best
            # now, not to the best's figure of a minute ago on a machine whose speed moves.
            cand.paired = self.head_to_head(trial, held, 1)
            cand.seconds = best.seconds * cand.paired
        else:
            cand.seconds = seconds
        self._keep(ident, trial)
        return cand

    def _time(self, trial: Trial) -> float:
        """The engine's median seconds per call of the trial's operation."""
        return float(statistics.median(self._engine(trial.backend).measure(trial.op).samples))

    def head_to_head(self, a: Trial, b: Trial, pairs: int) -> float:
        """The median over `pairs` of time(a) / time(b), each pair timed back to back in a
        random order, so that the drift of a busy machine hits both alike."""
        ratios = []
        for _ in range(pairs):
            if self.rng.random() < 0.5:
                ta = self._time(a)
                tb = self._time(b)
            else:
                tb = self._time(b)
                ta = self._time(a)
            ratios.append(ta / tb if tb > 0 else math.inf)
        return float(statistics.median(ratios))

    def _keep(self, ident: tuple[Any, ...], trial: Trial) -> None:
        """Keep the trials of the FINALISTS fastest candidates (for the final rounds); the
        others' buffers are let go."""
        self._trials[ident] = trial
        ranked = sorted((k for k in self._trials if self.tried[k].ok),
                        key=lambda k: self.tried[k].seconds or 0.0)
        for k in ranked[FINALISTS:]:
            del self._trials[k]

    def final_rounds(self, pairs: int = 2) -> None:
        """The other finalists meet the best head to head again (`pairs` pairs each), so one
        lucky moment on a busy machine does not pick the winner: each one's figure becomes
        the best's times the median ratio."""
        best = self.best()
        if best is None:
            return
        best_id = self._id(best.params)
        others = [k for k in self._trials if k != best_id and self.tried[k].ok]
        for k in others:
            cand = self.tried[k]
            cand.paired = self.head_to_head(self._trials[k], self._trials[best_id], pairs)
            cand.seconds = (best.seconds or 0.0) * cand.paired
        self._trials.clear()

    # -- strategies -----------------------------------------------------------------------------

    def ordered_legal(self) -> list[dict[str, Any]]:
        """Every legal candidate, the defaults first (when legal), the rest in a seeded random
        order so a budget cut leaves an unbiased sample."""
        legal = list(self.space.legal(self.facts, self.dtype))
        self.rng.shuffle(legal)
        first = [p for p in legal if self._id(p) == self._id(self.defaults)]
        return first + [p for p in legal if self._id(p) != self._id(self.defaults)]

    def exhaustive(self, legal: list[dict[str, Any]]) -> None:
        for p in legal:
            if self.out_of_time():
                return
            self.evaluate(p)

    def descent(self, legal: list[dict[str, Any]]) -> None:
        """Coordinate descent: from the defaults (or the first legal candidate), try every
        value of one parameter with the rest fixed, move to the best, next parameter; repeat
        until a pass changes nothing. Then random legal candidates while time remains."""
        if not legal:
            return
        start = {k: self.defaults.get(k) for k in self.space.values}
        current = start if self.space.allows(start, self.facts, self.dtype) else legal[0]
        self.evaluate(current)
        improved = True
        while improved and not self.out_of_time():
            improved = False
            for name, values in self.space.values.items():
                for v in values:
                    if self.out_of_time():
                        return
                    p = {**current, name: v}
                    if p[name] == current[name] or not self.space.allows(p, self.facts,
                                                                           self.dtype):
                        continue
                    self.evaluate(p)
                best = self.best()
                if best is not None and self._id(best.params) != self._id(current):
                    current, improved = dict(best.params), True
                elif best is None:  # nothing works yet: keep walking from a fresh point
                    current = self.rng.choice(legal)
        self.exhaustive(legal)  # the remaining time: random picks (ordered_legal is shuffled)

    def run(self, strategy: str = "auto") -> tuple[str, list[dict[str, Any]]]:
        if strategy not in STRATEGIES:
            raise UserError(f"opencl tuner: no strategy {strategy!r}; strategies: "
                            f"{', '.join(STRATEGIES)}")
        legal = self.ordered_legal()
        if strategy == "auto":
            strategy = "exhaustive" if len(legal) <= EXHAUSTIVE_MAX else "descent"
        if strategy == "descent":
            self.descent(legal)
        else:
            self.exhaustive(legal)  # "random" is the same walk: the order is seeded random
        self.final_rounds()
        return strategy, legal


def tune(key: TuneKey, variant: Variant, facts: DeviceFacts, dtype: str,
         make: Callable[[dict[str, Any]], Trial], budget_s: float = 60.0, seed: int = 0,
         strategy: str = "auto", force: bool = False, cache: TuneCache | None = None,
         policy: Any = None) -> TuneResult:
    """The best legal parameters of `variant` on this device for `key`: from the cache when it
    holds them (unless `force`), else searched (make(params) -> Trial) and stored."""
    if variant.space is None:
        raise UserError(f"opencl tuner: variant {variant.name!r} ({variant.source}) declares "
                        "no tunable parameters")
    cache = cache or TuneCache()
    t0 = time.monotonic()
    entry = None if force else cache.get(key)
    if entry is not None:
        params = {**variant.defines, **entry["params"]}
        best = Candidate(params, seconds=entry.get("seconds"))
        return TuneResult(key, best, [best], str(entry.get("strategy", "")),
                          time.monotonic() - t0, from_cache=True,
                          legal=int(entry.get("legal", 0)), entry=entry)
    search = Search(variant.space, facts, dtype, make, variant.defines, budget_s, seed, policy)
    used, legal = search.run(strategy)
    tried = list(search.tried.values())
    best = search.best()
    if best is None:
        why = "; ".join(sorted({c.error or "" for c in tried})[:3]) or "no legal candidate"
        raise UserError(f"opencl tuner: no candidate of {variant.name!r} passed its check on "
                        f"{facts.device!r} ({len(tried)} tried: {why})")
    elapsed = time.monotonic() - t0
    entry = {"params": best.params, "seconds": best.seconds, "strategy": used,
             "tried": len(tried), "legal": len(legal), "budget_s": budget_s, "seed": seed,
             "elapsed_s": elapsed, "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime()),
             "top": [{"params": c.params, "seconds": c.seconds}
                     for c in sorted((c for c in tried if c.ok),
                                     key=lambda c: c.seconds or 0.0)[:5]]}
    cache.put(key, entry)
    return TuneResult(key, best, tried, used, elapsed, from_cache=False, legal=len(legal),
                      complete=len(tried) >= len(legal), entry=entry)



def tune_on(backend: Any, tunable: Any, budget_s: float = 60.0, seed: int = 0,
            strategy: str = "auto", force: bool = False,
            cache: TuneCache | None = None) -> TuneResult:
    """tune() for a kernels.array.opencl Tunable on an OpenCL backend's device."""
    facts = DeviceFacts.of(backend.cl_device)
    key = make_key(facts, tunable.variant, tunable.kernel, tunable.dtype, tunable.size_class)
    return tune(key, tunable.variant, facts, tunable.dtype, tunable.make, budget_s, seed,
                strategy, force, cache)
