"""Live progress of a run on stderr: a rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.config import PlannedCase
from harness.measurement import Measurement
from harness.units import headline_metric, percent, seconds


class ProgressReporter:
    """Implements harness.runner.Reporter."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self.total = 0
        self._progress: Progress | None = None
        self._task: Any = None
        self._case_task: Any = None
        self._case_label = ""
        self._case_start = 0.0

    def run_started(self, run_id: str, total: int) -> None:
        self.total = total
        if self.quiet:
            return
        self.console.print(f"run {run_id}: {total} case(s)", highlight=False)
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("cases", total=total, info="")

    def case_started(self, index: int, planned: PlannedCase) -> None:
        self._case_label = f"[{index + 1}/{self.total}] {planned.case.key}"
        self._case_start = time.monotonic()
        self._budget = planned.policy.budget + planned.policy.warmup_budget
        if self._progress is not None:
            if self._case_task is not None:
                self._progress.remove_task(self._case_task)
            self._case_task = self._progress.add_task(
                escape(self._case_label), total=self._budget, info="warming up")

    def case_progress(self, samples: int, ci_rel: float) -> None:
        if self._progress is not None and self._case_task is not None:
            self._progress.update(self._case_task, info=f"n={samples} CI {percent(ci_rel)}",
                                  completed=min(time.monotonic() - self._case_start,
                                                self._budget))

    def case_finished(self, index: int, m: Measurement) -> None:
        if m.ok and m.summary is not None and m.timing is not None:
            s = m.summary
            unit = (m.work or {}).get("item_unit", "items")
            line = (f"{self._case_label}  median {seconds(s.median)} CI {percent(s.ci_rel)}"
                    f"  n={s.n}  {headline_metric(m.metrics, unit)}"
                    f"  ({m.timing.stop_reason})")
        else:
            line = f"{self._case_label}  FAILED: {m.error}"
        if self._progress is not None:
            self._progress.update(self._task, advance=1)
        if not self.quiet:
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def run_finished(self, status: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if not self.quiet:
            self.console.print(f"run {status}", highlight=False)

