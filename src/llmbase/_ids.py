"""Client-generated, time-ordered ids (UUIDv7, RFC 9562), so replays and retries are idempotent:
48-bit Unix milliseconds, a 12-bit counter keeping ids monotonic within a process and
millisecond, 62 random bits. Cheap enough for the logging hot path: it never releases the GIL.

Why: `os.urandom` is a system call that releases the GIL; while the writer thread is busy,
the calling thread may then wait up to the interpreter's switch interval (5 ms) to get it
back, inside `log()`. Here random bytes come from a buffer refilled from os.urandom once
per 512 ids, and the UUID object is built without UUID.__init__'s checks. The buffer is
discarded in a forked child (parent and child must never share random bits).
"""

from __future__ import annotations

import os
import threading
import time
from uuid import UUID, SafeUUID

__all__ = ["uuid7"]

_BATCH = 512
_lock = threading.Lock()
_buf = b""
_pos = 0
_last_ms = 0
_last_seq = 0
_MASK62 = (1 << 62) - 1
_MASK48 = (1 << 48) - 1
_VERSION_VARIANT = 0x7 << 76 | 0b10 << 62
_new = object.__new__
_set = object.__setattr__
_unknown = SafeUUID.unknown


def uuid7() -> UUID:
    """A new UUIDv7 (see the module docstring)."""
    global _buf, _pos, _last_ms, _last_seq
    ms = time.time_ns() // 1_000_000
    with _lock:
        if _pos >= len(_buf):
            _buf = os.urandom(10 * _BATCH)  # the only system call: once per 512 ids
            _pos = 0
        chunk = _buf[_pos : _pos + 10]
        _pos += 10
        if ms <= _last_ms:
            ms = _last_ms
            _last_seq += 1
            if _last_seq > 0xFFF:  # counter exhausted: borrow the next millisecond
                ms += 1
                _last_seq = 0
        else:
            _last_seq = int.from_bytes(chunk[8:10], "big") & 0x3FF  # leave headroom
        _last_ms = ms
        seq = _last_seq
    rand = int.from_bytes(chunk[:8], "big") & _MASK62
    u = _new(UUID)
    _set(u, "int", (ms & _MASK48) << 80 | _VERSION_VARIANT | seq << 64 | rand)
    _set(u, "is_safe", _unknown)
    return u


def _after_fork() -> None:
    global _lock, _buf, _pos
    _lock = threading.Lock()
    _buf = b""
    _pos = 0


os.register_at_fork(after_in_child=_after_fork)
