"""The aggregator loop: wait for the lease as a standby; as the leader, emit one metric event
per tick.

Every tick the leader claims the tick's window end in Redis (``claim_window_end.lua``) *before*
producing its event. A claim is granted once per window end and only to the lease holder, so
an event is emitted at most once, even by a leader that lost its lease while paused and wakes
up mid-tick. Producing first and claiming after would turn a crash or a lost lease between the
two into a duplicate event; claiming first turns it into a missing one, which the next tick's
sliding window covers anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from confluent_kafka import KafkaException, Producer

from loginmetrics.aggregator.event_emission import (
    due_window_ends,
    first_window_end,
    revised_windows,
)
from loginmetrics.aggregator.history import EventHistory
from loginmetrics.aggregator.lease import AggregatorLease, ClaimStatus
from loginmetrics.aggregator.metric_event import EventTimeStamp, MetricEvent, build_metric_event
from loginmetrics.aggregator.metrics import aggregator_metrics
from loginmetrics.aggregator.published_events import Published
from loginmetrics.aggregator.publisher import MetricPublisher
from loginmetrics.aggregator.settings import AggregatorSettings
from loginmetrics.aggregator.ticks import (
    clock_step_warning,
    seconds_to_next_tick,
    tick_window_end,
)
from loginmetrics.runtime.attempts import Attempts
from loginmetrics.runtime.backoff import Backoff
from loginmetrics.runtime.health import LoopProbe, NoProbe
from loginmetrics.runtime.redis_errors import judge
from loginmetrics.window import WindowReader
from loginmetrics.window.event_clock import EventClock, global_watermark
from loginmetrics.window.layout import MINUTE_SECONDS, Tier, TimeBasis
from loginmetrics.window.ranges import RangeReader
from loginmetrics.window.rollup import Rollup

logger = logging.getLogger(__name__)

# Errors of an unavailable or refusing Redis or Kafka: retried with backoff, unless Redis says
# it will not heal (runtime.redis_errors), which ends the process with EXIT_FATAL.
RETRIABLE_ERRORS = (redis.RedisError, KafkaException, BufferError)
# Wake this long after a tick starts, so a reading of the Redis clock lands inside the new tick.
TICK_MARGIN_SECONDS = 0.005
# Event time: how often the leader reads the watermark (a window is emitted at most this long
# after the watermark passes its end), and how many window ends one step emits during a
# catch-up before it renews the lease and reads the watermark again.
EVENT_TIME_POLL_SECONDS = 0.5
CATCH_UP_ENDS_PER_STEP = 50
# Processing time: a second bucket is rolled up this long after the Redis clock left it.
ROLLUP_MARGIN_SECONDS = 2
# Event time: most second buckets the leader deletes per step once no window needs them.
PRUNE_BUCKETS_PER_STEP = 3600


@dataclass(frozen=True, slots=True)
class Emission:
    """One metric event to publish: the window ``[end - seconds, end)``; in event time with
    the watermark it was emitted at and its revision."""

    end: int
    seconds: int
    event_time: EventTimeStamp | None = None

    @property
    def revision(self) -> int:
        return 0 if self.event_time is None else self.event_time.revision


class Aggregator:
    """One aggregator of a window; any number may run, one of them is the leader."""

    def __init__(
        self,
        settings: AggregatorSettings,
        producer: Producer,
        reader: WindowReader,
        lease: AggregatorLease,
        stop: threading.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
        probe: LoopProbe | None = None,
        event_clock: EventClock | None = None,
        input_partitions: Callable[[], int] = lambda: 0,
        history: EventHistory | None = None,
        published: Callable[[], set[Published]] | None = None,
        ranges: RangeReader | None = None,
        rollup: Rollup | None = None,
    ) -> None:
        """``event_clock`` and ``input_partitions`` (how many partitions the input topic has
        now): required in event time, where the partitions' watermarks decide emission."""
        self._settings = settings
        self._layout = settings.layout
        self._publisher = MetricPublisher(
            producer, settings.metrics_topic, settings.layout.prefix, settings.flush_timeout_seconds
        )
        self._reader = reader
        self._lease = lease
        if (self._layout.time_basis is TimeBasis.EVENT) != (event_clock is not None):
            raise ValueError("an event clock is given exactly when the window is in event time")
        self._event_clock = event_clock
        self._input_partitions = input_partitions
        self._history = history
        # Reads back what is on the metric topic, for claims a crashed leader left unconfirmed.
        self._published = published
        self._settling = False
        # Windows read through the rolled-up tiers where they are (a 1 h window is then ~120
        # buckets, not 3,600), and the leader's rollup of the buckets its basis calls final.
        self._ranges = ranges
        self._rollup = rollup
        self._stop = stop
        self._clock = clock
        self._attempts = Attempts(
            Backoff(max_seconds=min(5.0, settings.renew_interval_seconds)), clock
        )
        self.is_leader = False
        self.emitted = 0
        self._next_lease_at = clock()
        self._next_tick_at = clock()
        self._last_end: int | None = None  # newest window end this aggregator has handled
        self._last_reading: tuple[float, float] | None = None  # (Redis time, local clock)
        self._pending: list[Emission] = []  # claimed, not produced yet, oldest first
        self._window_lengths = settings.window_lengths
        self._announced_standby = False
        self._took_over = False
        self._probe = probe or NoProbe()
        self._metrics = aggregator_metrics()

    def run(self) -> None:
        """Until ``stop`` is set; then flush and release the lease for a standby to take.
        Raises ``FatalRedisError`` (after the same shutdown) when Redis refuses for good."""
        logger.info("aggregator %s: waiting for the lease", self._lease.token)
        try:
            while not self._stop.is_set():
                delay = self.step()
                self._report_health()
                self._stop.wait(delay)
        finally:
            self._shutdown()

    def step(self) -> float:
        """Do whatever is due now; return the seconds until something is due next."""
        try:
            self._lease_step()
            if self.is_leader:
                self._emit_step()
        except RETRIABLE_ERRORS as exc:
            if isinstance(exc, redis.RedisError):
                judge(exc, "hold the aggregator lease, read the window or claim a tick")
            return self._retry_delay(exc)
        failures = self._attempts.succeeded()
        if failures:
            logger.info("Redis and Kafka answer again after %d failed attempts", failures)
        due = (
            min(self._next_lease_at, self._next_tick_at) if self.is_leader else self._next_lease_at
        )
        return max(0.0, due - self._clock())

    # -- leadership ------------------------------------------------------------------------

    def _lease_step(self) -> None:
        if self._clock() < self._next_lease_at:
            return
        if self.is_leader:
            if not self._lease.renew():
                self._lose("the lease expired or another aggregator took it")
                return  # try to take it back at once: it may simply have expired
        elif self._lease.acquire():
            self._lead()
        elif not self._announced_standby:
            logger.info("standing by: the lease is held by %s", self._lease.holder())
            self._announced_standby = True
        self._next_lease_at = self._clock() + self._settings.renew_interval_seconds

    def _report_health(self) -> None:
        if self._attempts.failures:
            self._probe.beat(False, "Redis or Kafka unavailable, retrying")
        else:
            self._probe.beat(True, "leading" if self.is_leader else "standing by")

    def _lead(self) -> None:
        self.is_leader = True
        self._settling = True
        self._metrics.leader.set(1)
        self._announced_standby = False
        self._took_over = True
        self._next_tick_at = self._clock()  # emit the current tick now if nobody has
        logger.info("leading: this aggregator (%s) emits the metric events now", self._lease.token)

    def _lose(self, reason: str) -> None:
        self.is_leader = False
        self._metrics.leader.set(0)
        logger.warning("lost leadership: %s; standing by", reason)
        for pending in self._pending:
            logger.warning(
                "metric event of the %d s window ending %d is not emitted",
                pending.seconds,
                pending.end,
            )
        self._pending = []

    # -- emission --------------------------------------------------------------------------

    def _emit_step(self) -> None:
        if self._settling:
            self._settle_unconfirmed()
            self._settling = False
        if self._pending:
            self._retry_pending()
        if self._clock() < self._next_tick_at:
            return
        if self._event_clock is not None:
            self._event_time_step(self._event_clock)
            return
        server_now = self._reader.server_time()
        local_now = self._clock()
        interval = self._settings.emit_interval_seconds
        end = tick_window_end(server_now, interval, self._layout)
        reading = (server_now, local_now)
        if self._last_reading and (
            warning := clock_step_warning(self._last_reading, reading, interval)
        ):
            logger.warning("%s", warning)
        self._last_reading = reading
        if self._last_end is None or end > self._last_end:
            self._claim_and_publish(end)
        if self._rollup is not None and self.is_leader:
            # A second bucket is final once the Redis clock has left it.
            self._rollup.roll(self._layout.bucket_start(server_now) - ROLLUP_MARGIN_SECONDS)
        self._next_tick_at = (
            local_now + seconds_to_next_tick(server_now, interval) + TICK_MARGIN_SECONDS
        )

    def _settle_unconfirmed(self) -> None:
        """A leader that died between claiming an event and Kafka's acknowledgement left the
        claim unconfirmed: publish each such event that is not on the topic, so that no claimed
        event goes missing, and none is published twice."""
        claims = self._lease.unconfirmed()
        if not claims or self._published is None:
            return
        on_topic = self._published()
        for seconds, end, revision in claims:
            if (seconds, end, revision) in on_topic:
                self._lease.confirm(seconds, end, revision)
                continue
            logger.warning(
                "the metric event of the window [%d, %d) (revision %d) was claimed by a leader "
                "that stopped before Kafka acknowledged it, and it is not on %s: publishing it",
                end - seconds,
                end,
                revision,
                self._settings.metrics_topic,
            )
            stamp = EventTimeStamp(end, revision) if self._event_clock is not None else None
            self._publish_all([Emission(end, seconds, stamp)])

    def _event_time_step(self, event_clock: EventClock) -> None:
        """Emit every window end the global watermark has passed, oldest first; emit again the
        windows late messages changed; delete the buckets no window needs any more."""
        self._next_tick_at = self._clock() + EVENT_TIME_POLL_SECONDS
        reading = event_clock.read()
        policy = self._layout.event_time
        watermark = global_watermark(reading, policy, self._input_partitions())
        if watermark is None or reading.first_bucket is None:
            return  # nothing applied yet
        self._metrics.watermark_lag_seconds.set(max(0.0, reading.now - watermark))
        interval = int(self._settings.emit_interval_seconds)
        last = self._last_end if self._last_end is not None else self._lease.last_emitted()
        ends = due_window_ends(
            last,
            reading.first_bucket,
            watermark,
            interval,
            self._layout.retention_seconds,
            CATCH_UP_ENDS_PER_STEP,
        )
        for end in ends:
            self._claim_and_publish(end, EventTimeStamp(watermark))
            if not self.is_leader:
                return
        if len(ends) == CATCH_UP_ENDS_PER_STEP:
            self._next_tick_at = self._clock()  # more are due: go on at once
        emitted = self._last_end
        if emitted is None:
            return
        if reading.late_buckets:
            revised = revised_windows(
                reading.late_buckets,
                self._window_lengths,
                emitted,
                first_window_end(reading.first_bucket, interval),
                interval,
            )
            for seconds, end in revised:
                claim = self._lease.claim_revision(seconds, end)
                if claim.status is ClaimStatus.NOT_LEADER:
                    self._lose(f"the lease is held by {claim.holder or 'nobody'}")
                    return
                self._publish_all(
                    [Emission(end, seconds, EventTimeStamp(watermark, claim.previous or 0))]
                )
            event_clock.settle_late(reading.late_buckets)
        # A bucket is final once no message may land in it any more: the allowed lateness
        # behind the newest emitted window end (event_fold's floor).
        final = self._layout.bucket_start(emitted - policy.allowed_lateness_seconds)
        horizon = self._layout.bucket_start(
            emitted - max(self._window_lengths) - policy.allowed_lateness_seconds
        )
        if self._rollup is not None and self._layout.has_tiers:
            self._rollup.roll(final)
            # Seconds are deleted only once their minute is rolled up.
            rolled = self._rollup.progress(Tier.MINUTE)
            horizon = min(horizon, -1 if rolled is None else rolled + MINUTE_SECONDS)
        event_clock.prune(horizon, PRUNE_BUCKETS_PER_STEP)

    def _claim_and_publish(self, end: int, event_time: EventTimeStamp | None = None) -> None:
        claim = self._lease.claim(end, self._window_lengths)
        if claim.status is ClaimStatus.NOT_LEADER:
            self._lose(f"the lease is held by {claim.holder or 'nobody'}")
            self._next_lease_at = self._clock()
            return
        self._last_end = end
        if claim.status is ClaimStatus.ALREADY_EMITTED:
            logger.debug("window ending %d already emitted (last %s)", end, claim.previous)
            return
        if self._took_over:
            self._took_over = False
            logger.info(
                "taking over at the window ending %d (last emitted: %s)", end, claim.previous
            )
        self._publish_all([Emission(end, seconds, event_time) for seconds in self._window_lengths])

    def _retry_pending(self) -> None:
        # Past the grace period the window's oldest buckets may have expired: its totals are
        # gone. In event time the leader deletes them only once every window is emitted.
        oldest = self._pending[0]
        if (
            self._event_clock is None
            and self._reader.server_time() - oldest.end > self._layout.expiry_grace_seconds
        ):
            logger.error(
                "gave up the metric events of the window ending %d: too late to read", oldest.end
            )
            self._pending = [p for p in self._pending if p.end != oldest.end]
            return
        self._publish_all([])

    def _publish_all(self, emissions: list[Emission]) -> None:
        """Publish what is still pending, then ``emissions``, in order; each leaves the queue
        once produced, so a failure retries from the first one not produced."""
        self._pending.extend(emissions)
        while self._pending:
            self._publish(self._pending[0])
            self._pending.pop(0)

    def _publish(self, emission: Emission) -> None:
        started = self._clock()
        if self._ranges is not None:
            totals = self._ranges.read(emission.end - emission.seconds, emission.end).totals
        else:
            totals = self._reader.read(emission.end, emission.seconds)
        self._metrics.window_read_seconds.observe(self._clock() - started)
        event = build_metric_event(
            totals,
            datetime.now(UTC),
            self._layout.bucket_seconds,
            max_values=self._settings.max_distribution_values,
            event_time=emission.event_time,
        )
        if self._publisher.publish(event):
            self._lease.confirm(emission.seconds, emission.end, emission.revision)
        self._metrics.published(
            event.total_messages,
            event.total_errors,
            event.error_rate,
            event.active_users,
            event.unique_ips,
            event.processing_rate,
        )
        self.emitted += 1
        self._remember(event)
        logger.info(
            "metric event for [%s, %s)%s: %d messages, %d errors, %d users, %d ips, %.2f msg/s",
            event.window_start,
            event.window_end,
            f" revision {event.revision}" if event.revision else "",
            event.total_messages,
            event.total_errors,
            event.active_users,
            event.unique_ips,
            event.processing_rate,
        )

    def _remember(self, event: MetricEvent) -> None:
        """Keep the published event for the HTTP API's history. Never retried: the event is
        out, and publishing it again would be a duplicate; the history only misses it."""
        if self._history is None:
            return
        try:
            self._history.append(event)
        except redis.RedisError as exc:
            logger.warning("metric event published but not kept in the history: %s", exc)

    # -- failures and shutdown -------------------------------------------------------------

    def _retry_delay(self, exc: BaseException) -> float:
        delay = self._attempts.failed()
        service = "Redis" if isinstance(exc, redis.RedisError) else "Kafka"
        logger.log(
            self._attempts.log_level,
            "%s unavailable (%s: %s); attempt %d failed, retrying in %.1f s",
            service,
            type(exc).__name__,
            exc,
            self._attempts.failures,
            delay,
        )
        return delay

    def _shutdown(self) -> None:
        # Release first: a standby may emit the next window while the last events are flushed;
        # claims already keep every window end to one event.
        if self.is_leader:
            self.is_leader = False
            self._metrics.leader.set(0)
            self._release_lease()
        self._publisher.close()
        logger.info("aggregator stopped after %d metric events", self.emitted)

    def _release_lease(self) -> None:
        try:
            released = self._lease.release()
        except RETRIABLE_ERRORS as exc:
            logger.warning(
                "could not release the lease (%s); a standby takes over when it expires", exc
            )
            return
        if released:
            logger.info("released the lease for a standby to take")
        else:
            logger.warning("the lease had already expired or been taken over")
