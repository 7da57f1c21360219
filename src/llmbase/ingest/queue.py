"""The bounded in-memory queue between `log()` and the background writer.

`put` is what the hot path pays: a length check and a `deque.append` (atomic under the
GIL, no lock). The writer takes items in FIFO order; a flush request is a `Marker` queued
behind the records it waits for, so `flush()` never waits for records logged after it.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any
from uuid import UUID

__all__ = ["BoundedQueue", "Item", "Marker"]

#: (kind, tenant id or slug, payload as logged)
Item = tuple[str, UUID | str, dict[str, Any]]


class Marker:
    """A flush request: set once every record queued before it is stored (or dead-lettered)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)

    @property
    def done(self) -> bool:
        return self._event.is_set()


class BoundedQueue:
    """FIFO of items bounded by count; wakes the writer once a batch is waiting."""

    __slots__ = ("_dq", "maxsize", "wake", "wake_at")

    def __init__(self, maxsize: int, wake_at: int) -> None:
        self._dq: deque[Item | Marker] = deque()
        self.maxsize = maxsize
        self.wake_at = wake_at
        self.wake = threading.Event()

    def put(self, item: Item) -> bool:
        """Queue `item`; False (nothing queued) when the queue is full."""
        dq = self._dq
        n = len(dq)
        if n >= self.maxsize:
            return False
        dq.append(item)
        if n + 1 >= self.wake_at and not self.wake.is_set():
            self.wake.set()
        return True

    def put_marker(self, marker: Marker) -> None:
        """Queue a flush request (never refused: it holds no record)."""
        self._dq.append(marker)
        self.wake.set()

    def take(self, n: int) -> tuple[list[Item], list[Marker]]:
        """Up to `n` items in FIFO order, stopping after the first marker met."""
        items: list[Item] = []
        markers: list[Marker] = []
        dq = self._dq
        while len(items) < n:
            try:
                x = dq.popleft()
            except IndexError:
                break
            if isinstance(x, Marker):
                markers.append(x)
                break
            items.append(x)
        return items, markers

    def __len__(self) -> int:
        return len(self._dq)
