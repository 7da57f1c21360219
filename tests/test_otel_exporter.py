"""The real OpenTelemetry pipeline into llmbase: the opentelemetry-sdk with its OTLP/HTTP
(protobuf) exporter, pointed at a real uvicorn server running create_app, with spans made
by hand and by the official OpenAI instrumentation (opentelemetry-instrumentation-openai-v2)
driving the official openai SDK against the stub provider (tests/stubs)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import openai
import pytest
import uvicorn
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

import llmbase
from _otel import counts, ingest_key, rows, tenant_id
from llmbase.server import create_app
from stubs import TEXT, USAGE, StubServer, running_stub


class Served:
    """create_app(client) on 127.0.0.1 in a uvicorn thread."""

    def __init__(self, client: llmbase.LLMBase) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(client), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def served(client: llmbase.LLMBase) -> Iterator[Served]:
    with Served(client) as s:
        yield s


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with running_stub() as s:
        yield s


def provider(url: str, key: str, service: str, gzip: bool = False) -> tuple[TracerProvider, OTLPSpanExporter]:
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces",
        headers={"Authorization": f"Bearer {key}"},
        compression=Compression.Gzip if gzip else Compression.NoCompression,
        timeout=10,
    )
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(BatchSpanProcessor(exporter))
    return tp, exporter


def test_sdk_exporter_spans_become_rows_runs_and_iterations(
    client: llmbase.LLMBase, served: Served, db_url: str
) -> None:
    client.admin().tenants.create("acme")
    tp, _ = provider(served.url, ingest_key(client, "acme"), "agent-svc", gzip=True)
    tracer = tp.get_tracer("my.agent")
    with tracer.start_as_current_span("invoke_agent planner") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "planner")
        agent.set_attribute("enduser.id", "carol")
        for i in range(2):
            with tracer.start_as_current_span("chat gpt-4o") as call:
                call.set_attributes({
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100 + i,
                    "gen_ai.usage.output_tokens": 10, "enduser.id": "carol",
                })  # fmt: skip
                time.sleep(0.01)
            with tracer.start_as_current_span("execute_tool lookup") as tool:
                tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"})
                if i == 1:
                    tool.set_status(Status(StatusCode.ERROR, "not found"))
                time.sleep(0.005)
    assert tp.force_flush(10_000)
    tp.shutdown()
    assert client.requests.flush(10)
    acme = tenant_id(client, "acme")
    reqs = rows(db_url, "SELECT * FROM llmbase.requests ORDER BY iteration")
    assert [(r["tenant_id"], r["model"], r["tokens_prompt"], r["iteration"]) for r in reqs] == [
        (acme, "gpt-4o", 100, 1), (acme, "gpt-4o", 101, 2)
    ]  # fmt: skip
    assert all(r["latency_ms"] >= 10 and r["tags"] == ["service:agent-svc"] for r in reqs)
    (run,) = rows(
        db_url, "SELECT r.*, u.external_id FROM llmbase.runs r JOIN llmbase.users u ON u.id = r.user_id"
    )
    assert (run["tenant_id"], run["name"], run["iteration_count"], run["external_id"]) == (
        acme,
        "planner",
        2,
        "carol",
    )
    assert run["id"] == reqs[0]["run_id"] == reqs[1]["run_id"]
    assert run["api_ms"] == pytest.approx(sum(r["latency_ms"] for r in reqs))
    tools = rows(db_url, "SELECT * FROM llmbase.run_tool_calls ORDER BY iteration")
    assert [(t["iteration"], t["status"]) for t in tools] == [(1, "success"), (2, "error")]
    c = counts(db_url)
    assert (c["requests"], c["runs"], c["run_iterations"], c["run_tool_calls"]) == (2, 1, 2, 2)


def _finished_spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    with tp.get_tracer("t").start_as_current_span("chat") as s:
        s.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                          "gen_ai.usage.input_tokens": 3})  # fmt: skip
    return list(memory.get_finished_spans())


def test_a_replayed_sdk_export_is_counted_once(client: llmbase.LLMBase, served: Served, db_url: str) -> None:
    spans = _finished_spans()
    exporter = OTLPSpanExporter(endpoint=f"{served.url}/v1/traces",
                                headers={"Authorization": f"Bearer {ingest_key(client)}"})  # fmt: skip
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert client.requests.flush(10)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert client.requests.flush(10)
    exporter.shutdown()  # type: ignore[no-untyped-call]
    c = counts(db_url)
    assert c["requests"] == 1 and c["rollup_requests"] == 1


def test_bad_keys_and_scopes_are_refused_and_nothing_is_written(
    client: llmbase.LLMBase, served: Served, db_url: str
) -> None:
    spans = _finished_spans()
    for key in ("llmb_" + "0" * 32 + "_nope", ingest_key(client, scopes=("read",))):
        exporter = OTLPSpanExporter(
            endpoint=f"{served.url}/v1/traces", headers={"Authorization": f"Bearer {key}"}
        )
        assert exporter.export(spans) == SpanExportResult.FAILURE
        exporter.shutdown()  # type: ignore[no-untyped-call]
    assert client.requests.flush(10)
    assert counts(db_url)["requests"] == 0


@pytest.fixture
def instrumented(
    client: llmbase.LLMBase, served: Served, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TracerProvider, str]]:
    # Message content on the spans (the current GenAI conventions: gen_ai.input/output.messages).
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    client.admin().tenants.create("bots")
    tp, _ = provider(served.url, ingest_key(client, "bots"), "discord-bot")
    instrumentor = OpenAIInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=tp)
    try:
        yield tp, "bots"
    finally:
        instrumentor.uninstrument()
        tp.shutdown()


def test_openai_instrumentation_against_the_stub(
    client: llmbase.LLMBase, instrumented: tuple[TracerProvider, str], stub: StubServer, db_url: str
) -> None:
    tp, slug = instrumented
    oai = openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0)
    try:
        t0 = time.monotonic()
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        chat_wall_ms = (time.monotonic() - t0) * 1000
        oai.embeddings.create(model="text-embedding-3-small", input="hello")
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-stub-scenario": "500"},
            )  # fmt: skip
        stream = oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    finally:
        oai.close()
    assert tp.force_flush(10_000)
    assert client.requests.flush(10)
    got = rows(db_url, "SELECT * FROM llmbase.requests ORDER BY created_at")
    bots = tenant_id(client, slug)
    assert [(r["tenant_id"], r["request_type"], r["status"]) for r in got] == [
        (bots, "chat", "success"), (bots, "embedding", "success"), (bots, "chat", "error"), (bots, "chat", "success"),
    ]  # fmt: skip
    chat, emb, err, streamed = got
    assert (chat["provider"], chat["model"]) == ("openai", "gpt-4o-mini")
    assert (chat["tokens_prompt"], chat["tokens_completion"], chat["tokens_total"]) == (
        USAGE["prompt"], USAGE["completion"], USAGE["total"]
    )  # fmt: skip
    assert 0 < chat["latency_ms"] <= chat_wall_ms + 1
    assert chat["cost_usd"] is not None and chat["cost_usd"] > 0
    assert chat["response_body"]["id"] == "chatcmpl-stub" and chat["response_body"]["finish_reasons"] == [
        "stop"
    ]
    assert chat["tags"] == ["service:discord-bot"]
    assert chat["request_body"]["messages"] == [
        {"role": "user", "parts": [{"content": "hi", "type": "text"}]}
    ]
    assert chat["response_body"]["output"][0]["parts"][0]["content"] == TEXT
    assert emb["model"] == "text-embedding-3-small" and emb["tokens_prompt"] == USAGE["embedding_prompt"]
    assert "InternalServerError" in err["error_kind"] and "500" in err["error_message"]
    assert (
        streamed["tokens_prompt"] == USAGE["prompt"] and streamed["tokens_completion"] == USAGE["completion"]
    )
    # Only the key's tenant got rows.
    assert {r["tenant_id"] for r in rows(db_url, "SELECT DISTINCT tenant_id FROM llmbase.requests")} == {bots}
