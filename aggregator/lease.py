"""Leadership of the aggregators sharing a window: a Redis lease, and the per-window-end claim
that only the lease holder can make."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis

from loginmetrics.window import WindowLayout
from loginmetrics.window.scripts import load_lua

_RENEW = load_lua("loginmetrics.aggregator", "lease_renew.lua")
_RELEASE = load_lua("loginmetrics.aggregator", "lease_release.lua")
_CLAIM = load_lua("loginmetrics.aggregator", "claim_window_end.lua")
_CLAIM_REVISION = load_lua("loginmetrics.aggregator", "claim_revision.lua")


def new_token() -> str:
    """Names the holder for an operator reading the lease key: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class ClaimStatus(Enum):
    CLAIMED = "claimed"
    NOT_LEADER = "not_leader"
    ALREADY_EMITTED = "already_emitted"


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    # The last emitted window end before this claim (None: never), or the current holder's
    # token for NOT_LEADER (None: nobody holds the lease).
    previous: int | None = None
    holder: str | None = None


def _text(raw: Any) -> str | None:
    if raw is None or raw in (b"", ""):
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class AggregatorLease:
    """The lease one aggregator holds while it is the active one.

    Acquiring is ``SET NX PX``; renewing, releasing and claiming compare the stored token first
    (Lua), so an aggregator whose lease expired while it was paused can never act as leader.
    """

    def __init__(
        self,
        client: redis.Redis,
        layout: WindowLayout,
        lease_seconds: float,
        token: str | None = None,
    ) -> None:
        self._client = client
        self._key = layout.aggregator_lease_key
        self._last_emitted_key = layout.last_emitted_key
        self._ttl_ms = max(1, round(lease_seconds * 1000))
        self.token = token or new_token()
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._claim = client.register_script(_CLAIM)
        self._claim_revision = client.register_script(_CLAIM_REVISION)
        self._revisions_key = layout.revisions_key
        self._unconfirmed_key = layout.unconfirmed_key

    def acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        return bool(self._client.set(self._key, self.token, nx=True, px=self._ttl_ms))

    def renew(self) -> bool:
        """Extend the lease; False when it is no longer ours."""
        return int(self._renew(keys=[self._key], args=[self.token, self._ttl_ms])) == 1

    def release(self) -> bool:
        """Give the lease up at once so a standby need not wait for it to expire."""
        return int(self._release(keys=[self._key], args=[self.token])) == 1

    def holder(self) -> str | None:
        """Token of the aggregator holding the lease now, None when nobody does."""
        return _text(self._client.get(self._key))

    def last_emitted(self) -> int | None:
        raw = _text(self._client.get(self._last_emitted_key))
        return None if raw is None else int(raw)

    def claim(self, window_end: int, window_lengths: Sequence[int] = ()) -> Claim:
        """Claim the metric events of ``window_end`` (one per window length, each noted as
        unconfirmed until ``confirm``): granted once, and only to the holder."""
        unconfirmed = [f"{seconds}:{window_end}:0" for seconds in window_lengths]
        status, detail = self._claim(
            keys=[self._key, self._last_emitted_key, self._unconfirmed_key],
            args=[self.token, window_end, *unconfirmed],
        )
        text = _text(detail)
        code = int(status)
        if code == 0:
            return Claim(ClaimStatus.NOT_LEADER, holder=text)
        previous = None if text is None else int(text)
        if code == 1:
            return Claim(ClaimStatus.CLAIMED, previous=previous)
        return Claim(ClaimStatus.ALREADY_EMITTED, previous=previous)

    def claim_revision(self, window_seconds: int, window_end: int) -> Claim:
        """Claim the next revision of an emitted window: ``previous`` is the revision granted."""
        status, detail = self._claim_revision(
            keys=[self._key, self._revisions_key, self._unconfirmed_key],
            args=[self.token, f"{window_seconds}:{window_end}"],
        )
        if int(status) == 0:
            return Claim(ClaimStatus.NOT_LEADER, holder=_text(detail))
        return Claim(ClaimStatus.CLAIMED, previous=int(detail))

    def confirm(self, window_seconds: int, window_end: int, revision: int) -> None:
        """Kafka acknowledged this claim's metric event."""
        self._client.hdel(self._unconfirmed_key, f"{window_seconds}:{window_end}:{revision}")

    def unconfirmed(self) -> list[tuple[int, int, int]]:
        """(window seconds, end, revision) of the claims whose events Kafka never acknowledged
        to their leader: produced or not, the topic says."""
        found = []
        for raw in self._client.hkeys(self._unconfirmed_key):
            seconds, end, revision = (_text(raw) or "").split(":")
            found.append((int(seconds), int(end), int(revision)))
        return sorted(found, key=lambda claim: (claim[1], claim[0], claim[2]))


@dataclass(frozen=True, slots=True)
class LeaseState:
    """The lease as an operator sees it (``loginmetrics status``): read only, no token needed."""

    holder: str | None  # token of the leading aggregator (host:pid:random), None: nobody
    expires_in_seconds: float | None  # until the lease lapses unless renewed
    last_emitted: int | None  # end (epoch seconds) of the newest window emitted


def read_lease(client: redis.Redis, layout: WindowLayout) -> LeaseState:
    """The leader, its lease and the last window end emitted, in one round trip."""
    pipe = client.pipeline(transaction=True)
    pipe.get(layout.aggregator_lease_key)
    pipe.pttl(layout.aggregator_lease_key)
    pipe.get(layout.last_emitted_key)
    holder, ttl_ms, last = pipe.execute()
    emitted = _text(last)
    return LeaseState(
        holder=_text(holder),
        expires_in_seconds=int(ttl_ms) / 1000 if holder is not None and int(ttl_ms) >= 0 else None,
        last_emitted=None if emitted is None else int(emitted),
    )
