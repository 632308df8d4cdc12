"""ChampionProvider: the runner's ``model``, always the registry's current champion.

The runner holds one provider for its whole life; each signal asks the registry which version is
champion, so a promotion or rollback (even from another process) takes effect at the next cycle
without rebuilding anything. Prediction runs in a worker thread to keep the event loop free.
``MarketChampions`` holds one provider per model key: each market asks its own champion (or its
group's), never another market's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import structlog

from hydra_engine.model.features import FeatureError
from hydra_engine.model.registry import ModelRegistry

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Signal:
    """The champion's view of one decision date."""

    version: str
    """Registry version of the champion that produced it."""
    as_of: str
    """Index label (trade date) of the feature row used."""
    p_up: float
    """Probability that the close rises over the label horizon."""


class ChampionProvider:
    """``await predict_proba(features)`` -> P(up) for the last feature row, or None without a champion."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self.last_signal: Signal | None = None

    async def signal(self, features: pd.DataFrame) -> Signal | None:
        """Score the last row of ``features`` (the latest completed bar) with the champion."""
        if not isinstance(features, pd.DataFrame) or features.empty:
            raise FeatureError("champion: need a non-empty feature DataFrame (latest row = today's close)")
        entry = await self._registry.champion_entry()
        if entry is None:
            log.info("champion.none", reason="no champion registered; no signal")
            self.last_signal = None
            return None
        version, model = entry
        row = features.iloc[[-1]]
        p = await asyncio.to_thread(model.predict_proba, row)
        sig = Signal(version=version, as_of=str(row.index[0]), p_up=float(p[0]))
        self.last_signal = sig
        log.info("champion.signal", version=sig.version, as_of=sig.as_of, p_up=round(sig.p_up, 4))
        return sig

    async def predict_proba(self, features: pd.DataFrame) -> float | None:
        """P(up) for the last feature row from the current champion; None if there is none."""
        sig = await self.signal(features)
        return None if sig is None else sig.p_up

    async def predict(self, features: pd.DataFrame, threshold: float = 0.5) -> int | None:
        """1 (up) or 0 (down) for the last feature row; None without a champion."""
        p = await self.predict_proba(features)
        return None if p is None else int(p > threshold)

    async def version(self) -> str | None:
        """The champion's version right now."""
        return await self._registry.champion_version()


class MarketChampions:
    """Each market's champion: ``await predict_proba(market, features)``; the cycle's ``ChampionSource``."""

    def __init__(self, registry: ModelRegistry, key_of: Mapping[str, str]) -> None:
        """``key_of``: market symbol -> model key (the symbol, or the group it trades with)."""
        self.key_of = dict(key_of)
        self.providers = {key: ChampionProvider(registry.for_market(key)) for key in dict.fromkeys(self.key_of.values())}

    def provider(self, market: str) -> ChampionProvider:
        try:
            return self.providers[self.key_of[market]]
        except KeyError:
            raise KeyError(f"market {market!r} has no champion here (markets: {', '.join(self.key_of)})") from None

    async def predict_proba(self, market: str, features: pd.DataFrame) -> float | None:
        """P(up) for the last feature row from ``market``'s champion; None if it has none."""
        return await self.provider(market).predict_proba(features)

    def last_signal(self, market: str) -> Signal | None:
        return self.provider(market).last_signal

    async def versions(self) -> dict[str, str | None]:
        """Market -> its champion's version right now."""
        return {m: await self.providers[k].version() for m, k in self.key_of.items()}
