"""Shared parts of the request-log benchmarks: a private embedded server and ~1 KB records."""

from __future__ import annotations

import contextlib
import random
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from llmbase import migrate
from llmbase.embedded import EmbeddedServer

USERS = [uuid.UUID(int=1)]


@contextlib.contextmanager
def server() -> Iterator[tuple[str, Path]]:
    """A fresh embedded server (llmbase's tuning) migrated to head, and a scratch dir."""
    with tempfile.TemporaryDirectory(prefix="llmbase-bench-") as tmp:
        srv = EmbeddedServer(Path(tmp) / "pg")
        url = srv.start()
        migrate.upgrade(url)
        try:
            yield url, Path(tmp)
        finally:
            srv.stop()
            srv.release()


def record(rng: random.Random, i: int) -> dict[str, Any]:
    """A chat call as an instrumented client logs it: ~1 KB once serialised (bodies included)."""
    topic = rng.choice(["billing", "the weather", "a refund", "Python", "the API"])
    return {
        "request_type": "chat",
        "provider": "openai",
        "model": rng.choice(["gpt-4o", "gpt-4o-mini", "o3-mini"]),
        "user_id": USERS[0],
        "conversation_id": uuid.UUID(int=rng.getrandbits(122)),
        "status": "success" if rng.random() < 0.97 else "error",
        "tokens_prompt": rng.randrange(20, 3000),
        "tokens_completion": rng.randrange(1, 800),
        "cost_usd": Decimal(rng.randrange(1, 10**6)) / Decimal(10**8),
        "latency_ms": rng.lognormvariate(6.5, 0.8),
        "ttft_ms": rng.uniform(80, 600),
        "stream": True,
        "request_body": {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are a helpful support assistant for ACME. Be brief."},
                {"role": "user", "content": f"Question {i}: please tell me about {topic}. " * 4},
            ],
            "temperature": 0.2,
            "max_tokens": 512,
        },
        "response_body": {
            "id": f"chatcmpl-{i:012d}",
            "choices": [
                {"message": {"role": "assistant", "content": f"Here is what I know about {topic}. " * 5}}
            ],
        },
        "tags": ["prod", "support"],
        "metadata": {"route": "/api/chat", "release": "2025.06.1"},
    }


def truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE llmbase.requests, llmbase.request_rollups, llmbase.request_rollups_tenant")
        conn.execute("UPDATE llmbase.user_profiles SET request_count = 0")
        conn.execute("CHECKPOINT")


def now() -> datetime:
    return datetime.now(UTC)
