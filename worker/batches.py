"""A folded batch waiting to be applied, and the tally of the batches a worker applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from loginmetrics.window import PartitionAdvance
from loginmetrics.worker.fold import FoldedBatch, RejectedRecord


@dataclass(slots=True)
class WorkerStats:
    messages: int = 0
    valid: int = 0
    invalid: int = 0
    batches: int = 0
    refused_batches: int = 0

    def add(self, valid: int, invalid: int) -> None:
        """One more batch applied."""
        self.batches += 1
        self.messages += valid + invalid
        self.valid += valid
        self.invalid += invalid


@dataclass(slots=True)
class PendingBatch:
    """A folded batch not applied yet. Its expected offsets were taken when it was folded: a
    rebalance during a retry must not change them (the compare-and-set judges them)."""

    folded: FoldedBatch
    advances: list[PartitionAdvance]
    undelivered: list[RejectedRecord]  # dead letters not confirmed by the broker yet
    processed_at: datetime

    @classmethod
    def of(
        cls,
        folded: FoldedBatch,
        applied: Mapping[int, int | None],
        undelivered: list[RejectedRecord],
    ) -> PendingBatch:
        """``folded`` on top of ``applied``: each partition advances from there to its last."""
        advances = [
            PartitionAdvance(partition, applied[partition], last)
            for partition, last in folded.last_offsets.items()
        ]
        return cls(folded, advances, undelivered, datetime.now(UTC))
