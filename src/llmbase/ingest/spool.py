"""The local durable spool: where records wait while the database is away or the queue is full.

One directory (`Settings.spool_dir()`) of segment files named ``<time ns>-<pid>-<n>.seg``
(so a name sort is oldest first). A segment is a header line then frames:

    <u32 little-endian payload length> <u32 crc32 of the payload> <payload: one record, JSON>

Each process appends to its own active segment, held with an exclusive `flock`; the
writer fsyncs once per appended batch. Any process may replay a segment it can lock, oldest
first, and deletes it once every record in it is stored; a crash in between replays it
again, which is harmless (inserts are idempotent). A frame cut short or failing its CRC (a
crash mid-write) ends the segment: the tail is ignored. The directory is bounded by
`max_bytes` (all segments); past it `append` refuses records and the writer counts them
as dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["Segment", "Spool"]

_log = logging.getLogger("llmbase.ingest")

HEADER = b"LLMBASE-SPOOL-1\n"
_FRAME = struct.Struct("<II")
_MAX_FRAME = 1 << 30


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Segment:
    """A segment this process has locked for replay."""

    def __init__(self, spool: Spool, path: Path, fd: int) -> None:
        self.spool = spool
        self.path = path
        self._fd = fd
        self.ignored_bytes = 0

    def chunks(self, size: int) -> Iterator[list[bytes]]:
        """The record payloads in order, `size` at a time (a bad or partial tail is ignored)."""
        with os.fdopen(os.dup(self._fd), "rb") as f:
            data = f.read()
        if not data.startswith(HEADER):
            self.ignored_bytes = len(data)
            return
        pos, end = len(HEADER), len(data)
        chunk: list[bytes] = []
        while pos + _FRAME.size <= end:
            length, crc = _FRAME.unpack_from(data, pos)
            start = pos + _FRAME.size
            if length > _MAX_FRAME or start + length > end:
                break
            payload = data[start : start + length]
            if zlib.crc32(payload) != crc:
                break
            chunk.append(payload)
            pos = start + length
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        self.ignored_bytes = end - pos
        if self.ignored_bytes:
            _log.warning("spool segment %s: ignored %d bytes of partial tail", self.path.name, end - pos)

    def delete(self) -> None:
        """Every record is stored: remove the segment."""
        try:
            size = os.fstat(self._fd).st_size
            self.path.unlink(missing_ok=True)
            _fsync_dir(self.path.parent)
            self.spool._forget(size)
        finally:
            self.release()

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # drops the flock
            self._fd = -1


class Spool:
    """Append records to disk, durably and boundedly; hand back segments for replay."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = 32 << 20) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0  # bytes in the active segment
        self._records = 0  # records in the active segment
        self._dirty = False
        self._total: int | None = None  # bytes of the directory's segments
        self._seq = 0
        self._foreign: dict[str, float] = {}  # segments locked by other processes, when seen

    def after_fork(self) -> None:
        """In a forked child: forget the parent's segment (its flock stays the parent's)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._reset()

    # -- appending ------------------------------------------------------------------------
    def _scan_total(self) -> int:
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for e in os.scandir(self.dir):
                if e.name.endswith(".seg") or e.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        total += e.stat().st_size
        return total

    def _open_new(self) -> None:
        self._close_active()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._seq += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}"
        tmp = self.dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, HEADER)
            os.fsync(fd)
            path = self.dir / f"{name}.seg"
            os.rename(tmp, path)  # locked before it is visible to replayers
            _fsync_dir(self.dir)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fd, self._path, self._size, self._records = fd, path, len(HEADER), 0
        if self._total is not None:
            self._total += len(HEADER)

    def append(self, payloads: Sequence[bytes], *, sync: bool) -> int:
        """Append record payloads; return how many fitted under `max_bytes` (a prefix)."""
        with self._lock:
            if self._total is None:
                self._total = self._scan_total()
            buf = bytearray()
            accepted = 0
            for p in payloads:
                frame_len = _FRAME.size + len(p)
                if self._total + len(HEADER) + len(buf) + frame_len > self.max_bytes:
                    break
                buf += _FRAME.pack(len(p), zlib.crc32(p))
                buf += p
                accepted += 1
            if buf:
                if self._fd is None or self._size >= self.segment_bytes:
                    self._open_new()
                self._write_all(bytes(buf))
                self._records += accepted
                self._total += len(buf)
                self._dirty = True
            if sync:
                self._sync_locked()
            return accepted

    def _write_all(self, data: bytes) -> None:
        assert self._fd is not None
        before = self._size
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError:
            # Never leave half a frame in front of later ones: cut back and start afresh.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            self._close_active()
            raise
        self._size += len(data)

    def sync(self) -> None:
        """fsync what was appended since the last sync."""
        with self._lock:
            self._sync_locked()

    def _sync_locked(self) -> None:
        if self._dirty and self._fd is not None:
            os.fsync(self._fd)
            self._dirty = False

    def _close_active(self) -> None:
        if self._fd is not None:
            try:
                if self._dirty:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd, self._path, self._dirty = None, None, False

    def seal(self) -> None:
        """Close the active segment so it can be replayed (an empty one is removed)."""
        with self._lock:
            path, records = self._path, self._records
            self._close_active()
            self._records = 0
            if path is not None and records == 0:
                with contextlib.suppress(OSError):
                    path.unlink()
                    self._forget(len(HEADER))

    def close(self) -> None:
        self.seal()

    # -- replay -------------------------------------------------------------------------------
    def pending(self) -> bool:
        """Records of this process waiting in the spool, or segments another process left."""
        if self._records:
            return True
        now = time.monotonic()
        try:
            names = [e.name for e in os.scandir(self.dir) if e.name.endswith(".seg")]
        except FileNotFoundError:
            return False
        active = self._path.name if self._path is not None else None
        return any(n != active and now - self._foreign.get(n, -1e9) > 2.0 for n in names)

    def claim(self) -> Iterator[Segment]:
        """Seal the active segment, then lock and yield segments oldest first (those another
        process holds are skipped)."""
        self.seal()
        with self._lock:
            self._total = self._scan_total()
        try:
            names = sorted(e.name for e in os.scandir(self.dir))
        except FileNotFoundError:
            return
        for name in names:
            path = self.dir / name
            stale_tmp = name.endswith(".tmp")
            if not name.endswith(".seg") and not stale_tmp:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._foreign[name] = time.monotonic()
                continue
            if not path.exists():  # replayed and deleted by another process meanwhile
                os.close(fd)
                continue
            self._foreign.pop(name, None)
            if stale_tmp:  # a crash between create and rename: holds at most the header
                size = os.fstat(fd).st_size
                path.unlink(missing_ok=True)
                self._forget(size)
                os.close(fd)
                continue
            yield Segment(self, path, fd)

    def _forget(self, size: int) -> None:
        with self._lock:
            if self._total is not None:
                self._total = max(0, self._total - size)

    def stats(self) -> dict[str, int]:
        """Bytes and segment files in the directory (every process's)."""
        count = 0
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for e in os.scandir(self.dir):
                if e.name.endswith(".seg"):
                    count += 1
                    with contextlib.suppress(OSError):
                        total += e.stat().st_size
        return {"spool_bytes": total, "spool_segments": count}
