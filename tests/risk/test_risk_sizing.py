"""Fractional Kelly sizing with contract and ADV caps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_engine.risk.sizing import kelly_fraction, size_position

probs = st.floats(0.0, 1.0)
ratios = st.floats(0.05, 20.0)
equities = st.floats(0.0, 1e8)
risks = st.floats(1.0, 1e6)
advs = st.floats(0.1, 1e6)


def test_kelly_formula() -> None:
    assert kelly_fraction(0.6, 1.0) == pytest.approx(0.2)
    assert kelly_fraction(0.55, 2.0) == pytest.approx(0.55 - 0.45 / 2)
    assert kelly_fraction(0.4, 1.0) == 0.0  # no edge: no bet


@settings(max_examples=300, deadline=None)
@given(p=probs, b=ratios, eq=equities, rpc=risks, adv=advs, cap=st.integers(0, 500),
       mult=st.floats(0.0, 1.0), frac=st.floats(0.0, 1.0))
def test_size_never_exceeds_any_cap(p, b, eq, rpc, adv, cap, mult, frac) -> None:
    r = size_position(win_prob=p, win_loss_ratio=b, equity=eq, risk_per_contract=rpc, adv=adv,
                      max_contracts=cap, kelly_multiplier=mult, max_adv_fraction=frac)
    assert 0 <= r.n_contracts <= cap
    assert r.n_contracts <= math.floor(frac * adv + 1e-9)
    assert r.n_contracts <= r.kelly_contracts or r.kelly_contracts == 0
    assert r.kelly_used == pytest.approx(r.kelly_full * mult)
    if kelly_fraction(p, b) == 0.0:
        assert r.n_contracts == 0 and r.binding == "no_edge"


@settings(max_examples=200, deadline=None)
@given(p=probs, b=ratios, e1=equities, e2=equities, rpc=risks, adv=advs)
def test_size_is_monotone_in_equity(p, b, e1, e2, rpc, adv) -> None:
    lo, hi = sorted((e1, e2))
    kw = dict(win_prob=p, win_loss_ratio=b, risk_per_contract=rpc, adv=adv, max_contracts=50)
    assert size_position(equity=lo, **kw).n_contracts <= size_position(equity=hi, **kw).n_contracts


def test_binding_constraint_is_named() -> None:
    kw = dict(win_prob=0.6, win_loss_ratio=1.0, equity=1_000_000.0, risk_per_contract=2_000.0)
    # Kelly: 0.25 * 0.2 * 1e6 / 2000 = 25 contracts
    assert size_position(adv=10_000, max_contracts=100, **kw).binding == "kelly"
    assert size_position(adv=10_000, max_contracts=100, **kw).n_contracts == 25
    r = size_position(adv=10_000, max_contracts=10, **kw)
    assert (r.n_contracts, r.binding) == (10, "max_contracts")
    r = size_position(adv=100, max_contracts=100, max_adv_fraction=0.05, **kw)
    assert (r.n_contracts, r.binding) == (5, "adv")


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(win_prob=float("nan")), r"win_prob=nan out of range \[0.0, 1.0\]"),
        (dict(win_prob=1.5), "win_prob=1.5 out of range"),
        (dict(win_loss_ratio=0.0), r"win_loss_ratio=0.0 out of range \(0.0"),
        (dict(adv=0.0), r"adv=0.0 out of range \(0.0"),
        (dict(equity=-1.0), "equity=-1.0 out of range"),
        (dict(risk_per_contract=float("nan")), "risk_per_contract=nan"),
        (dict(max_contracts=-1), "max_contracts=-1"),
    ],
)
def test_bad_input(kw, match) -> None:
    base = dict(win_prob=0.6, win_loss_ratio=1.0, equity=1e6, risk_per_contract=2000.0, adv=1e4, max_contracts=10)
    base.update(kw)
    with pytest.raises(ValueError, match=match):
        size_position(**base)
