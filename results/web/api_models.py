"""The shapes of the JSON API's answers, for its OpenAPI page only: the endpoints return the
views' dicts as they are (no validation on the way out, which would cost more than the query
on a 10,000-point history)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class HistoryPoints(BaseModel):
    """Every point of the history, oldest first, as parallel columns (one entry per run)."""

    run_id: list[str]
    started_at: list[str] = Field(description="ISO time (UTC) the run started")
    median: list[float] = Field(description="median seconds per call")
    ci_low: list[float] = Field(description="95% confidence interval of the median, low end")
    ci_high: list[float] = Field(description="95% confidence interval of the median, high end")


class Step(BaseModel):
    index: int = Field(description="index into the points where the new level starts")
    run_id: str
    change: float = Field(description="relative change of the level, e.g. 0.3 = 30% slower")


class EnvironmentChange(BaseModel):
    index: int
    run_id: str
    started_at: str
    changed: list[dict[str, Any]] = Field(description="{key, before, after}, the first 20")
    n_changed: int


class CaseHistory(BaseModel):
    """A case's history: every point (never downsampled), change points and steps."""

    case_key: str
    threshold: float
    n_points: int
    points: HistoryPoints
    change_points: list[int] = Field(description="indices into the points where a segment "
                                     "starts")
    steps: list[Step]
    drift: float = Field(description="relative change from the first segment's level to "
                         "the last one's")
    case: dict[str, Any]
    environment_changes: list[EnvironmentChange]
    filters: dict[str, str]
    last: int | None
