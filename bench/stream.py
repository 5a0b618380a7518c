"""The benchmarks' login traffic: ``LoginTraffic`` with the varied mix (several versions, locales
and device types), a pool of users and every ``invalid_every``-th message invalid, each kind in
turn; the tests' known streams, less their tombstones and 70 KB messages."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from loginmetrics.cli.traffic import VARIED, LoginTraffic

_encode = msgspec.json.Encoder().encode


class LoginPayloads:
    """An endless stream of (key, value) login messages from a pool of ``users``, counting the
    valid and invalid ones it made (known from the plan, not by validating them).

    With ``cover_users`` the pool is walked with a fixed stride instead of drawn at random, so
    any ``users`` consecutive valid messages hold every user exactly once.
    """

    def __init__(
        self, users: int, invalid_every: int = 20, seed: int = 7, *, cover_users: bool = False
    ) -> None:
        self._traffic = LoginTraffic(
            seed, users, mix=VARIED, invalid_every=invalid_every, cover_users=cover_users
        )
        self.sent = 0
        self.valid = 0
        self.invalid = 0

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return self

    def __next__(self) -> tuple[bytes, bytes]:
        return self.next_message()

    def next_message(self, locale: str | None = None) -> tuple[bytes, bytes]:
        """The next message; ``locale`` makes it a valid one with that locale (a marker), out
        of the stream's turn of invalid messages."""
        self.sent += 1
        if locale is not None:
            event = self._traffic.login_event()  # the varied mix leaves no field out
            event["locale"] = locale
            self.valid += 1
            return event["user_id"].encode(), _encode(event)
        planned = self._traffic.next_planned()
        if planned.code is None:
            self.valid += 1
        else:
            self.invalid += 1
        assert planned.key is not None
        assert planned.value is not None
        return planned.key, planned.value
