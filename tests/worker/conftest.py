"""Fixtures of the batch-loop tests: one fakeredis window and the clock the test moves."""

from __future__ import annotations

import fakeredis
import pytest
import redis

from tests.worker.fake_kafka import FakeClock


@pytest.fixture
def client() -> redis.Redis:
    return fakeredis.FakeRedis()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
