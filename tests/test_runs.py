"""Agent runs: iterations and tool calls are timed (api_ms + tool_ms <= total_ms), roll up to
the run and its conversation, and instrumented calls inside an iteration are linked to it.
The DB tests log through the real writer and read the rows back as the superuser."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import openai
import psycopg
import pytest
from psycopg.rows import dict_row

import llmbase
from llmbase._context import current_ids
from stubs import StubServer, running_stub


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with running_stub() as s:
        yield s


MSGS = [{"role": "user", "content": "hi"}]
SLOW = {"x-stub-delay": "0.03"}


def _rows(db_url: str, query: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


# -- in memory: timing and linking ---------------------------------------------------------
def test_timings_add_up_and_calls_are_linked(client: llmbase.LLMBase, stub: StubServer) -> None:
    records: list[dict[str, Any]] = []
    oai = llmbase.instrument(
        openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0),
        log=lambda **f: records.append(f),
    )
    with client.run("agent") as run:
        assert current_ids()["run_id"] == run.id
        for _ in range(2):
            with run.iteration() as it:
                oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers=SLOW)
                with run.tool("search"):
                    time.sleep(0.02)
                assert current_ids()["iteration"] == it.number
        oai.embeddings.create(model="text-embedding-3-small", input="x")  # in the run, no iteration
    oai.close()
    assert run.status == "success" and run.iteration_count == 2
    assert [(r["run_id"], r.get("iteration")) for r in records] == [(run.id, 1), (run.id, 2), (run.id, None)]
    assert run.api_ms == pytest.approx(sum(r["latency_ms"] for r in records))
    assert run.tool_ms >= 40
    assert run.total_ms is not None and run.api_ms + run.tool_ms <= run.total_ms
    assert current_ids() == {}


def test_errors_mark_status_and_are_reraised(client: llmbase.LLMBase) -> None:
    run = client.run("failing")

    def agent() -> None:
        with run, run.iteration():
            with pytest.raises(KeyError), run.tool("lookup"):
                raise KeyError("missing")
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        agent()
    assert run.status == "error" and run.error is not None and "ZeroDivisionError" in run.error


def test_run_is_entered_once(client: llmbase.LLMBase) -> None:
    run = client.run("once")
    with run:
        pass
    with pytest.raises(RuntimeError), run:
        pass


# -- through the writer into PostgreSQL ----------------------------------------------------
def test_run_rows_and_conversation_rollup(client: llmbase.LLMBase, db_url: str, stub: StubServer) -> None:
    alice = client.user("alice")
    conv = alice.conversations.create(title="agent")
    oai = llmbase.instrument(openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), client)
    with client.run("answer", conversation=conv, user="alice", metadata={"v": 1}) as run:
        for _ in range(3):
            with run.iteration():
                oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers=SLOW)
                with run.tool("search"):
                    time.sleep(0.01)
        with run.tool("final-check"):  # a tool outside any iteration
            time.sleep(0.005)
    oai.close()
    assert client.requests.flush(timeout=30)

    (r,) = _rows(db_url, "SELECT * FROM llmbase.runs WHERE id = %s", run.id)
    assert r["status"] == "success" and r["name"] == "answer" and r["iteration_count"] == 3
    assert r["conversation_id"] == conv.id and r["user_id"] == alice.scope().user_id
    assert r["ended_at"] > r["started_at"] and r["metadata"] == {"v": 1}
    assert r["api_ms"] == pytest.approx(run.api_ms) and r["tool_ms"] == pytest.approx(run.tool_ms)
    assert r["api_ms"] + r["tool_ms"] <= r["total_ms"]

    its = _rows(db_url, "SELECT * FROM llmbase.run_iterations WHERE run_id = %s ORDER BY iteration", run.id)
    assert [i["iteration"] for i in its] == [1, 2, 3]
    for i in its:
        assert i["api_calls"] == 1 and i["tool_calls"] == 1
        assert i["api_ms"] >= 25 and i["tool_ms"] >= 9
        assert i["api_ms"] + i["tool_ms"] <= i["total_ms"]
    assert sum(i["api_ms"] for i in its) == pytest.approx(r["api_ms"])

    tools = _rows(
        db_url, "SELECT * FROM llmbase.run_tool_calls WHERE run_id = %s ORDER BY started_at", run.id
    )
    assert [(t["name"], t["iteration"], t["status"]) for t in tools] == [
        ("search", 1, "success"),
        ("search", 2, "success"),
        ("search", 3, "success"),
        ("final-check", None, "success"),
    ]
    assert sum(t["duration_ms"] for t in tools) == pytest.approx(r["tool_ms"])

    reqs = _rows(
        db_url,
        "SELECT run_id, iteration, conversation_id, latency_ms FROM llmbase.requests ORDER BY iteration",
    )
    assert [(q["run_id"], q["iteration"], q["conversation_id"]) for q in reqs] == [
        (run.id, 1, conv.id),
        (run.id, 2, conv.id),
        (run.id, 3, conv.id),
    ]
    for q, i in zip(reqs, its, strict=True):
        assert q["latency_ms"] == pytest.approx(i["api_ms"])

    (c,) = _rows(
        db_url,
        "SELECT completed_at, total_time_ms, total_iterations FROM llmbase.conversations WHERE id = %s",
        conv.id,
    )
    assert c["completed_at"] is not None and c["total_iterations"] == 3
    assert c["total_time_ms"] == pytest.approx(r["total_ms"], abs=1)


def test_failed_run_rows(client: llmbase.LLMBase, db_url: str) -> None:
    run = client.run("oops")

    def agent() -> None:
        with run:
            with run.iteration(), pytest.raises(TimeoutError), run.tool("slow-api"):
                raise TimeoutError("tool timed out")
            with run.iteration():
                raise ValueError("bad plan")

    with pytest.raises(ValueError, match="bad plan"):
        agent()
    assert client.requests.flush(timeout=30)
    (r,) = _rows(db_url, "SELECT status, error, iteration_count FROM llmbase.runs WHERE id = %s", run.id)
    assert r["status"] == "error" and "bad plan" in r["error"] and r["iteration_count"] == 2
    (t,) = _rows(
        db_url, "SELECT status, error, iteration FROM llmbase.run_tool_calls WHERE run_id = %s", run.id
    )
    assert t == {"status": "error", "error": "TimeoutError: tool timed out", "iteration": 1}
    its = _rows(
        db_url, "SELECT iteration, metadata FROM llmbase.run_iterations WHERE run_id = %s ORDER BY 1", run.id
    )
    assert its[0]["metadata"] == {} and its[1]["metadata"]["status"] == "error"


async def test_async_run(aclient: llmbase.AsyncLLMBase, db_url: str, stub: StubServer) -> None:
    oai = llmbase.instrument(
        openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), aclient
    )
    conv = await aclient.conversations.create(title="async agent")
    async with aclient.run("async-agent", conversation=conv.id) as run:
        for _ in range(2):
            async with run.iteration():
                # two calls in parallel tasks: both linked to this iteration, both timed
                await asyncio.gather(
                    oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers=SLOW),
                    oai.embeddings.create(model="text-embedding-3-small", input="x"),
                )
                async with run.tool("fetch"):
                    await asyncio.sleep(0.01)
    await oai.close()
    assert run.iteration_count == 2 and run.status == "success"
    assert run.total_ms is not None and run.tool_ms <= run.total_ms
    assert await aclient.requests.flush(timeout=30)
    reqs = _rows(
        db_url, "SELECT iteration, request_type FROM llmbase.requests WHERE run_id = %s ORDER BY 1, 2", run.id
    )
    assert [(q["iteration"], q["request_type"]) for q in reqs] == [
        (1, "chat"),
        (1, "embedding"),
        (2, "chat"),
        (2, "embedding"),
    ]
    its = _rows(
        db_url,
        "SELECT iteration, api_calls, tool_calls FROM llmbase.run_iterations WHERE run_id = %s ORDER BY 1",
        run.id,
    )
    assert its == [
        {"iteration": 1, "api_calls": 2, "tool_calls": 1},
        {"iteration": 2, "api_calls": 2, "tool_calls": 1},
    ]
    (c,) = _rows(db_url, "SELECT total_iterations FROM llmbase.conversations WHERE id = %s", conv.id)
    assert c["total_iterations"] == 2
