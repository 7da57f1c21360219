"""`client.context(...)` ids attach to instrumented calls: nesting, asyncio tasks, threads,
and which client a call is logged through; instrument()'s default client."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import llmbase
from llmbase import integrations
from llmbase._context import Context, context, current_ids
from stubs import StubServer, running_stub


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with running_stub() as s:
        yield s


class Sink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, **fields: Any) -> None:
        self.records.append(fields)


class FakeClient:
    """Anything with `.requests.log` can be logged through (and a `_core.user_ref`)."""

    def __init__(self, user_ref: Any = None) -> None:
        self.sink = Sink()
        self.requests = self
        self.log = self.sink
        self._core = type("Core", (), {"user_ref": user_ref})()


MSGS = [{"role": "user", "content": "hi"}]


def test_ids_nest_and_merge() -> None:
    conv, msg, run = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert current_ids() == {}
    with context(None, user="alice", conversation=conv, tags=["a"], metadata={"x": 1}):
        with context(None, message=msg, run=run, iteration=2, tags=["b", "a"], metadata={"y": 2}):
            assert current_ids() == {
                "user": "alice",
                "conversation_id": conv,
                "message_id": msg,
                "run_id": run,
                "iteration": 2,
                "tags": ["a", "b"],
                "metadata": {"x": 1, "y": 2},
            }
        uid = uuid.uuid4()
        with context(None, user=uid):
            assert current_ids()["user_id"] == uid and "user" not in current_ids()
        assert current_ids()["user"] == "alice"
    assert current_ids() == {}


def test_ids_accept_objects_and_strings_and_reject_junk() -> None:
    conv = uuid.uuid4()
    obj = type("Conv", (), {"id": conv})()
    with context(None, conversation=obj, message=str(conv)):
        assert current_ids()["conversation_id"] == conv == current_ids()["message_id"]
    with pytest.raises(llmbase.ValidationError):
        context(None, conversation="not-a-uuid")
    with pytest.raises(llmbase.ValidationError):
        context(None, iteration=-1)
    with pytest.raises(llmbase.ValidationError):
        Context({"colour": "red"})


def test_current_ids_is_one_prebuilt_dict() -> None:
    with context(None, user="bob"):
        assert current_ids() is current_ids()


def test_calls_carry_context_ids(stub: StubServer) -> None:
    sink = Sink()
    conv = uuid.uuid4()
    with openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0) as c:
        llmbase.instrument(c, log=sink, tags=["svc"])
        with context(None, user="alice", conversation=conv, tags=["exp"], metadata={"page": "home"}):
            c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    inside, outside = sink.records
    assert inside["user"] == "alice" and inside["conversation_id"] == conv
    assert inside["tags"] == ["exp", "svc"] and inside["metadata"] == {"page": "home"}
    assert "user" not in outside and outside["tags"] == ["svc"]


def test_stream_keeps_the_ids_of_the_call_not_of_the_drain(stub: StubServer) -> None:
    sink = Sink()
    with openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0) as c:
        llmbase.instrument(c, log=sink)
        with context(None, user="alice"):
            stream = c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
        list(stream)  # drained after the block, e.g. by a streaming HTTP response
    assert sink.records[0]["user"] == "alice"


async def test_ids_attach_across_asyncio_tasks(stub: StubServer) -> None:
    sink = Sink()
    c = llmbase.instrument(
        openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), log=sink
    )

    async def handle(user: str, conv: uuid.UUID) -> None:
        with context(None, user=user, conversation=conv):
            await asyncio.sleep(0.01)  # interleave with the other task
            await c.chat.completions.create(
                model="gpt-4o-mini", messages=MSGS, extra_headers={"x-stub-delay": "0.02"}
            )
            stream = await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
            async for _ in stream:
                await asyncio.sleep(0)

    a, b = uuid.uuid4(), uuid.uuid4()
    await asyncio.gather(handle("alice", a), handle("bob", b))
    await c.close()
    seen = sorted((r["user"], r["conversation_id"], r["stream"]) for r in sink.records)
    assert seen == sorted([("alice", a, False), ("alice", a, True), ("bob", b, False), ("bob", b, True)])


async def test_tasks_created_inside_a_block_inherit_it() -> None:
    got: list[Any] = []

    async def child() -> None:
        got.append(current_ids().get("user"))

    with context(None, user="carol"):
        task = asyncio.create_task(child())
    await task
    await asyncio.create_task(child())
    assert got == ["carol", None]


def test_threads_are_isolated() -> None:
    got: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        with context(None, user=name):
            barrier.wait()
            got[name] = current_ids()["user"]

    threads = [threading.Thread(target=work, args=(n,)) for n in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {"t1": "t1", "t2": "t2"}
    assert current_ids() == {}


def test_calls_are_logged_through_the_blocks_client(stub: StubServer) -> None:
    default, scoped = FakeClient(), FakeClient(user_ref="dave")
    with openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0) as c:
        llmbase.instrument(c, default)
        with context(scoped, conversation=uuid.uuid4()):
            c.embeddings.create(model="text-embedding-3-small", input="x")
        c.embeddings.create(model="text-embedding-3-small", input="x")
    assert len(scoped.sink.records) == 1 and scoped.sink.records[0]["user"] == "dave"
    assert len(default.sink.records) == 1 and "user" not in default.sink.records[0]


def test_default_client(stub: StubServer) -> None:
    saved = integrations.get_default_client()
    try:
        integrations.set_default_client(None)
        with openai.OpenAI(base_url=stub.openai_base_url, api_key="k") as c:
            with pytest.raises(llmbase.errors.ConfigurationError, match=r"llmbase\.connect"):
                llmbase.instrument(c)
            fake = FakeClient()
            integrations.set_default_client(fake)
            integrations.set_default_client(FakeClient(), replace=False)  # the first one stays
            llmbase.instrument(c)
            c.embeddings.create(model="text-embedding-3-small", input="x")
        assert len(fake.sink.records) == 1
    finally:
        integrations.set_default_client(saved)


def test_connect_sets_the_default_once(db_url: str) -> None:
    saved = integrations.get_default_client()
    integrations.set_default_client(None)
    try:
        first = llmbase.connect(db_url, migrate=False)
        second = llmbase.connect(db_url, migrate=False)
        assert integrations.get_default_client() is first
        first.close()
        second.close()
    finally:
        integrations.set_default_client(saved)


def test_unknown_sdk_client_is_refused() -> None:
    with pytest.raises(llmbase.errors.ConfigurationError, match="does not know"):
        llmbase.instrument(object(), log=Sink())
