"""Login payloads for benchmarks, generated fast enough to preload a million messages or to
produce at a fixed rate; the same shapes and error mix as ``tests.streams.login_stream``."""

from __future__ import annotations

import random
from collections.abc import Iterator

from tests.streams import DEVICES, INVALID_PAYLOADS, LOCALES, VERSIONS

# The 70 KB too_large payload is left out by default: at 5 % invalid it would be 0.6 % of the
# messages but two thirds of the bytes, and turn a message-rate benchmark into a bandwidth one.
REALISTIC_INVALID = [(code, payload) for code, payload in INVALID_PAYLOADS if code != "too_large"]

_TEMPLATE = (
    '{"user_id": "%s", "app_version": "%s", "ip": "10.%d.%d.%d", "locale": "%s", '
    '"device_id": "%s", "timestamp": %d, "device_type": "%s"}'
)


def _uuid4(rng: random.Random) -> str:
    text = f"{rng.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:]}"


class LoginPayloads:
    """An endless stream of (key, value) login messages from a pool of ``users``.

    Every ``invalid_every``-th message is one of the unusable payloads of ``tests.streams``.
    With ``cover_users`` the pool is walked with a fixed stride instead of drawn at random, so
    any ``users`` consecutive valid messages hold every user exactly once.
    """

    def __init__(
        self,
        users: int,
        invalid_every: int = 20,
        seed: int = 7,
        *,
        cover_users: bool = False,
        with_too_large: bool = False,
    ) -> None:
        self._rng = random.Random(seed)
        self._pool = [_uuid4(self._rng) for _ in range(users)]
        self._invalid = INVALID_PAYLOADS if with_too_large else REALISTIC_INVALID
        self._invalid_every = invalid_every
        self._cover = cover_users
        # A stride coprime with the pool size visits every user once per lap.
        self._stride = next(s for s in range(7919, 7919 + users + 1) if _coprime(s, users))
        self.sent = 0
        self.valid = 0
        self.invalid = 0

    def __iter__(self) -> Iterator[tuple[bytes, bytes | None]]:
        return self

    def __next__(self) -> tuple[bytes, bytes | None]:
        return self.next_message()

    def next_message(self, locale: str | None = None) -> tuple[bytes, bytes | None]:
        """The next message; ``locale`` forces a valid one with that locale (a marker)."""
        n = self.sent
        self.sent += 1
        every = self._invalid_every
        if locale is None and every and n % every == every - 1:
            self.invalid += 1
            _code, payload = self._invalid[(n // every) % len(self._invalid)]
            return b"bad-%d" % n, payload
        rng = self._rng
        pool = self._pool
        user = pool[(self.valid * self._stride) % len(pool)] if self._cover else rng.choice(pool)
        self.valid += 1
        bits = rng.getrandbits(24)
        value = _TEMPLATE % (
            user,
            rng.choice(VERSIONS),
            bits & 3,
            (bits >> 2) & 255,
            (bits >> 10) & 255,
            locale or rng.choice(LOCALES),
            _uuid4(rng),
            1_736_653_976 + n,
            rng.choice(DEVICES),
        )
        return user.encode(), value.encode()


def _coprime(a: int, b: int) -> bool:
    while b:
        a, b = b, a % b
    return a == 1
