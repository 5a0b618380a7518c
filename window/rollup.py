"""Rolls finished second buckets up into minute buckets, and minutes into hours, once each."""

from __future__ import annotations

import logging
from typing import Any

import redis

from loginmetrics.window.layout import OTHER_VALUES, Tier, TimeBasis, WindowLayout
from loginmetrics.window.scripts import load_lua

logger = logging.getLogger(__name__)

_ROLLUP = load_lua("loginmetrics.window", "rollup.lua")

# Most buckets of each tier one roll() rolls: a leader back after a long outage catches up a
# few buckets per tick (10 minutes per 10 s tick is 60 times real time) instead of holding
# Redis for the whole backlog at once. Each bucket is one script call, a few milliseconds.
MAX_MINUTES_PER_ROLL = 10
MAX_HOURS_PER_ROLL = 2


def parse_start(raw: Any) -> int | None:
    """A progress key's value (an epoch second), None when it was never set."""
    return None if raw is None else int(raw)


def rolled_until(layout: WindowLayout, tier: Tier, progress: int | None) -> int | None:
    """End of the newest rolled bucket of ``tier``: its buckets before this are usable."""
    return None if progress is None else progress + layout.tier_seconds(tier)


class Rollup:
    """The aggregator leader's side of the tiers: it decides which buckets are final
    (``final_before``), this rolls them up, in order, each exactly once."""

    def __init__(
        self,
        client: redis.Redis,
        layout: WindowLayout,
        max_minutes: int = MAX_MINUTES_PER_ROLL,
        max_hours: int = MAX_HOURS_PER_ROLL,
    ) -> None:
        self._client = client
        self._layout = layout
        self._max = {Tier.MINUTE: max_minutes, Tier.HOUR: max_hours}
        self._rollup = client.register_script(_ROLLUP)

    def progress(self, tier: Tier) -> int | None:
        """Start of the newest bucket of ``tier`` rolled up, None before the first."""
        return parse_start(self._client.get(self._layout.rolled_key(tier)))

    def roll(self, final_before: int) -> int:
        """Roll every minute that ends at or before ``final_before`` (no second of it can be
        written any more: the caller's time basis says so), then every hour whose minutes are
        all rolled, at most a few of each per call; the number of buckets rolled.

        A layout whose buckets do not divide a minute has no tiers: nothing is rolled.
        """
        layout = self._layout
        if not layout.has_tiers:
            return 0
        # Second buckets live --window (plus grace) after their last write, minutes --retention;
        # in event time seconds stay until the aggregator prunes them, however old.
        oldest_second = final_before - layout.window_seconds
        if layout.time_basis is TimeBasis.EVENT:
            oldest_second = self._oldest_event_second(final_before)
        rolled = self._roll_tier(Tier.MINUTE, final_before, oldest_second)
        minutes_until = rolled_until(layout, Tier.MINUTE, self.progress(Tier.MINUTE))
        if minutes_until is not None:
            hours_before = min(final_before, minutes_until)
            rolled += self._roll_tier(
                Tier.HOUR, hours_before, final_before - layout.retention_seconds
            )
        return rolled

    def _oldest_event_second(self, final_before: int) -> int:
        layout = self._layout
        pruned, first = self._client.mget(layout.pruned_before_key, layout.first_bucket_key)
        for raw in (pruned, first):
            if raw is not None:
                return int(raw)
        return final_before

    def _roll_tier(self, tier: Tier, final_before: int, oldest_source: int) -> int:
        layout = self._layout
        step = layout.tier_seconds(tier)
        source = Tier.MINUTE if tier is Tier.HOUR else Tier.BUCKET
        # The oldest bucket whose sources can all still be there.
        first_whole = -(-oldest_source // step) * step
        progress = self.progress(tier)
        start = first_whole if progress is None else progress + step
        if start < first_whole:
            logger.warning(
                "%s buckets %d..%d are not rolled up: their %s buckets expired meanwhile "
                "(the rollup was %d s behind); ranges over them read what is left",
                tier.value,
                start,
                first_whole - step,
                source.value,
                final_before - start,
            )
            start = first_whole
        rolled = 0
        while rolled < self._max[tier] and start + step <= final_before:
            result = self._rollup(
                keys=[layout.rolled_key(tier)],
                args=[
                    layout.tier_key_prefix(source),
                    layout.tier_seconds(source),
                    layout.tier_key_prefix(tier),
                    step,
                    start,
                    layout.tier_ttl_seconds(tier),
                    layout.tracked_values,
                    OTHER_VALUES,
                ],
            )
            rolled += int(result[0])  # 0: another leader rolled it meanwhile
            start += step
        return rolled
