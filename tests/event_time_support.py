"""Event-time test streams and their ground truth per window, computed from the payloads'
timestamps by the rules the spec states, never by the code under test."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer

from tests.support import topic_reader

DEVICES = ("android", "iOS")
LOCALES = ("TX", "OH", "CA", "NY", "WA")


@dataclass(frozen=True, slots=True)
class Login:
    """One message of an event-time stream, in the order of its partition."""

    partition: int
    timestamp: float
    user: str
    ip: str
    device: str
    version: str
    locale: str
    valid: bool = True
    # Event time refuses it though its payload is valid: "too_late" or "future_timestamp".
    refused: str | None = None

    def payload(self) -> bytes:
        if not self.valid:
            return b'{"user_id": "' + self.user.encode() + b'", "broken": '
        return json.dumps(
            {
                "user_id": self.user,
                "app_version": self.version,
                "ip": self.ip,
                "locale": self.locale,
                "device_id": "d",
                "timestamp": self.timestamp,
                "device_type": self.device,
            }
        ).encode()


def replay_stream(
    count: int,
    start: float,
    span: float,
    partitions: Sequence[int],
    max_shuffle: float,
    seed: int,
    invalid_every: int = 50,
) -> list[Login]:
    """``count`` logins spread evenly over ``[start, start + span)``, dealt to ``partitions``;
    within a partition a message is up to ``max_shuffle`` seconds older than the newest before
    it (clients' clocks and retries), never more. Users repeat (a pool of count / 4)."""
    rng = random.Random(seed)
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count // 4 + 1)]
    logins = []
    newest = dict.fromkeys(partitions, start)
    for n in range(count):
        partition = partitions[n % len(partitions)]
        moment = start + span * n / count
        newest[partition] = max(newest[partition], moment)
        shuffled = max(start, moment - rng.uniform(0, max_shuffle))
        logins.append(
            Login(
                partition=partition,
                timestamp=round(shuffled, 3),
                user=rng.choice(users),
                ip=f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}",
                device=rng.choice(DEVICES),
                version=rng.choice(("2.3.0", "2.4.0")),
                locale=rng.choice(LOCALES),
                valid=(n % invalid_every) != invalid_every - 1,
            )
        )
    return logins


@dataclass(slots=True)
class WindowTruth:
    valid: int = 0
    invalid: int = 0
    users: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    devices: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    locales: Counter[str] = field(default_factory=Counter)


def bucket_counts(logins: Iterable[Login]) -> dict[int, list[Login | None]]:
    """Second -> what counts there: a valid login in the second of its timestamp; an invalid
    message (None) in the second where its partition's newest timestamp stands (spec: dead
    letters count where the partition's stream stands)."""
    buckets: dict[int, list[Login | None]] = {}
    newest: dict[int, float] = {}
    for login in logins:
        if login.valid and login.refused is None:
            newest[login.partition] = max(newest.get(login.partition, 0.0), login.timestamp)
            buckets.setdefault(int(login.timestamp), []).append(login)
        else:
            buckets.setdefault(int(newest[login.partition]), []).append(None)
    return buckets


def window_truth(buckets: dict[int, list[Login | None]], end: int, seconds: int) -> WindowTruth:
    truth = WindowTruth()
    for second in range(end - seconds, end):
        for login in buckets.get(second, ()):
            if login is None:
                truth.invalid += 1
                continue
            truth.valid += 1
            truth.users.add(login.user)
            truth.ips.add(login.ip)
            truth.devices[login.device] += 1
            truth.versions[login.version] += 1
            truth.locales[login.locale] += 1
    return truth


def differences(event: dict[str, Any], truth: WindowTruth) -> list[str]:
    """What in ``event`` differs from ``truth``: counts and distributions exactly, distinct
    counts beyond the HyperLogLog's error (3 standard errors, at least 2)."""
    found = []
    exact = {
        "window_size": truth.valid,
        "total_errors": truth.invalid,
        "total_messages": truth.valid + truth.invalid,
        "device_distribution": dict(truth.devices),
        "version_distribution": dict(truth.versions),
        "location_distribution": dict(truth.locales),
    }
    for name, expected in exact.items():
        if event[name] != expected:
            found.append(f"{name} {event[name]} != {expected}")
    for name, distinct in (("active_users", truth.users), ("unique_ips", truth.ips)):
        if abs(event[name] - len(distinct)) > max(2, 0.0243 * len(distinct)):
            found.append(f"{name} {event[name]} vs {len(distinct)} distinct")
    return found


def login_producer(bootstrap: str) -> Producer:
    """Idempotent: a retry never reorders a partition's logins."""
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})


def produce_logins(
    bootstrap: str, topic: str, logins: Iterable[Login], producer: Producer | None = None
) -> None:
    """Each login to its own partition, in order; flushed."""
    producer = producer or login_producer(bootstrap)
    for login in logins:
        while True:
            try:
                producer.produce(topic, login.payload(), partition=login.partition)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0, "not every test message was delivered"


def read_metric_events(
    consumer: Consumer,
    events: list[dict[str, Any]],
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float,
    what: str,
) -> None:
    deadline = time.monotonic() + timeout
    while not until(events):
        last = events[-2:]
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last events {last}"
        for message in consumer.consume(500, 0.3):
            assert message.error() is None, message.error()
            events.append(json.loads(message.value() or b"{}"))


def metric_reader(bootstrap: str, topic: str) -> Consumer:
    return topic_reader(bootstrap, topic)


def window_end_epoch(iso: str) -> int:
    """A metric event's ``window_end`` (UTC ISO-8601, no offset) as epoch seconds."""
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def newest_revisions(events: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Window end (epoch seconds) -> the event of its highest revision: what a consumer keeps."""
    newest: dict[int, dict[str, Any]] = {}
    for event in events:
        end = window_end_epoch(event["window_end"])
        if end not in newest or event["revision"] > newest[end]["revision"]:
            newest[end] = event
    return newest
