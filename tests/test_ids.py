"""UUIDv7 ids: RFC 9562 layout, unique across threads and forked children, time-ordered,
and carrying their creation time."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from llmbase._ids import uuid7, uuid7_time


def test_layout_and_time() -> None:
    before = datetime.now(UTC)
    u = uuid7()
    after = datetime.now(UTC)
    assert u.version == 7
    assert u.variant == "specified in RFC 4122"
    assert UUID(str(u)) == u and hash(UUID(str(u))) == hash(u)
    t = uuid7_time(u)
    assert t is not None
    assert before - timedelta(microseconds=1) <= t <= after
    assert uuid7_time(uuid4()) is None


def test_unique_and_ordered_across_threads() -> None:
    out: list[list[UUID]] = [[] for _ in range(4)]

    def make(k: int) -> None:
        out[k].extend(uuid7() for _ in range(20_000))

    threads = [threading.Thread(target=make, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [u for part in out for u in part]
    assert len(set(ids)) == len(ids) == 80_000
    for part in out:  # within a thread, creation times never go backwards
        times = [uuid7_time(u) for u in part]
        assert all(a is not None and b is not None and a <= b for a, b in itertools.pairwise(times))


def _child(q: multiprocessing.Queue[list[str]]) -> None:
    q.put([str(uuid7()) for _ in range(2_000)])


def test_forked_child_never_reuses_random_bits() -> None:
    uuid7()  # the parent has a filled random list before forking
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue[list[str]] = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    child = q.get(timeout=30)
    p.join(30)
    parent = [str(uuid7()) for _ in range(2_000)]
    rand = lambda s: UUID(s).int & ((1 << 62) - 1)  # noqa: E731
    assert not {rand(s) for s in child} & {rand(s) for s in parent}
