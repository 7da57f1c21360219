"""Client-generated, time-ordered ids (UUIDv7, RFC 9562), so replays and retries are idempotent:
48-bit Unix milliseconds, 12 bits of sub-millisecond time (RFC 9562 method 3: about 0.24 us
resolution, so the id carries its own creation time), 62 random bits. Cheap enough for the
logging hot path: no lock and no system call per id.

Why: `os.urandom` is a system call that releases the GIL; while the writer thread is busy,
the calling thread may then wait up to the interpreter's switch interval (5 ms) to get it
back, inside `log()`. Here random numbers come from a list refilled from os.urandom once
per 1,024 ids and handed out by a list iterator (`next()` on it is atomic under the GIL,
so no two ids share random bits), and the UUID object is built without UUID.__init__'s
checks. The list is discarded in a forked child (parent and child must never share random
bits).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, SafeUUID

__all__ = ["uuid7", "uuid7_time"]

_BATCH = 1024
_MASK62 = (1 << 62) - 1
_VERSION_VARIANT = 0x7 << 76 | 0b10 << 62
_SUB = 4096  # sub-millisecond steps in 12 bits
_new = object.__new__
_set = object.__setattr__
_unknown = SafeUUID.unknown
_time_ns = time.time_ns
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _refill() -> Iterator[int]:
    buf = os.urandom(8 * _BATCH)  # the only system call: once per 1,024 ids
    return iter([int.from_bytes(buf[i : i + 8], "big") & _MASK62 for i in range(0, len(buf), 8)])


_rand: Iterator[int] = iter(())


def uuid7() -> UUID:
    """A new UUIDv7 (see the module docstring)."""
    global _rand
    ns = _time_ns()
    try:
        r = next(_rand)
    except StopIteration:
        _rand = _refill()  # two threads may both refill: each value is still handed out once
        r = next(_rand)
    ms, sub = divmod(ns, 1_000_000)
    u = _new(UUID)
    _set(u, "int", ms << 80 | _VERSION_VARIANT | (sub * _SUB // 1_000_000) << 64 | r)
    _set(u, "is_safe", _unknown)
    return u


def uuid7_time(u: UUID) -> datetime | None:
    """The creation time a UUIDv7 from `uuid7()` carries, rounded down to the microsecond
    (within 1 us of the clock reading); None for any other UUID version."""
    if u.version != 7:
        return None
    n = u.int
    ms = n >> 80
    sub = (n >> 64) & 0xFFF
    us = ms * 1000 + sub * 1_000_000 // _SUB // 1000
    return _EPOCH + timedelta(microseconds=us)


def _after_fork() -> None:
    global _rand
    _rand = iter(())


os.register_at_fork(after_in_child=_after_fork)
