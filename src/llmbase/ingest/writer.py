"""The background writer: queue -> batches -> sink, with the spool, retries and dead letters.

One writer per `Database` (per process). `put` is the hot path (see queue.py). The writer
thread wakes when a batch is waiting or every `ingest_flush_interval`, and per cycle:

1. the database is known to be down (backoff running): move the queue to the spool;
2. replay the spool, oldest segment first (when the database is reachable again);
3. retry records refused earlier whose backoff has passed;
4. cut the queue into batches of `ingest_batch_size` and hand each to the sink. Records are
   redacted and normalised lazily (records.Record): the sink does it 32 at a time inside
   its COPY (Record.prefetch, Normaliser.requests), while the server stores the rows before
   (one thread, no GIL ping-pong), and asks the writer to normalise the next queued records
   while the server ends a COPY (`_prefetch`). The sink is unavailable: spool the batch,
   back off (0.25 s doubling to 10 s). It rejects the batch: bisect it to find the records
   at fault; such a record is retried alone with backoff and goes to
   llmbase.ingest_dead_letters after `ingest_max_attempts` refusals.

`flush()` queues a marker and waits until every record before it is stored (or dead-
lettered) and nothing of this process waits in the spool. `close()` flushes, stops the
thread and spools whatever is left. After fork the child starts with an empty queue and a
new thread and connection (the parent's pending records stay the parent's); at exit (and
at a multiprocessing child's exit) every writer is closed.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from ..config import Settings
from .queue import BoundedQueue, Item, Marker
from .records import KIND_ORDER, Normaliser, Record, decode, encode
from .sinks.base import Sink, SinkRejected, SinkRetry, SinkUnavailable
from .spool import Spool

__all__ = ["Writer"]

_log = logging.getLogger("llmbase.ingest")

#: Fields dropped from a record whose redaction hook failed (metrics are kept).
_SENSITIVE = ("request_body", "response_body", "metadata", "error_message", "error", "tags")
_MAX_BACKOFF = 10.0


class Writer:
    """The write path of one database: queue, background thread, sink, spool."""

    def __init__(self, settings: Settings, url: Callable[[], str], sink: Sink | None = None) -> None:
        self.settings = settings
        self._url = url
        self._sink_given = sink
        self._normalise = Normaliser(
            body_max_bytes=settings.ingest_body_max_bytes,
            metadata_max_bytes=settings.max_metadata_bytes,
            scrub=settings.redact_secrets,
        )
        self._preparer = _Preparer(self)
        self._init()
        _WRITERS.add(self)
        try:
            if self._spool.pending():  # a previous run left records: replay them now
                self._ensure_thread()
        except OSError:
            _log.warning("cannot read the spool directory %s", self._spool.dir, exc_info=True)

    def _init(self) -> None:
        s = self.settings
        self.queue = BoundedQueue(s.ingest_queue_max, s.ingest_batch_size)
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._stopping = False
        self._retry: deque[tuple[float, Record]] = deque()
        # Requests normalised ahead of their turn (_prefetch), by id of their payload, and how
        # many queue entries (from its head) were looked at for that.
        self._ahead: dict[int, tuple[dict[str, Any], Record]] = {}
        self._ahead_seen = 0
        self._waiters: list[Marker] = []
        self._sink: Sink | None = self._sink_given
        self._spool = Spool(s.spool_dir(), s.ingest_spool_max_bytes)
        self._down_until = 0.0
        self._backoff = 0.0
        self._available = True
        self.counters = dict.fromkeys(
            (
                "written",
                "duplicates",
                "spooled",
                "replayed",
                "dropped",
                "dead_lettered",
                "retried",
                "errors",
                "batches",
            ),
            0,
        )
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    # -- the hot path ---------------------------------------------------------------------------
    def put(self, kind: str, tenant: Any, payload: dict[str, Any]) -> None:
        """Queue one record (never blocks on the database; never raises)."""
        next(self._count)
        q = self.queue
        if self._closed or not q.put((kind, tenant, payload)):
            self._overflow((kind, tenant, payload))
        elif self._thread is None:
            self._ensure_thread()

    def _overflow(self, item: Item) -> None:
        """Queue full (or writer closed): the caller writes the record to the spool itself."""
        recs = self._prepare([item])
        self._spool_records(recs, sync=self._closed)
        if self._closed:
            self._spool.seal()  # closed: leave it to the next writer (any process) to replay
        else:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="llmbase-writer", daemon=True)
            self._thread.start()
        _register_exit_hooks()

    # -- public controls ------------------------------------------------------------------------
    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every record queued so far is stored in the database (or dead-lettered);
        False on timeout (they stay queued or spooled, nothing is lost)."""
        try:
            if self._closed:
                return not self._spool.pending()
            self._ensure_thread()
            m = Marker()
            self.queue.put_marker(m)
            return m.wait(timeout)
        except Exception as exc:
            self._error(exc, "flush failed")
            return False

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to `timeout`), stop the thread, spool what is left. Later records go
        straight to the spool (replayed by the next writer). True when all was stored."""
        timeout = self.settings.ingest_close_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return True
            thread = self._thread
        if not self._available:
            ok = False  # the database is away: do not wait for it, spool what is left
        else:
            ok = self.flush(timeout) if thread is not None or len(self.queue) else True
        with self._lock:
            self._closed = True
            self._stopping = True
            thread = self._thread
        self.queue.wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.5, deadline - time.monotonic()))
            if thread.is_alive():
                _log.warning(
                    "llmbase writer still busy after %.1f s; it keeps going in the background", timeout
                )
                return False
        else:
            self._shutdown()
        return ok and not self.counters["dropped"]

    def stats(self) -> dict[str, Any]:
        """Counters since this writer started (per process); see docs/ingest.md."""
        out: dict[str, Any] = {"enqueued": int(repr(self._count)[6:-1]) - 1}
        out.update(self.counters)
        out["queue_depth"] = len(self.queue)
        out["retry_depth"] = len(self._retry)
        try:
            out.update(self._spool.stats())
        except OSError:
            out.update(spool_bytes=None, spool_segments=None)
        out["db_available"] = self._available
        out["last_error"] = self.last_error
        out["last_error_at"] = self.last_error_at
        return out

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        interval = self.settings.ingest_flush_interval
        while True:
            self.queue.wake.wait(interval)
            self.queue.wake.clear()
            stopping = self._stopping
            try:
                self._cycle()
            except Exception as exc:  # the writer must never die
                self._error(exc, "writer cycle failed")
                time.sleep(0.1)
            if stopping:
                break
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._to_spool(include_retry=True)
            self._spool.close()
        except Exception as exc:
            self._error(exc, "spooling at shutdown failed")
        if self._sink is not None:
            try:
                self._sink.close()
            except Exception as exc:
                self._error(exc, "closing the sink failed")

    def _cycle(self) -> None:
        if time.monotonic() < self._down_until:
            self._to_spool()
            return
        if self._spool.pending() and not self._replay():
            self._to_spool()
            return
        self._retry_due()
        batch = self.settings.ingest_batch_size
        rounds = len(self.queue) // batch + 1  # then yield to replay and retries again
        for _ in range(rounds):
            items, markers = self._take(batch)
            if items and not self._write([self._lazy(item) for item in items]):
                self._waiters.extend(markers)  # they wait for the spool to be replayed
                self._to_spool()
                return
            self._waiters.extend(markers)
            if not items and not markers:
                break
        self._settle()
        self._spool.sync()

    def _settle(self) -> None:
        """Release flush() waiters once nothing of theirs is queued, retried or spooled."""
        if self._waiters and not self._retry and not self._spool.pending():
            for m in self._waiters:
                m.set()
            self._waiters.clear()

    # -- preparing -----------------------------------------------------------------------------
    def _prepare(self, items: Sequence[Item]) -> list[Record]:
        """Redact and normalise now (for the spool)."""
        return [self._prepare_one(*item) for item in items]

    def _take(self, n: int) -> tuple[list[Item], list[Marker]]:
        items, markers = self.queue.take(n)
        self._ahead_seen = max(0, self._ahead_seen - len(items) - len(markers))
        return items, markers

    def _lazy(self, item: Item) -> Record:
        """The record of a queue item: normalised already (_prefetch), or lazily."""
        if self._ahead:
            made = self._ahead.pop(id(item[2]), None)
            if made is not None and made[0] is item[2]:
                return made[1]
        return Record.lazy(*item, self._preparer)

    def _prefetch(self) -> bool:
        """Normalise the next queued requests (32) ahead of their turn: the sink calls this
        while the server stores the last rows of a batch, time the writer would otherwise
        wait. False when there is nothing (more) to do now. Never raises."""
        try:
            dq = self.queue._dq  # read by index only: other threads may append meanwhile
            end = min(len(dq), self._ahead_seen + 64)
            if len(self._ahead) >= self.settings.ingest_batch_size or self._ahead_seen >= end:
                return False
            todo: list[tuple[Any, dict[str, Any]]] = []
            while self._ahead_seen < end and len(todo) < 32:
                item = dq[self._ahead_seen]
                self._ahead_seen += 1
                if not isinstance(item, Marker) and item[0] == "request":
                    todo.append((item[1], item[2]))
            for (_, payload), rec in zip(todo, self._prepare_requests(todo), strict=True):
                self._ahead[id(payload)] = (payload, rec)
            return True
        except Exception:  # the records take their turn as usual
            _log.debug("normalising ahead failed", exc_info=True)
            return False

    def _prepare_one(self, kind: str, tenant: Any, payload: dict[str, Any]) -> Record:
        """Redact (your hook, then the built-in scrubber) and normalise one record. Never
        raises: a failing hook costs the record its bodies, metadata and messages."""
        if self._ahead:
            made = self._ahead.pop(id(payload), None)
            if made is not None and made[0] is payload:
                return made[1]
        hook = self.settings.redact
        failure = "Exception"
        try:
            if hook is None and kind == "request":
                return self._normalise.request(tenant, payload)
            p = payload
            if hook is not None:
                p = dict(payload)
                changed = hook(kind, p)
                if changed is not None:
                    p = changed
            return self._normalise(kind, tenant, p)
        except Exception as exc:
            self._error(exc, f"redacting or normalising a {kind} record failed; its bodies are dropped")
            failure = type(exc).__name__
        try:
            bare = {k: v for k, v in payload.items() if k not in _SENSITIVE}
            bare["metadata"] = {"_llmbase": {"redaction_failed": failure}}
            return self._normalise(kind, tenant, bare)
        except Exception as exc2:
            self._error(exc2, "a record could not be normalised; it is dead-lettered")
            rec = Record(
                kind, tenant, {"id": payload.get("id")} if isinstance(payload.get("id"), UUID) else {}
            )
            rec.invalid = f"could not be normalised: {type(exc2).__name__}"
            return rec

    def _prepare_requests(self, items: list[tuple[Any, dict[str, Any]]]) -> list[Record]:
        """`_prepare_one` for several requests: at once, unless there is a hook (it sees each
        record alone) or something fails (then one by one, so only that record pays)."""
        if self.settings.redact is None:
            try:
                return self._normalise.requests(items)
            except Exception:  # one by one, below: the record at fault is handled alone
                _log.debug("normalising requests together failed; one by one", exc_info=True)
        return [self._prepare_one("request", tenant, payload) for tenant, payload in items]

    # -- writing -------------------------------------------------------------------------------
    def _get_sink(self) -> Sink:
        if self._sink is None:
            from .sinks.postgres import PostgresSink

            self._sink = PostgresSink(self._url, idle=self._prefetch)
        return self._sink

    def _write(self, records: list[Record], *, replay: bool = False) -> bool:
        """Store records (any kinds); False when the database is unavailable (then, unless
        replaying from the spool, they are spooled)."""
        if all(r.kind == "request" for r in records):  # the common batch: nothing to sort out
            return self._apply(records, replay) if records else True
        # Requests are never invalid (the rule repairs them): do not normalise them here.
        dead = [r for r in records if r.kind != "request" and r.invalid is not None]
        if dead:
            records = [r for r in records if r.invalid is None]
            for r in dead:
                r.attempts = max(r.attempts, 1)
                r.error = r.invalid
                r.first_failed_at = r.first_failed_at or datetime.now(UTC)
            if not self._dead_letter(dead, replay=replay):
                if not replay:
                    self._spool_records(records, sync=True)
                return False
        if not records:
            return True
        records.sort(key=lambda r: KIND_ORDER.get(r.kind, 9))  # stable: FIFO within a kind
        return self._apply(records, replay)

    def _apply(self, records: list[Record], replay: bool) -> bool:
        sink = self._get_sink()
        tries = 0
        while True:
            try:
                result = sink.write_batch(records)
            except SinkUnavailable as exc:
                self._went_down(exc)
                if not replay:
                    self._spool_records(records, sync=True)
                return False
            except SinkRetry as exc:
                tries += 1
                self.counters["retried"] += 1
                if tries < 4:
                    time.sleep(0.05 * tries)
                    continue
                return self._bisect(records, f"{exc}", replay)
            except SinkRejected as exc:
                return self._bisect(records, str(exc), replay)
            except Exception as exc:  # a defect in a sink: isolate the batch like a refusal
                self._error(exc, "the sink failed")
                return self._bisect(records, f"{type(exc).__name__}: {exc}", replay)
            self._came_up()
            self.counters["batches"] += 1
            self.counters["written"] += result.written
            self.counters["duplicates"] += result.duplicates
            for rec, why in result.rejected:
                self._rejected(rec, why, replay)
            return True

    def _bisect(self, records: list[Record], why: str, replay: bool) -> bool:
        if len(records) == 1:
            self._rejected(records[0], why, replay)
            return True
        mid = len(records) // 2
        if not self._apply(records[:mid], replay):
            if not replay:
                self._spool_records(records[mid:], sync=True)
            return False
        return self._apply(records[mid:], replay)

    def _rejected(self, rec: Record, why: str, replay: bool) -> None:
        rec.attempts += 1
        rec.error = why[:10_000]
        rec.first_failed_at = rec.first_failed_at or datetime.now(UTC)
        if rec.attempts >= self.settings.ingest_max_attempts:
            self._dead_letter([rec], replay=replay)
        elif replay:
            self._spool_records([rec], sync=True)  # stays durable; the next replay retries it
        else:
            delay = 0.25 * 2 ** (rec.attempts - 1)
            self._retry.append((time.monotonic() + delay, rec))

    def _retry_due(self) -> None:
        if not self._retry:
            return
        now = time.monotonic()
        due = [r for t, r in self._retry if t <= now]
        if due:
            self._retry = deque((t, r) for t, r in self._retry if t > now)
            self._write(due)

    def _dead_letter(self, records: list[Record], *, replay: bool) -> bool:
        try:
            self._get_sink().dead_letter(records)
        except SinkUnavailable as exc:
            self._went_down(exc)
            if not replay:
                self._spool_records(records, sync=True)
            return False
        except Exception as exc:
            self._error(exc, "writing dead letters failed; the records are logged here and dropped")
            for r in records:
                _log.error("dropped record: %s", encode(r).decode(errors="replace")[:100_000])
            self.counters["dropped"] += len(records)
            return True
        self.counters["dead_lettered"] += len(records)
        for r in records:
            _log.warning(
                "record %s (%s) dead-lettered after %d attempts: %s", r.id, r.kind, r.attempts, r.error
            )
        return True

    # -- availability ----------------------------------------------------------------------------
    def _went_down(self, exc: BaseException) -> None:
        if self._available:
            _log.warning("llmbase: database unavailable, spooling the request log: %s", exc)
        self._available = False
        self._note(exc)
        self._backoff = min(max(self._backoff * 2, 0.25), _MAX_BACKOFF)
        self._down_until = time.monotonic() + self._backoff * (0.75 + random.random() / 4)
        if self._sink is not None:
            self._sink.close()

    def _came_up(self) -> None:
        if not self._available:
            _log.info("llmbase: database reachable again; replaying the spool")
        self._available = True
        self._backoff = 0.0
        self._down_until = 0.0

    # -- spool -----------------------------------------------------------------------------------
    def _spool_records(self, records: Sequence[Record], *, sync: bool) -> None:
        if not records:
            return
        try:
            accepted = self._spool.append([encode(r) for r in records], sync=sync)
        except Exception as exc:
            self._error(exc, "writing the spool failed")
            accepted = 0
        self.counters["spooled"] += accepted
        lost = len(records) - accepted
        if lost:
            self.counters["dropped"] += lost
            _log.error(
                "llmbase: spool full (%s, %d bytes max) or unwritable: %d records dropped",
                self._spool.dir,
                self._spool.max_bytes,
                lost,
            )

    def _to_spool(self, *, include_retry: bool = False) -> None:
        """Move everything queued (and, at shutdown, waiting for retry) to the spool."""
        batch = max(1, self.settings.ingest_batch_size)
        while True:
            items, markers = self._take(batch)
            self._waiters.extend(markers)
            if items:
                self._spool_records(self._prepare(items), sync=False)
            elif not markers:
                break
        if include_retry and self._retry:
            self._spool_records([r for _, r in self._retry], sync=False)
            self._retry.clear()
        self._spool.sync()

    def _replay(self) -> bool:
        """Replay spooled segments oldest first; False if the database went away meanwhile."""
        batch = self.settings.ingest_batch_size
        for seg in self._spool.claim():
            done = False
            try:
                for chunk in seg.chunks(batch):
                    recs: list[Record] = []
                    for payload in chunk:
                        try:
                            recs.append(decode(payload))
                        except Exception as exc:
                            self._error(exc, "an unreadable spool record was skipped")
                            self.counters["dropped"] += 1
                    if not self._write(recs, replay=True):
                        return False
                    self.counters["replayed"] += len(recs)
                    if self._stopping:
                        return False
                done = True
            finally:
                if done:
                    seg.delete()
                else:
                    seg.release()
        return True

    # -- errors ----------------------------------------------------------------------------------
    def _note(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        self.last_error_at = datetime.now(UTC)

    def _error(self, exc: BaseException, what: str) -> None:
        self.counters["errors"] += 1
        self._note(exc)
        _log.error("llmbase: %s: %s", what, exc, exc_info=exc)

    # -- fork and exit -------------------------------------------------------------------------
    def _after_fork(self) -> None:
        """In the child: a fresh queue, thread, connection and spool segment."""
        sink = self._sink
        abandon = getattr(sink, "abandon", None)
        if abandon is not None:
            abandon()
        self._spool.after_fork()
        self._init()
        self._sink = None if sink is not self._sink_given else sink


class _Preparer:
    """What lazy records call to be normalised: one (`__call__`) or several at once (`many`,
    see Record.prefetch). Holds its writer weakly, so that a record kept somewhere (the retry
    queue, a test) does not keep a closed writer alive."""

    __slots__ = ("_writer",)

    def __init__(self, writer: Writer) -> None:
        self._writer = weakref.ref(writer)

    def _get(self) -> Writer:
        w = self._writer()
        if w is None:  # pragma: no cover - records are normalised while their writer runs
            raise RuntimeError("the writer of this record is gone")
        return w

    def __call__(self, kind: str, tenant: Any, payload: dict[str, Any]) -> Record:
        return self._get()._prepare_one(kind, tenant, payload)

    def many(self, items: list[tuple[Any, dict[str, Any]]]) -> list[Record]:
        return self._get()._prepare_requests(items)


_WRITERS: weakref.WeakSet[Writer] = weakref.WeakSet()
_hooks_pid = 0


def close_all(timeout: float | None = None) -> None:
    """Close every writer of this process (the exit hook)."""
    for w in list(_WRITERS):
        if w._pid == os.getpid():
            try:
                w.close(timeout)
            except Exception:  # at exit: report, never raise
                _log.exception("llmbase: closing the request log writer failed")


def _register_exit_hooks() -> None:
    """atexit, registered again after a connection is made so it runs before the embedded
    server's own exit hook; in a multiprocessing child (which skips atexit), a Finalize."""
    global _hooks_pid
    atexit.unregister(close_all)
    atexit.register(close_all)
    if _hooks_pid != os.getpid() and "multiprocessing" in sys.modules:
        _hooks_pid = os.getpid()
        import multiprocessing
        import multiprocessing.util

        if multiprocessing.parent_process() is not None:
            multiprocessing.util.Finalize(None, close_all, exitpriority=100)


def _after_fork_in_child() -> None:
    for w in list(_WRITERS):
        try:
            w._after_fork()
        except Exception:
            _log.exception("llmbase: resetting the writer after fork failed")


os.register_at_fork(after_in_child=_after_fork_in_child)
