"""The applied offsets belong to one incarnation of the input topic, and a partition whose log
no longer holds them can be moved back, each a compare-and-set like the batch apply."""

from __future__ import annotations

from collections.abc import Callable

import fakeredis
import pytest

from loginmetrics.window import NewIncarnation, WindowLayout, WindowWriter

LAYOUT = WindowLayout(prefix="t")
TOPIC = "user-login"


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def writer(client: fakeredis.FakeRedis) -> WindowWriter:
    return WindowWriter(client, LAYOUT, TOPIC)


@pytest.fixture
def store(client: fakeredis.FakeRedis) -> Callable[[dict[int, int]], None]:
    def write(offsets: dict[int, int]) -> None:
        for partition, offset in offsets.items():
            client.hset(LAYOUT.applied_offsets_key(TOPIC), str(partition), str(offset))

    return write


def test_the_first_topic_id_is_recorded_and_the_offsets_kept(
    writer: WindowWriter, store: Callable[[dict[int, int]], None]
) -> None:
    store({0: 1000})
    assert writer.adopt_topic("id-1") is None
    assert writer.adopt_topic("id-1") is None
    assert writer.applied_offsets([0]) == {0: 1000}


def test_a_new_topic_id_drops_the_old_offsets_and_says_which(
    writer: WindowWriter, store: Callable[[dict[int, int]], None]
) -> None:
    writer.adopt_topic("id-1")
    store({0: 1000, 3: 7})
    assert writer.adopt_topic("id-2") == NewIncarnation("id-1", {0: 1000, 3: 7})
    assert writer.applied_offsets([0, 3]) == {0: None, 3: None}
    assert writer.adopt_topic("id-2") is None  # adopted once


def test_a_partition_moves_back_only_from_the_offset_read(
    writer: WindowWriter, store: Callable[[dict[int, int]], None]
) -> None:
    store({0: 5000, 1: 10})
    assert not writer.restart_partition(0, expected=4999, last=999)
    assert writer.restart_partition(0, expected=5000, last=999)
    assert writer.restart_partition(1, expected=10, last=None)
    assert writer.applied_offsets([0, 1]) == {0: 999, 1: None}
