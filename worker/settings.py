"""The frozen settings a worker process is started with (built by the CLI, pickled to children)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loginmetrics.runtime import defaults
from loginmetrics.runtime.clients import SentinelConfig
from loginmetrics.runtime.errors import ConfigError
from loginmetrics.window import WindowLayout
from loginmetrics.worker.validation import DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    # librdkafka settings shared by every client: bootstrap servers and security; may hold secrets.
    kafka: Mapping[str, str]
    redis_url: str
    # Set: find the Redis primary through Sentinel (redis_url then gives db, user, password, TLS).
    redis_sentinel: SentinelConfig | None = None
    layout: WindowLayout = field(default_factory=WindowLayout)
    input_topic: str = defaults.INPUT_TOPIC
    dlq_topic: str = defaults.DLQ_TOPIC
    group_id: str = defaults.GROUP_ID
    # Most messages taken from Kafka and applied to Redis in one step.
    batch_size: int = 10_000
    poll_timeout_seconds: float = 0.1
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # Longest user_id, app_version, ip, locale or device_type, in UTF-8 bytes (value_too_long).
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES

    def __post_init__(self) -> None:
        for option, topic in (
            ("--input-topic", self.input_topic),
            ("--dlq-topic", self.dlq_topic),
            ("--group-id", self.group_id),
        ):
            if not topic.strip():
                raise ConfigError(f"{option} must not be empty")
        if self.input_topic == self.dlq_topic:
            raise ConfigError(
                f"--dlq-topic must differ from --input-topic (both {self.input_topic!r})"
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.max_message_bytes < 1:
            raise ConfigError(
                f"--max-message-bytes must be at least 1, got {self.max_message_bytes}"
            )
        if self.max_field_bytes < 1:
            raise ConfigError(f"--max-field-bytes must be at least 1, got {self.max_field_bytes}")
        if not self.poll_timeout_seconds > 0:
            raise ConfigError(f"the poll timeout must be positive, got {self.poll_timeout_seconds}")

    def consumer_config(self) -> dict[str, str | int | bool]:
        # Later keys win: the operator's own settings (self.kafka) override only what is listed
        # before them, never the keys exactly-once depends on.
        return {
            # Where Redis has no applied offset and the group has no commit: start at the oldest.
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            # A killed worker's partitions move on after this long (librdkafka's default is 45 s).
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000,
            "fetch.min.bytes": 1,
            "fetch.wait.max.ms": 100,
            # Prefetch: 16 MB is dozens of batches, ~0.3 s at a worker's top rate. Once it is
            # full, librdkafka waits fetch.queue.backoff.ms before fetching again; its 1 s
            # default left a busy worker idle for most of that second (bench/throughput.py).
            "queued.max.messages.kbytes": 16384,
            "fetch.queue.backoff.ms": 20,
            **self.kafka,
            "group.id": self.group_id,
            "enable.auto.commit": False,
        }

    def dlq_producer_config(self) -> dict[str, str | int | bool]:
        return {
            "linger.ms": 20,
            "compression.type": "lz4",
            "message.timeout.ms": 30_000,
            **self.kafka,
            "enable.idempotence": True,
            "acks": "all",
        }
