"""OwnedPartitions' event-time moves: a held partition waits, paused, until the windows reach it."""

from __future__ import annotations

from loginmetrics.worker.owned_partitions import OwnedPartitions, Phase


def consuming(*partitions: int) -> OwnedPartitions:
    owned = OwnedPartitions()
    owned.assign(partitions)
    for partition in partitions:
        owned.place(partition, 9, 10, watermark=100.0)
        owned.sought(partition)
    return owned


def test_a_held_partition_is_paused_at_its_message_until_the_reach_passes_it() -> None:
    owned = consuming(0, 1)

    owned.hold(0, 42, event_time=500.0)

    assert owned.phase(0) is Phase.HELD
    assert owned.unsettled() == {0}
    assert 0 not in owned.consuming()
    assert owned.release(499.0) == []
    assert owned.release(500.0) == [0]
    assert owned.seeks() == {0: 42}
    owned.sought(0)
    assert owned.phase(0) is Phase.CONSUMING
    assert owned.watermarks() == {0: 100.0, 1: 100.0}


def test_nothing_emitted_yet_releases_every_held_partition() -> None:
    owned = consuming(0)
    owned.hold(0, 42, event_time=500.0)

    assert owned.release(None) == [0]


def test_a_partition_being_moved_is_not_held() -> None:
    owned = consuming(0)
    owned.put_back(0, 12)

    owned.hold(0, 42, event_time=500.0)

    assert owned.seeks() == {0: 12}
