"""Patience schedule pricing and ADV slicing (the pure parts of the order manager)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydra_engine.execution.patience import (
    PatienceSchedule,
    PatienceStep,
    limit_price,
    round_to_tick,
)
from hydra_engine.execution.slicing import slice_sizes


def test_default_schedule_walks_mid_touch_through_then_cancels() -> None:
    s = PatienceSchedule.default()
    bid, ask, tick = 70.00, 70.04, 0.01
    prices = [limit_price(step, side="BUY", bid=bid, ask=ask, tick=tick) for step in s.steps]
    assert prices == [70.02, 70.03, 70.04, 70.05]
    sells = [limit_price(step, side="SELL", bid=bid, ask=ask, tick=tick) for step in s.steps]
    assert sells == [70.02, 70.01, 70.00, 69.99]
    assert s.step_at(0) == 0 and s.step_at(119.9) == 0 and s.step_at(120) == 1 and s.step_at(10_000) == 3
    assert s.next_change_s(0) == 120 and s.next_change_s(360) == s.cancel_after_s


def test_mid_between_ticks_rounds_to_the_passive_side() -> None:
    step = PatienceStep(0, 0.0)
    assert limit_price(step, side="BUY", bid=70.00, ask=70.01, tick=0.01) == 70.00
    assert limit_price(step, side="SELL", bid=70.00, ask=70.01, tick=0.01) == 70.01


def test_schedule_from_config_and_errors_name_the_field() -> None:
    s = PatienceSchedule.from_config({"steps": [[0, 0], [30, 1], [60, 1, 2]], "cancel_after_s": 90})
    assert s.steps[2] == PatienceStep(60.0, 1.0, 2)
    with pytest.raises(ValueError, match="cancel_after_s"):
        PatienceSchedule.from_config({"steps": [[0, 0]]})
    with pytest.raises(ValueError, match=r"steps\[1\].after_s"):
        PatienceSchedule.from_config({"steps": [[0, 0], [0, 1]], "cancel_after_s": 9})
    with pytest.raises(ValueError, match=r"steps\[1\] must not be less aggressive"):
        PatienceSchedule.from_config({"steps": [[0, 1], [5, 0]], "cancel_after_s": 9})
    with pytest.raises(ValueError, match="first step starts at 0"):
        PatienceSchedule.from_config({"steps": [[5, 0]], "cancel_after_s": 9})


@given(st.floats(min_value=1, max_value=10_000), st.sampled_from([0.01, 0.25, 0.005, 0.5]))
def test_round_to_tick_lands_on_grid(price: float, tick: float) -> None:
    r = round_to_tick(price, tick, "BUY")
    assert abs(r / tick - round(r / tick)) < 1e-6
    assert abs(r - price) <= tick / 2 + 1e-9


def test_slices_respect_adv_fraction() -> None:
    assert slice_sizes(10, adv=300, max_adv_fraction=0.01) == [3, 3, 2, 2]
    assert slice_sizes(2, adv=10_000, max_adv_fraction=0.01) == [2]
    assert slice_sizes(3, adv=50, max_adv_fraction=0.01) == [1, 1, 1]  # thin: one-lot slices
    assert slice_sizes(0, adv=100, max_adv_fraction=0.01) == []
    assert slice_sizes(5, adv=0, max_adv_fraction=0.01) == [5]  # unknown ADV: the gate decides


@given(st.integers(0, 500), st.floats(0, 1e6), st.floats(0.001, 1.0))
def test_slices_add_up(n: int, adv: float, frac: float) -> None:
    sizes = slice_sizes(n, adv, frac)
    assert sum(sizes) == n
    assert all(s >= 1 for s in sizes)
    assert sizes == sorted(sizes, reverse=True)


def test_slice_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="max_adv_fraction"):
        slice_sizes(1, 100, 0)
    with pytest.raises(ValueError, match="n_contracts"):
        slice_sizes(-1, 100, 0.1)
