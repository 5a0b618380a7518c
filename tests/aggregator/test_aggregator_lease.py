"""The leadership lease and the per-window-end claim, against fakeredis (with Lua)."""

from __future__ import annotations

import os
import time

import fakeredis

from loginmetrics.aggregator.lease import AggregatorLease, ClaimStatus
from loginmetrics.window import WindowLayout

LAYOUT = WindowLayout(prefix="lease-test", window_seconds=60)


def lease(client: fakeredis.FakeRedis, token: str, seconds: float = 15.0) -> AggregatorLease:
    return AggregatorLease(client, LAYOUT, seconds, token=token)


def test_only_one_aggregator_acquires_the_lease(fake_redis: fakeredis.FakeRedis) -> None:
    first, second = lease(fake_redis, "a"), lease(fake_redis, "b")

    assert first.acquire()
    assert not second.acquire()
    assert second.holder() == "a"
    assert 0 < fake_redis.pttl(LAYOUT.aggregator_lease_key) <= 15_000


def test_the_holder_renews_and_a_standby_cannot(fake_redis: fakeredis.FakeRedis) -> None:
    first, second = lease(fake_redis, "a"), lease(fake_redis, "b")
    first.acquire()
    fake_redis.pexpire(LAYOUT.aggregator_lease_key, 100)

    assert first.renew()
    assert fake_redis.pttl(LAYOUT.aggregator_lease_key) > 10_000
    assert not second.renew()
    assert first.holder() == "a"


def test_an_expired_lease_is_lost_and_taken_over(fake_redis: fakeredis.FakeRedis) -> None:
    first, second = lease(fake_redis, "a", seconds=0.05), lease(fake_redis, "b")
    assert first.acquire()

    time.sleep(0.1)

    assert second.acquire()
    assert not first.renew()
    assert first.holder() == "b"


def test_release_deletes_only_the_callers_own_lease(fake_redis: fakeredis.FakeRedis) -> None:
    first, second = lease(fake_redis, "a"), lease(fake_redis, "b")
    first.acquire()

    assert not second.release()
    assert first.holder() == "a"
    assert first.release()
    assert first.holder() is None
    assert not first.release()
    assert second.acquire()


def test_each_window_end_is_claimed_once(fake_redis: fakeredis.FakeRedis) -> None:
    holder = lease(fake_redis, "a")
    holder.acquire()

    first = holder.claim(1000)
    again = holder.claim(1000)
    older = holder.claim(990)
    newer = holder.claim(1010)

    assert first.status is ClaimStatus.CLAIMED
    assert first.previous is None
    assert again.status is ClaimStatus.ALREADY_EMITTED
    assert older.status is ClaimStatus.ALREADY_EMITTED
    assert newer.status is ClaimStatus.CLAIMED
    assert newer.previous == 1000
    assert holder.last_emitted() == 1010


def test_only_the_lease_holder_claims(fake_redis: fakeredis.FakeRedis) -> None:
    leader, standby = lease(fake_redis, "a"), lease(fake_redis, "b")

    nobody = standby.claim(1000)
    leader.acquire()
    refused = standby.claim(1000)

    assert nobody.status is ClaimStatus.NOT_LEADER
    assert nobody.holder is None
    assert refused.status is ClaimStatus.NOT_LEADER
    assert refused.holder == "a"
    assert leader.last_emitted() is None


def test_a_successor_does_not_emit_what_its_predecessor_claimed(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    old, new = lease(fake_redis, "a"), lease(fake_redis, "b")
    old.acquire()
    assert old.claim(1000).status is ClaimStatus.CLAIMED
    old.release()
    new.acquire()

    assert new.claim(1000).status is ClaimStatus.ALREADY_EMITTED
    assert new.claim(1010).status is ClaimStatus.CLAIMED
    # the old leader, paused past its lease, wakes up: it can claim nothing
    assert old.claim(1020).status is ClaimStatus.NOT_LEADER


def test_last_emitted_never_expires(fake_redis: fakeredis.FakeRedis) -> None:
    holder = lease(fake_redis, "a")
    holder.acquire()
    holder.claim(1000)

    assert fake_redis.ttl(LAYOUT.last_emitted_key) == -1


def test_default_token_names_host_and_process(fake_redis: fakeredis.FakeRedis) -> None:
    token = AggregatorLease(fake_redis, LAYOUT, 15.0).token

    assert f":{os.getpid()}:" in token
