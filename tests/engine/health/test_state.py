"""The up/down hysteresis of one real server."""

from __future__ import annotations

import pytest

from passerelle.engine.health.state import HealthState


def feed(state: HealthState, results: str) -> list[bool]:
    """Record results given as a string of '+' (success) and '-' (failure); the change flags."""
    return [state.record(r == "+") for r in results]


def test_starts_unknown() -> None:
    assert HealthState(retries=3, rise=2).up is None


@pytest.mark.parametrize("first", [True, False])
def test_first_result_decides_at_once(first: bool) -> None:
    state = HealthState(retries=5, rise=5)
    assert state.record(first) is True
    assert state.up is first


def test_retries_consecutive_failures_take_an_up_server_down() -> None:
    state = HealthState(retries=3, rise=2)
    assert feed(state, "+--") == [True, False, False]
    assert state.up is True
    assert state.record(False) is True
    assert state.up is False
    assert feed(state, "---") == [False, False, False]
    assert state.up is False


def test_rise_consecutive_successes_bring_a_down_server_up() -> None:
    state = HealthState(retries=2, rise=3)
    assert feed(state, "-++") == [True, False, False]
    assert state.up is False
    assert state.record(True) is True
    assert state.up is True


def test_a_success_resets_the_failure_count() -> None:
    state = HealthState(retries=2, rise=2)
    assert feed(state, "+-+-+-+") == [True] + [False] * 6
    assert state.up is True
    assert feed(state, "--") == [False, True]
    assert state.up is False


def test_a_failure_resets_the_success_count() -> None:
    state = HealthState(retries=2, rise=2)
    assert feed(state, "-+-+-") == [True] + [False] * 4
    assert state.up is False
    assert feed(state, "++") == [False, True]
    assert state.up is True


def test_one_means_every_result_counts() -> None:
    state = HealthState(retries=1, rise=1)
    assert feed(state, "+-+--++") == [True, True, True, True, False, True, False]
    assert state.up is True


def test_streak_does_not_carry_over_a_change() -> None:
    # After going down, the failures that did it must not count towards anything later.
    state = HealthState(retries=2, rise=2)
    assert feed(state, "+--+-+") == [True, False, True, False, False, False]
    assert state.up is False


@pytest.mark.parametrize(("retries", "rise"), [(0, 1), (1, 0)])
def test_rejects_counts_below_one(retries: int, rise: int) -> None:
    with pytest.raises(ValueError):
        HealthState(retries=retries, rise=rise)
