"""Benchmark: the latency of a response-cache hit through an instrumented official SDK
client, next to a direct call to the local stub server and a cache miss.

The stub server runs in its own process (like a remote API, but ~1 ms away instead of
hundreds); the database is the embedded PostgreSQL in a fresh data dir. A hit = key hash,
one transaction (scope + hit count UPDATE ... RETURNING, asynchronous commit), the SDK
building its own response object, and the request-log record (enqueued). Goal: hit p50
<= 1 ms. "limit": a bare pooled transaction (`SELECT 1` in the app scope) - what any hit
through PostgreSQL costs at least. "seed 003's way": SELECT the row by its hash, then a
separate UPDATE of hit_count (two statements in the app, as the seed's query_cache does).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai

import llmbase
from bench.instrument_overhead import _pct, _stub_process
from llmbase.cache import request_key

MSGS: Any = [{"role": "user", "content": "What is the capital of France?"}]
GOAL_MS = 1.0


def _times(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _seed_way(db: llmbase.LLMBase, key: bytes) -> Callable[[], Any]:
    """SELECT then UPDATE in two statements (one transaction), like seed 003's app code."""
    database = db.database
    scope = db.scope()

    def call() -> Any:
        with database.transaction(scope) as conn:
            row = conn.execute(
                "SELECT response FROM llmbase.cache_entries WHERE tenant_id = %s AND key_hash = %s"
                " AND (expires_at IS NULL OR expires_at > now())",
                (scope.tenant_id, key),
            ).fetchone()
            conn.execute(
                "UPDATE llmbase.cache_entries SET hit_count = hit_count + 1, last_hit_at = now()"
                " WHERE tenant_id = %s AND key_hash = %s",
                (scope.tenant_id, key),
            )
            return row

    return call


def _limit(db: llmbase.LLMBase) -> Callable[[], Any]:
    database, scope = db.database, db.scope()

    def call() -> Any:
        with database.transaction(scope) as conn:
            return conn.execute("SELECT 1").fetchone()

    return call


def run(n: int = 2000, misses: int = 300) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def row(measure: str, xs: list[float], note: str, goal: bool = False) -> None:
        p50, p99 = statistics.median(xs) * 1e3, _pct(xs, 0.99) * 1e3
        met = ("yes" if p50 <= GOAL_MS else "NO") if goal else "-"
        rows.append(
            {"measure": measure, "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "n": len(xs),
             "goal p50 <= 1 ms met": met, "note": note}
        )  # fmt: skip

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        url = stack.enter_context(_stub_process())
        db = stack.enter_context(llmbase.connect(data_dir=Path(tmp) / "pg"))
        kw: dict[str, Any] = {"base_url": url + "/v1", "api_key": "k", "max_retries": 0}
        bare = stack.enter_context(openai.OpenAI(**kw))
        cached = llmbase.instrument(stack.enter_context(openai.OpenAI(**kw)), db, cache=True)
        claude = llmbase.instrument(
            stack.enter_context(anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)), db, cache=True
        )
        seq = iter(range(10**9))

        def direct() -> Any:
            return bare.chat.completions.create(model="gpt-4o-mini", messages=MSGS)

        def hit() -> Any:
            return cached.chat.completions.create(model="gpt-4o-mini", messages=MSGS)

        def miss() -> Any:
            return cached.chat.completions.create(model="gpt-4o-mini", messages=MSGS, seed=next(seq))

        def direct_stream() -> Any:
            return list(bare.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))

        def hit_stream() -> Any:
            return list(cached.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))

        def claude_hit() -> Any:
            return claude.messages.create(model="claude-3-5-sonnet-latest", max_tokens=64, messages=MSGS)

        key = request_key({"model": "gpt-4o-mini", "messages": MSGS}, provider="openai").key_hash
        for fn in (direct, hit, direct_stream, hit_stream, claude_hit, _limit(db), _seed_way(db, key)):
            for _ in range(200):
                fn()
        for _ in range(20):
            miss()
        row(
            "cache hit: instrumented openai chat.completions.create",
            _times(hit, n),
            "ChatCompletion from the cache",
            True,
        )
        row(
            "cache hit: instrumented anthropic messages.create",
            _times(claude_hit, n),
            "Message from the cache",
            True,
        )
        row("cache hit: stream, 8 chunks consumed", _times(hit_stream, n // 2), "openai.Stream replayed")
        row(
            "direct call to the stub server (no llmbase)",
            _times(direct, n),
            "bare SDK, stub in another process",
        )
        row("direct stream call, 8 chunks (no llmbase)", _times(direct_stream, n // 2), "bare SDK")
        row("cache miss: provider call + store", _times(miss, misses), "a new seed each call")
        row("limit: one pooled app-scope transaction (SELECT 1)", _times(_limit(db), n), "PostgreSQL floor")
        row(
            "seed 003's way: SELECT, then UPDATE hit_count",
            _times(_seed_way(db, key), n),
            "lookup only, no SDK object",
        )
        db.requests.flush(timeout=60)
        st = db.cache.stats()
        rows.append(
            {"measure": f"check: entries {st.entries}, hits {st.hits}, stores {st.stores}",
             "p50_ms": "-", "p99_ms": "-", "n": "-", "goal p50 <= 1 ms met": "-",
             "note": f"hit rate {st.hit_rate:.1%}, cost saved ${st.cost_saved_usd:.4f}"}
        )  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.run import table

    print(table(run()))
