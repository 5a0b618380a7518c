"""The frozen settings a worker process is started with (built by the CLI, pickled to children)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from loginmetrics.runtime import defaults
from loginmetrics.runtime.clients import SentinelConfig
from loginmetrics.runtime.errors import ConfigError
from loginmetrics.window import WindowLayout
from loginmetrics.worker.validation import DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_MESSAGE_BYTES

# Operator settings (--kafka-config) that concern the consumer's group only.
GROUP_ONLY_SETTINGS = frozenset({"group.protocol", "group.instance.id", "group.remote.assignor"})


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

    def consumer_config(self, slot: int | None = None) -> dict[str, str | int | bool]:
        """The consumer's librdkafka settings; ``slot`` (the process's index in its pool) makes
        it a static member of the group (``group_instance_id``; called in a pool's child, whose
        parent is the supervisor)."""
        # Later keys win: the operator's own settings (self.kafka) override only what is listed
        # before them, never the keys exactly-once depends on.
        config: dict[str, str | int | bool] = {
            # Where Redis has no applied offset and the group has no commit: start at the oldest.
            "auto.offset.reset": "earliest",
            "fetch.min.bytes": 1,
            "fetch.wait.max.ms": 100,
            # Prefetch: 16 MB is dozens of batches, ~0.3 s at a worker's top rate. Once it is
            # full, librdkafka waits fetch.queue.backoff.ms before fetching again; its 1 s
            # default left a busy worker idle for most of that second (bench/throughput.py).
            "queued.max.messages.kbytes": 16384,
            "fetch.queue.backoff.ms": 20,
        }
        if self.group_protocol == "classic":
            # The consumer protocol (KIP-848) sets these on the broker and refuses them here.
            config.update(
                {
                    "partition.assignment.strategy": "cooperative-sticky",
                    # A dead member that is not restarted (a static one is reclaimed at once by
                    # its restart) leaves its partitions idle this long; librdkafka's default
                    # is 45 s.
                    "session.timeout.ms": 10_000,
                    # A member learns of a rebalance from its next heartbeat, and a cooperative
                    # one takes two rounds: at 2 s, a second process started on a backlog got
                    # its partitions ~4 s after joining, at 500 ms ~1 s (bench/throughput.py,
                    # cold start). A heartbeat is one small request.
                    "heartbeat.interval.ms": 200,
                }
            )
        config.update(self.kafka)
        config.pop("group.instance.id", None)
        instance = self.group_instance_id(slot)
        if instance is not None:
            config["group.instance.id"] = instance
        config["group.id"] = self.group_id
        config["enable.auto.commit"] = False
        return config

    @property
    def group_protocol(self) -> str:
        """``classic`` (the default) or ``consumer`` (KIP-848), from ``group.protocol``."""
        return self.kafka.get("group.protocol", "classic").strip().lower()

    def group_instance_id(self, slot: int | None) -> str | None:
        """The static member id of pool process ``slot``: the same for every child the
        supervisor starts in that slot, so a restarted child takes its predecessor's place and
        partitions at once instead of after the session timeout. None (dynamic membership):
        no slot, the consumer protocol, or ``group.instance.id`` set empty by the operator.

        A non-empty ``group.instance.id`` from the operator replaces the default base,
        ``<group>-<host>-<supervisor pid>``; the pid keeps two pools on one host apart (a
        duplicate id fences the older member for good).
        """
        base = self.kafka.get("group.instance.id")
        # KIP-848 fences the *new* member while the old id is still in the group: a child
        # restarted after a SIGKILL would be refused until the broker's session timeout.
        if slot is None or self.group_protocol != "classic" or base == "":
            return None
        if base is None:
            base = f"{self.group_id}-{socket.gethostname()}-{os.getppid()}"
        return f"{base}-{slot}"

    def dlq_producer_config(self) -> dict[str, str | int | bool]:
        # Group settings are the consumer's: librdkafka warns about each one a producer gets.
        shared = {k: v for k, v in self.kafka.items() if k not in GROUP_ONLY_SETTINGS}
        return {
            "linger.ms": 20,
            "compression.type": "lz4",
            "message.timeout.ms": 30_000,
            **shared,
            "enable.idempotence": True,
            "acks": "all",
        }
