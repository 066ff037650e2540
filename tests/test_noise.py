"""The machine watch of `bench ab` (harness/noise.py) with scripted readings: which pairs are
disturbed is decided exactly, whatever the machine running the test."""

from __future__ import annotations

import pytest

from harness.noise import MIN_HISTORY, MachineWatch, Reading, canary


def _watch() -> MachineWatch:
    return MachineWatch(clock=lambda: 0.0, pressure=lambda: 0.0, ticks=lambda: (0.0, 0.0))


def _pair(t0: float, turn: float, pressure_shares: tuple[float, float],
          steal_shares: tuple[float, float] = (0.0, 0.0)) -> list[Reading]:
    """Readings before, between and after two turns of `turn` seconds, with the pressure and
    steal shares each turn saw (ticks: 100 per turn)."""
    readings, wall, p_us, steal, total = [], t0, 0.0, 0.0, 0.0
    readings.append(Reading(wall, p_us, (steal, total)))
    for share, st in zip(pressure_shares, steal_shares, strict=True):
        wall += turn
        p_us += share * turn * 1e6
        steal += st * 100
        total += 100
        readings.append(Reading(wall, p_us, (steal, total)))
    return readings


def _settle(w: MachineWatch, pairs: int = MIN_HISTORY + 4, level: float = 0.0) -> None:
    for i in range(pairs):
        w.judge(_pair(i, 0.02, (level, level + 0.01 * (i % 2))), [1e-4, 1.01e-4])


def test_a_cases_first_pairs_teach_its_offset_and_are_not_judged() -> None:
    w = _watch()
    for i in range(MIN_HISTORY):
        assert not w.judge(_pair(i, 0.02, (0.0, 0.9 if i == 3 else 0.0)),
                           [1e-4, 3e-4 if i == 3 else 1e-4]).disturbed


def test_before_a_usual_gap_exists_only_the_fixed_tolerance_applies() -> None:
    w = _watch()
    for _ in range(MIN_HISTORY):  # offsets learned, "usual" not yet
        w.offsets["canary"].add(0.0)
        w.offsets["pressure"].add(0.0)
        w.offsets["steal"].add(0.0)
    assert not w.judge(_pair(0, 0.02, (0.0, 0.05)), [1e-4, 1.05e-4]).disturbed
    v = w.judge(_pair(0, 0.02, (0.0, 0.9)), [1e-4, 3e-4])
    assert v.disturbed and len(v.reasons) == 2


def test_a_pair_whose_turns_saw_different_pressure_is_disturbed() -> None:
    w = _watch()
    _settle(w)
    v = w.judge(_pair(100, 0.02, (0.0, 0.6)), [1e-4, 1e-4])
    assert v.disturbed and "CPU pressure" in v.reasons[0]
    assert v.pressure == pytest.approx(0.6)


def test_a_steadily_busy_machine_is_not_disturbed_if_both_turns_saw_it() -> None:
    w = _watch()
    _settle(w, level=0.7)
    v = w.judge(_pair(100, 0.02, (0.72, 0.7)), [1e-4, 1.02e-4])
    assert not v.disturbed


def test_a_canary_slower_in_one_turn_is_disturbed() -> None:
    w = _watch()
    _settle(w)
    v = w.judge(_pair(100, 0.02, (0.0, 0.0)), [1e-4, 1.5e-4])
    assert v.disturbed and "canary 1.50x" in v.reasons[0]


def test_steal_in_one_turn_only_is_disturbed() -> None:
    w = _watch()
    _settle(w)
    v = w.judge(_pair(100, 0.02, (0.0, 0.0), (0.0, 0.3)), [1e-4, 1e-4])
    assert v.disturbed and v.reasons[0].startswith("steal")


def test_usual_gap_adapts_to_a_machine_that_is_always_this_noisy() -> None:
    w = _watch()
    for i in range(60):  # canary gaps of 0-9% are this machine's normal
        w.judge(_pair(i, 0.02, (0.0, 0.0)), [1e-4, 1e-4 * (1 + 0.09 * (i % 11) / 10)])
    assert not w.judge(_pair(99, 0.02, (0.0, 0.0)), [1e-4, 1.12e-4]).disturbed
    assert w.judge(_pair(99, 0.02, (0.0, 0.0)), [1e-4, 1.5e-4]).disturbed


def test_a_machine_flipping_between_states_does_not_teach_usual() -> None:
    w = _watch()
    _settle(w)
    for i in range(40):  # half the pairs see a 2x gap: those stay disturbed
        v = w.judge(_pair(i, 0.02, (0.0, 0.0)), [1e-4, 2e-4 if i % 2 else 1e-4])
        assert v.disturbed == bool(i % 2)


def test_missing_witnesses_are_skipped() -> None:
    w = MachineWatch(clock=lambda: 0.0, pressure=lambda: None, ticks=lambda: None)
    assert w.available == {"pressure": False, "steal": False}
    r = [Reading(0.0, None, None)] * 3
    v = w.judge(r, [1e-4, 1e-4])
    assert not v.disturbed and v.pressure is None and v.steal is None


def test_canary_runs_and_returns_seconds() -> None:
    assert 0 < canary(100) < 1.0


def test_a_difference_every_pair_of_the_case_shows_is_the_codes_not_the_machines() -> None:
    w = _watch()
    _settle(w)
    w.new_case()
    flagged = []
    for i in range(30):  # the head side's two threads: its turns always see 40% pressure
        head_first = bool(i % 2)
        shares = (0.4, 0.0) if head_first else (0.0, 0.4)
        flagged.append(w.judge(_pair(i, 0.02, shares), [1e-4, 1e-4], head_first).disturbed)
    assert not any(flagged[MIN_HISTORY:])  # learned within the first pairs
    # a burst on top of that offset is still the machine's
    v = w.judge(_pair(99, 0.02, (0.0, 0.95)), [1e-4, 1e-4], head_first=False)
    assert v.disturbed
