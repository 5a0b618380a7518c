"""Key layout and bucket math of the shared window: the one place that knows Redis key names."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from loginmetrics.window.errors import WindowConfigError
from loginmetrics.window.event_time import EventTimePolicy


class BucketField(StrEnum):
    """One Redis key per field and bucket."""

    USERS = "users"  # HyperLogLog of user_id
    IPS = "ips"  # HyperLogLog of ip
    DEVICES = "devices"  # sorted set: device_type -> count
    VERSIONS = "versions"  # sorted set: app_version -> count
    LOCALES = "locales"  # sorted set: locale -> count
    COUNTS = "counts"  # hash: valid, invalid


class TimeBasis(StrEnum):
    """Which clock names a message's bucket."""

    PROCESSING = "processing"  # the Redis clock when a worker applies it (the original design)
    EVENT = "event"  # the payload's ``timestamp``


COUNT_VALID = "valid"
COUNT_INVALID = "invalid"
# Most values a distribution (devices, versions, locales) tracks in one bucket; the apply script
# counts any further value under OTHER_VALUES, so a bucket's memory is bounded whatever the
# traffic while each distribution still sums to the bucket's valid count.
TRACKED_VALUES = 1000
OTHER_VALUES = "__other__"


@dataclass(frozen=True, slots=True)
class WindowLayout:
    """Where a window lives in Redis and how time maps to its buckets.

    A bucket is named by the epoch second it starts at (a multiple of ``bucket_seconds``),
    so its keys stay meaningful to an operator running ``redis-cli --scan``.
    """

    prefix: str = "loginmetrics"
    bucket_seconds: int = 1
    window_seconds: int = 300
    # Keys outlive the window by this much so a slow aggregator tick never reads a half-expired one.
    expiry_grace_seconds: int = 60
    # Most values a distribution tracks per bucket (tests lower it; nothing else changes it).
    tracked_values: int = TRACKED_VALUES
    time_basis: TimeBasis = TimeBasis.PROCESSING
    # Event time's delays and limits (unused in processing time).
    event_time: EventTimePolicy = field(default_factory=EventTimePolicy)
    # How long rolled-up (minute and hour) buckets are kept: the oldest range one can ask for.
    retention_seconds: int = 24 * 3600

    def __post_init__(self) -> None:
        if not self.prefix or any(c.isspace() for c in self.prefix):
            raise WindowConfigError(
                f"Redis key prefix must be a non-empty word, got {self.prefix!r}"
            )
        if self.bucket_seconds < 1:
            raise WindowConfigError(
                f"--bucket-seconds must be at least 1, got {self.bucket_seconds}"
            )
        if self.tracked_values < 1:
            raise WindowConfigError(
                f"a bucket must track at least one value, got {self.tracked_values}"
            )
        if self.retention_seconds < self.window_seconds:
            raise WindowConfigError(
                f"--retention ({self.retention_seconds} s) must be at least --window "
                f"({self.window_seconds} s)"
            )
        if self.window_seconds < self.bucket_seconds or self.window_seconds % self.bucket_seconds:
            raise WindowConfigError(
                f"--window ({self.window_seconds} s) must be a positive multiple of "
                f"--bucket-seconds ({self.bucket_seconds} s)"
            )

    @property
    def buckets_per_window(self) -> int:
        return self.window_seconds // self.bucket_seconds

    @property
    def ttl_seconds(self) -> int:
        """How long a bucket's keys live after their last write. In event time a bucket must
        outlive a catch-up however long it takes: the aggregator deletes it once the watermark
        has passed its windows and their lateness, and this is only the backstop."""
        if self.time_basis is TimeBasis.EVENT:
            return self.retention_seconds
        return self.window_seconds + self.bucket_seconds + self.expiry_grace_seconds

    def bucket_start(self, epoch_seconds: float) -> int:
        """Start second of the bucket that contains ``epoch_seconds``."""
        return int(epoch_seconds // self.bucket_seconds) * self.bucket_seconds

    def window_bucket_starts(self, window_end: int, seconds: int | None = None) -> range:
        """Start seconds of the buckets of the window that ends (exclusive) at ``window_end``
        and lasts ``seconds`` (default: ``window_seconds``)."""
        if window_end % self.bucket_seconds:
            raise ValueError(f"window end {window_end} is not on a bucket boundary")
        length = self.window_seconds if seconds is None else seconds
        return range(window_end - length, window_end, self.bucket_seconds)

    @property
    def bucket_key_prefix(self) -> str:
        """Prefix of every bucket key; the apply script appends ``<start>:<field>``."""
        return f"{self.prefix}:bucket:"

    def bucket_key(self, bucket_start: int, field: BucketField) -> str:
        return f"{self.bucket_key_prefix}{bucket_start}:{field.value}"

    def bucket_keys(self, bucket_starts: range, field: BucketField) -> list[str]:
        return [self.bucket_key(start, field) for start in bucket_starts]

    def union_key(self, field: BucketField) -> str:
        """Scratch key of a window read: the union of a distribution's buckets, written and
        deleted inside the read's MULTI/EXEC, so no other client ever sees it."""
        return f"{self.prefix}:union:{field.value}"

    def applied_offsets_key(self, topic: str) -> str:
        """Hash of partition -> last offset of ``topic`` whose effect is in the window."""
        return f"{self.prefix}:applied:{topic}"

    def topic_id_key(self, topic: str) -> str:
        """The Kafka topic id (UUID) the applied offsets of ``topic`` belong to: a recreated
        topic has another id, and offsets of the old one mean nothing in it."""
        return f"{self.prefix}:topic-id:{topic}"

    def watermarks_key(self, topic: str) -> str:
        """Event time: hash of partition -> its watermark (largest event time applied minus
        the allowed delay), moved in the same compare-and-set as its applied offset."""
        return f"{self.prefix}:watermarks:{topic}"

    def caught_up_key(self, topic: str) -> str:
        """Event time: hash of partition -> "<since>:<seen>" (Redis clock) while a worker finds
        it caught up with the end of its log: an idle partition holds no window back."""
        return f"{self.prefix}:caught-up:{topic}"

    @property
    def first_bucket_key(self) -> str:
        """Event time: the oldest bucket any message was applied to (where emission starts)."""
        return f"{self.prefix}:first-bucket"

    @property
    def late_buckets_key(self) -> str:
        """Event time: sorted set of buckets written after a window holding them was emitted;
        the aggregator emits those windows again with their next revision."""
        return f"{self.prefix}:late-buckets"

    @property
    def revisions_key(self) -> str:
        """Event time: hash of "<window seconds>:<end>" -> the last revision emitted."""
        return f"{self.prefix}:aggregator:revisions"

    @property
    def unconfirmed_key(self) -> str:
        """Hash of "<window seconds>:<end>:<revision>" claimed for a metric event whose delivery
        Kafka has not confirmed yet: the next leader checks the topic for each."""
        return f"{self.prefix}:aggregator:unconfirmed"

    @property
    def pruned_before_key(self) -> str:
        """Event time: every second bucket before this start was deleted by the aggregator."""
        return f"{self.prefix}:aggregator:pruned-before"

    @property
    def layout_key(self) -> str:
        """Hash: the layout recorded by the first process that wrote (window/layout_record.py)."""
        return f"{self.prefix}:layout"

    @property
    def aggregator_lease_key(self) -> str:
        return f"{self.prefix}:aggregator:lease"

    @property
    def history_key(self) -> str:
        """Stream of the published metric events, oldest first, trimmed to --history seconds
        (aggregator/history.py); entry ids are the Redis-clock milliseconds of each publish."""
        return f"{self.prefix}:history"

    @property
    def last_emitted_key(self) -> str:
        """End (epoch second) of the newest window a metric event was emitted for."""
        return f"{self.prefix}:aggregator:last-emitted"

    # Coarser tiers (issue 22): finished second buckets roll up into minute buckets and minutes
    # into hours (window/rollup.py), each kept for --retention, so that a long range reads a few
    # coarse buckets. Keys: <prefix>:minute:<start>:<field> and <prefix>:hour:<start>:<field>,
    # the same fields as a second bucket.
    @property
    def has_tiers(self) -> bool:
        """Minutes can be built from whole buckets only when a bucket divides a minute."""
        return MINUTE_SECONDS % self.bucket_seconds == 0

    def tier_seconds(self, tier: Tier) -> int:
        if tier is Tier.BUCKET:
            return self.bucket_seconds
        return MINUTE_SECONDS if tier is Tier.MINUTE else HOUR_SECONDS

    def tier_key_prefix(self, tier: Tier) -> str:
        """Prefix of a tier's keys; ``Tier.BUCKET`` gives ``bucket_key_prefix``."""
        return f"{self.prefix}:{tier.value}:"

    def tier_key(self, tier: Tier, start: int, field: BucketField) -> str:
        return f"{self.tier_key_prefix(tier)}{start}:{field.value}"

    def tier_ttl_seconds(self, tier: Tier) -> int:
        """How long a minute or hour bucket lives after it is rolled up (at or after its end):
        the whole retention past its end, plus the grace."""
        return self.retention_seconds + self.tier_seconds(tier) + self.expiry_grace_seconds

    def rolled_key(self, tier: Tier) -> str:
        """Start (epoch second) of the newest minute or hour bucket rolled up; the rollup
        script checks and moves it, so no bucket is rolled twice."""
        return f"{self.prefix}:rolled:{tier.value}"


MINUTE_SECONDS = 60
HOUR_SECONDS = 3600


class Tier(StrEnum):
    """How long a bucket is: the workers' second buckets and the rolled-up tiers."""

    BUCKET = "bucket"  # --bucket-seconds, written by the workers
    MINUTE = "minute"
    HOUR = "hour"
