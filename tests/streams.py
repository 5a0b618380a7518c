"""Known login streams for tests and benchmarks: the payloads and the window they must produce."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

DEVICES = ("android", "iOS", "web")
VERSIONS = ("2.3.0", "2.4.1", "3.0.0")
LOCALES = ("TX", "OH", "CA", "NY", "LA", "WA", "FL")

# One payload per error code, so a stream exercises every way a message can be unusable.
INVALID_PAYLOADS: list[tuple[str, bytes | None]] = [
    ("invalid_encoding", b"\xff\xfe not utf-8"),
    ("invalid_json", b'{"user_id": "x", '),
    ("not_an_object", b"[1, 2, 3]"),
    ("not_an_object", None),  # tombstone
    ("missing_fields", b'{"user_id": "u", "timestamp": 1}'),
    (
        "wrong_type",
        b'{"user_id": "u", "app_version": "1", "ip": "1.1.1.1", "locale": "TX",'
        b' "device_type": "iOS", "timestamp": "yesterday"}',
    ),
    (
        "empty_value",
        b'{"user_id": "", "app_version": "1", "ip": "1.1.1.1", "locale": "TX",'
        b' "device_type": "iOS", "timestamp": 1}',
    ),
    ("too_large", b'{"pad": "' + b"x" * 70_000 + b'"}'),
]


@dataclass
class GroundTruth:
    valid: int = 0
    invalid: int = 0
    users: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    devices: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    locales: Counter[str] = field(default_factory=Counter)
    invalid_codes: Counter[str] = field(default_factory=Counter)


@dataclass
class LoginStream:
    """``messages`` as (key, value) pairs and the ``truth`` they add up to."""

    messages: list[tuple[bytes, bytes | None]]
    truth: GroundTruth


def random_login(rng: random.Random, pool: list[str], n: int) -> dict[str, Any]:
    """The ``n``-th login event of a stream: a user of ``pool`` and the rest drawn from ``rng``."""
    return {
        "user_id": rng.choice(pool),
        "app_version": rng.choice(VERSIONS),
        "ip": f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "locale": rng.choice(LOCALES),
        "device_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": 1_736_653_976 + n,
        "device_type": rng.choice(DEVICES),
    }


def login_stream(count: int, users: int, invalid_every: int = 20, seed: int = 7) -> LoginStream:
    """``count`` messages from a pool of ``users``; every ``invalid_every``-th is unusable."""
    rng = random.Random(seed)
    pool = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(users)]
    truth = GroundTruth()
    messages: list[tuple[bytes, bytes | None]] = []
    for n in range(count):
        if invalid_every and n % invalid_every == invalid_every - 1:
            code, payload = INVALID_PAYLOADS[(n // invalid_every) % len(INVALID_PAYLOADS)]
            messages.append((f"bad-{n}".encode(), payload))
            truth.invalid += 1
            truth.invalid_codes[code] += 1
            continue
        event = random_login(rng, pool, n)
        user = event["user_id"]
        messages.append((user.encode(), json.dumps(event).encode()))
        truth.valid += 1
        truth.users.add(user)
        truth.ips.add(event["ip"])
        truth.devices[event["device_type"]] += 1
        truth.versions[event["app_version"]] += 1
        truth.locales[event["locale"]] += 1
    return LoginStream(messages, truth)
