"""The sink interface: where the writer hands each batch (PostgreSQL today; a column store
such as ClickHouse can join later without touching the callers).

A sink applies one batch atomically and says how it went by returning a `BatchResult` or
raising one of three errors; the writer owns everything else (batching, retries with
backoff, bisecting a rejected batch, the spool, dead letters, stats):

- `SinkUnavailable`: the store cannot be reached (or is not ready); nothing was applied.
  The writer spools the batch and retries later with backoff.
- `SinkRetry`: a transient conflict (deadlock, serialization failure, lock timeout);
  nothing was applied. The writer retries the same batch shortly.
- `SinkRejected`: the store refused something in the batch; nothing was applied. The
  writer bisects the batch to find the records at fault and dead-letters them after
  `ingest_max_attempts` refusals, alone.

`write_batch` must be idempotent: a batch may be applied again after a crash or an
ambiguous commit (records carry client-generated ids).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..records import Record

__all__ = ["BatchResult", "Sink", "SinkRejected", "SinkRetry", "SinkUnavailable"]


class SinkUnavailable(Exception):
    """The store cannot be reached now; nothing of the batch was applied."""


class SinkRetry(Exception):
    """A transient conflict; nothing was applied; the same batch may simply be retried."""


class SinkRejected(Exception):
    """The store refused (part of) the batch; nothing was applied."""


@dataclass
class BatchResult:
    """What one applied batch did."""

    #: records applied (stored, or already there from an earlier attempt)
    written: int = 0
    #: request rows that were already stored (a replay): not counted twice anywhere
    duplicates: int = 0
    #: records refused on their own, with the reason, while the rest was applied
    rejected: list[tuple[Record, str]] = field(default_factory=list)


class Sink(ABC):
    """A destination for batches of records."""

    @abstractmethod
    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        """Apply `records` (any kinds, in order) atomically and idempotently."""

    @abstractmethod
    def dead_letter(self, records: Sequence[Record]) -> None:
        """Keep records that can never be applied, with their error and attempts."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (the sink may be used again afterwards: it reconnects)."""
