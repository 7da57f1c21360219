"""Concurrent writers leave exact totals."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import llmbase

THREADS = 20
PER_THREAD = 10


def test_twenty_threads_adding_messages_leave_exact_totals(db_url: str) -> None:
    with llmbase.connect(db_url, migrate=False, pool_max_size=THREADS) as c:
        u = c.user("busy")
        conv = u.conversations.create(title="hot")

        def work(i: int) -> None:
            for j in range(PER_THREAD):
                u.conversations.add_message(
                    conv.id, role="user", content=f"{i}-{j}", token_count=3, cost_usd=Decimal("0.001")
                )

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(work, range(THREADS)))

        n = THREADS * PER_THREAD
        got = u.conversations.get(conv.id)
        assert got.message_count == n
        assert got.total_tokens == 3 * n
        assert got.total_cost_usd == Decimal("0.001") * n
        history = u.conversations.history(conv.id)
        assert [m.seq for m in history] == list(range(1, n + 1))
        assert len({m.content for m in history}) == n
        profile = u.users.profile()
        assert profile.message_count == n and profile.total_tokens == 3 * n


def test_concurrent_ratings_keep_summary_exact(db_url: str) -> None:
    with llmbase.connect(db_url, migrate=False, pool_max_size=10) as c:
        conv = c.conversations.create(shared=True)
        reply = c.conversations.add_message(conv.id, role="assistant", content="a")
        users = [c.user(f"rater{i}") for i in range(30)]

        def work(i: int) -> None:
            u = users[i]
            u.feedback.rate(reply.id, rating="up")
            u.feedback.rate(reply.id, rating="down" if i % 3 == 0 else "up")

        with ThreadPoolExecutor(10) as pool:
            list(pool.map(work, range(30)))
        s = c.feedback.summary(reply.id)
        assert (s.thumbs_up, s.thumbs_down, s.feedback_count) == (20, 10, 30)
