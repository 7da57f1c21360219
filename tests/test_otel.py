"""POST /v1/traces in process: GenAI and OpenInference spans into request-log rows, runs,
iterations and tool calls; replays stored once; partial success; the key's tenant only;
malformed exports refused whole with 400 and a reason, nothing written."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmbase
from _otel import NS, chat_attrs, counts, export, ids, ingest_key, now_ns, rows, span, tenant_id
from llmbase.otel.otlp_proto import decode_proto
from llmbase.server import create_app

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def api(client: llmbase.LLMBase) -> Iterator[TestClient]:
    with TestClient(create_app(client)) as c:
        yield c


def post(api: TestClient, key: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Authorization": f"Bearer {key}", **JSON, **(headers or {})}
    return api.post("/v1/traces", content=data, headers=h)


def test_a_chat_span_becomes_a_request_row(client: llmbase.LLMBase, api: TestClient, db_url: str) -> None:
    key = ingest_key(client)
    trace, sid = ids()
    start = now_ns()
    attrs = {
        **chat_attrs(),
        "gen_ai.request.temperature": 0.2,
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}]
        ),
        "enduser.id": "alice",
        "session.id": "not-a-uuid",
    }
    r = post(api, key, export([span(trace, sid, "chat gpt-4o-mini", start, 840.5, attrs)]))
    assert r.status_code == 200, r.text
    assert r.json() == {}
    assert client.requests.flush(10)
    (row,) = rows(
        db_url, "SELECT r.*, u.external_id FROM llmbase.requests r JOIN llmbase.users u ON u.id = r.user_id"
    )
    assert row["request_type"] == "chat" and row["provider"] == "openai" and row["model"] == "gpt-4o-mini"
    assert (row["tokens_prompt"], row["tokens_completion"], row["tokens_total"]) == (12, 5, 17)
    assert row["latency_ms"] == pytest.approx(840.5)
    assert row["status"] == "success"
    assert row["created_at"].timestamp() == pytest.approx(start / 1e9, abs=1e-5)
    assert row["cost_usd"] is not None and row["cost_usd"] > 0  # priced by the writer
    assert row["external_id"] == "alice"
    assert row["tags"] == ["service:support-bot"]
    assert row["request_body"]["temperature"] == 0.2
    assert row["request_body"]["messages"][0]["parts"][0]["content"] == "hi"
    assert row["response_body"]["output"][0]["parts"][0]["content"] == "yo"
    assert row["response_body"]["finish_reasons"] == ["stop"]
    otel = row["metadata"]["otel"]
    assert otel["trace_id"] == trace and otel["span_id"] == sid
    assert otel["resource"] == {"service.name": "support-bot"}
    assert row["metadata"]["session_id"] == "not-a-uuid"


def test_a_replayed_export_is_stored_once(client: llmbase.LLMBase, api: TestClient, db_url: str) -> None:
    key = ingest_key(client)
    start = now_ns()
    body = export([span(*ids(), "chat", start + i * NS, 100, chat_attrs()) for i in range(3)])
    for _ in range(2):
        assert post(api, key, body).status_code == 200
        assert client.requests.flush(10)
    assert post(api, key, body).status_code == 200  # and once more in the same batch as nothing
    assert client.requests.flush(10)
    c = counts(db_url)
    assert c["requests"] == 3 and c["rollup_requests"] == 3 and c["ingest_dead_letters"] == 0


def test_errors_older_conventions_and_embeddings(
    client: llmbase.LLMBase, api: TestClient, db_url: str
) -> None:
    key = ingest_key(client)
    start = now_ns()
    spans = [
        span(*ids(), "chat", start, 50, {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                                         "gen_ai.usage.prompt_tokens": 7, "gen_ai.usage.completion_tokens": 3,
                                         "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "old style",
                                         "gen_ai.completion.0.content": "answer"}),
        span(*ids(), "chat", start + NS, 20, {**chat_attrs(), "error.type": "RateLimitError",
                                              "http.response.status_code": 429}, error="slow down"),
        span(*ids(), "chat", start + 2 * NS, 20, {**chat_attrs(), "error.type": "APIConnectionError"},
             error="boom"),
        span(*ids(), "embeddings", start + 3 * NS, 30, {"gen_ai.operation.name": "embeddings",
                                                        "gen_ai.request.model": "text-embedding-3-small",
                                                        "gen_ai.usage.input_tokens": 8}),
    ]  # fmt: skip
    assert post(api, key, export(spans)).status_code == 200
    assert client.requests.flush(10)
    got = rows(db_url, "SELECT * FROM llmbase.requests ORDER BY created_at")
    assert [r["status"] for r in got] == ["success", "rate_limited", "error", "success"]
    old = got[0]
    assert (old["provider"], old["model"], old["tokens_prompt"], old["tokens_completion"]) == (
        "openai",
        "gpt-4o",
        7,
        3,
    )
    assert old["request_body"]["messages"] == [{"role": "user", "content": "old style"}]
    assert old["response_body"]["output"] == [{"content": "answer"}]
    assert got[1]["http_status"] == 429 and got[1]["error_message"] == "slow down"
    assert got[2]["error_kind"] == "APIConnectionError" and got[2]["error_message"] == "boom"
    assert got[3]["request_type"] == "embedding" and got[3]["tokens_prompt"] == 8


def test_agent_spans_become_a_run_with_iterations(
    client: llmbase.LLMBase, api: TestClient, db_url: str
) -> None:
    key = ingest_key(client)
    trace, root = ids()
    conv = client.conversations.create(title="agent chat")
    t0 = now_ns()
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher",
             "gen_ai.conversation.id": str(conv.id)}  # fmt: skip
    tool = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.id": "c1",
    }
    step = ids()[1]
    spans = [
        span(trace, root, "invoke_agent researcher", t0, 1000, agent),
        span(trace, ids()[1], "chat", t0 + 10 * NS, 200, chat_attrs(), parent=root),
        span(trace, ids()[1], "execute_tool search", t0 + 220 * NS, 100, tool, parent=root),
        span(trace, step, "step", t0 + 330 * NS, 600, {}, parent=root),  # not a GenAI span
        span(trace, ids()[1], "execute_tool search", t0 + 340 * NS, 50, tool, parent=step, error="404"),
        span(trace, ids()[1], "chat", t0 + 400 * NS, 300, chat_attrs(), parent=step),
        span(trace, ids()[1], "execute_tool search", t0 + 710 * NS, 80, tool, parent=step),
        span(*ids(), "chat", t0, 10, chat_attrs()),  # another trace: no run
    ]
    r = post(api, key, export(spans))
    assert r.status_code == 200
    assert r.json()["partialSuccess"] == {
        "rejectedSpans": 0,
        "errorMessage": "1 span(s) without GenAI attributes ignored",
    }
    assert client.requests.flush(10)
    (run,) = rows(db_url, "SELECT * FROM llmbase.runs")
    assert run["name"] == "researcher" and run["status"] == "success"
    assert run["iteration_count"] == 2 and run["total_ms"] == pytest.approx(1000)
    assert run["api_ms"] == pytest.approx(500) and run["tool_ms"] == pytest.approx(230)
    assert run["conversation_id"] == conv.id
    its = rows(db_url, "SELECT * FROM llmbase.run_iterations ORDER BY iteration")
    assert [(i["iteration"], i["api_calls"], i["tool_calls"]) for i in its] == [(1, 1, 2), (2, 1, 1)]
    assert its[0]["api_ms"] == pytest.approx(200) and its[0]["tool_ms"] == pytest.approx(150)
    assert its[0]["total_ms"] == pytest.approx(380)  # from the call's start to the last tool's end
    assert its[1]["total_ms"] == pytest.approx(390)
    tools = rows(db_url, "SELECT * FROM llmbase.run_tool_calls ORDER BY started_at")
    assert [(t["name"], t["iteration"], t["status"]) for t in tools] == [
        ("search", 1, "success"), ("search", 1, "error"), ("search", 2, "success")
    ]  # fmt: skip
    reqs = rows(db_url, "SELECT run_id, iteration FROM llmbase.requests ORDER BY created_at, iteration")
    assert sorted((r["run_id"] == run["id"], r["iteration"]) for r in reqs) == [
        (False, None),
        (True, 1),
        (True, 2),
    ]
    (c,) = rows(
        db_url, "SELECT completed_at, total_iterations FROM llmbase.conversations WHERE id = %s", conv.id
    )
    assert c["completed_at"] is not None and c["total_iterations"] == 2
    # The same export again changes nothing.
    assert post(api, key, export(spans)).status_code == 200
    assert client.requests.flush(10)
    assert counts(db_url) | {"ingest_dead_letters": 0} == {
        "requests": 3, "runs": 1, "run_iterations": 2, "run_tool_calls": 3, "ingest_dead_letters": 0,
        "rollup_requests": 3,
    }  # fmt: skip


def test_openinference_spans(client: llmbase.LLMBase, api: TestClient, db_url: str) -> None:
    key = ingest_key(client)
    trace, chain = ids()
    t0 = now_ns()
    llm = {
        "openinference.span.kind": "LLM", "llm.model_name": "claude-3-5-haiku-latest",
        "llm.provider": "anthropic", "llm.token_count.prompt": 30, "llm.token_count.completion": 9,
        "llm.token_count.total": 39, "input.value": '{"messages": [{"role": "user", "content": "q"}]}',
        "input.mime_type": "application/json", "output.value": "the answer",
        "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "q",
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "the answer",
        "user.id": "bob", "tag.tags": ["beta"],
    }  # fmt: skip
    spans = [
        span(trace, chain, "RAG", t0, 500, {"openinference.span.kind": "CHAIN"}),
        span(trace, ids()[1], "retrieve", t0 + NS, 40, {"openinference.span.kind": "RETRIEVER"}, parent=chain),
        span(trace, ids()[1], "ChatAnthropic", t0 + 50 * NS, 400, llm, parent=chain),
        span(trace, ids()[1], "lookup", t0 + 460 * NS, 20, {"openinference.span.kind": "TOOL", "tool.name": "lookup"},
             parent=chain),
    ]  # fmt: skip
    assert post(api, key, export(spans)).status_code == 200
    assert client.requests.flush(10)
    (row,) = rows(
        db_url, "SELECT r.*, u.external_id FROM llmbase.requests r JOIN llmbase.users u ON u.id = r.user_id"
    )
    assert (row["provider"], row["model"], row["tokens_prompt"], row["tokens_completion"], row["tokens_total"]) == (
        "anthropic", "claude-3-5-haiku-latest", 30, 9, 39
    )  # fmt: skip
    assert row["external_id"] == "bob" and row["tags"] == ["service:support-bot", "beta"]
    assert row["request_body"]["input"] == {"messages": [{"role": "user", "content": "q"}]}
    assert row["request_body"]["messages"] == [{"role": "user", "content": "q"}]
    assert row["response_body"]["output_value"] == "the answer"
    (run,) = rows(db_url, "SELECT * FROM llmbase.runs")
    assert run["name"] == "RAG" and run["iteration_count"] == 1 and run["id"] == row["run_id"]
    (tool,) = rows(db_url, "SELECT * FROM llmbase.run_tool_calls")
    assert tool["name"] == "lookup" and tool["iteration"] == 1


def test_partial_success_rejects_bad_spans_only(
    client: llmbase.LLMBase, api: TestClient, db_url: str
) -> None:
    key = ingest_key(client)
    t0 = now_ns()
    good = span(*ids(), "chat", t0, 10, chat_attrs())
    backwards = span(*ids(), "chat", t0, 10, chat_attrs())
    backwards["endTimeUnixNano"] = str(t0 - NS)
    ancient = span(*ids(), "chat", 10**15, 10, chat_attrs())  # 1970
    r = post(api, key, export([good, backwards, ancient]))
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedSpans"] == 2
    assert "ends before it starts" in ps["errorMessage"] and "out of range" in ps["errorMessage"]
    assert client.requests.flush(10)
    assert counts(db_url)["requests"] == 1


def test_protobuf_and_gzip(client: llmbase.LLMBase, api: TestClient, db_url: str) -> None:
    from google.protobuf.json_format import ParseDict  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    key = ingest_key(client)
    t0 = now_ns()
    doc = export([span(*ids(), "chat", t0, 25, chat_attrs(prompt=100)), span(*ids(), "x", t0, 1, {})])
    # The protobuf JSON mapping has base64 ids; OTLP/JSON has hex: convert for ParseDict.
    for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for k in ("traceId", "spanId"):
            s[k] = __import__("base64").b64encode(bytes.fromhex(s[k])).decode()
    data = ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()
    h = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    r = post(api, key, gzip.compress(data), h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 0
    assert "1 span(s) without GenAI attributes ignored" in resp.partial_success.error_message
    assert client.requests.flush(10)
    (row,) = rows(db_url, "SELECT tokens_prompt, latency_ms FROM llmbase.requests")
    assert row["tokens_prompt"] == 100 and row["latency_ms"] == pytest.approx(25)
    assert len(decode_proto(data)) == 2


def test_each_key_writes_to_its_own_tenant(client: llmbase.LLMBase, api: TestClient, db_url: str) -> None:
    client.admin().tenants.create("acme")
    client.admin().tenants.create("globex")
    keys = {slug: ingest_key(client, slug) for slug in ("acme", "globex")}
    t0 = now_ns()
    for n, slug in enumerate(("acme", "globex", "acme")):
        body = export(
            [span(*ids(), "chat", t0 + n * NS, 10, {**chat_attrs(), "llmbase.tenant_id": "default"})]
        )
        assert post(api, keys[slug], body).status_code == 200
    assert client.requests.flush(10)
    got = rows(db_url, "SELECT tenant_id, count(*) AS n FROM llmbase.requests GROUP BY tenant_id")
    assert {r["tenant_id"]: r["n"] for r in got} == {
        tenant_id(client, "acme"): 2,
        tenant_id(client, "globex"): 1,
    }
    # A tenant's reader sees its own calls only.
    assert len(client.tenant("globex").reports.slowest()) == 1
    assert len(client.tenant("acme").reports.slowest()) == 2


def _gzip_bomb() -> bytes:
    return gzip.compress(b"{" + b" " * 5_000_000 + b"}")


MALFORMED: list[tuple[str, bytes, dict[str, str], str]] = [
    ("bad json", b'{"resourceSpans": [', JSON, "not valid JSON"),
    ("not an object", b"[1, 2]", JSON, "expected an object"),
    ("resourceSpans wrong type", b'{"resourceSpans": {"a": 1}}', JSON, "resourceSpans: expected an array"),
    ("traceId a number", json.dumps(export([{**span(*ids(), "c", 1, 1, {}), "traceId": 5}])).encode(), JSON,
     "traceId: expected a string"),
    ("traceId not hex", json.dumps(export([{**span(*ids(), "c", 1, 1, {}), "traceId": "z" * 32}])).encode(), JSON,
     "not hexadecimal"),
    ("short spanId", json.dumps(export([{**span(*ids(), "c", 1, 1, {}), "spanId": "abcd"}])).encode(), JSON,
     "expected 16 hex digits"),
    ("intValue text", json.dumps(export([{**span(*ids(), "c", 1, 1, {}), "attributes": [
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "lots"}}]}])).encode(), JSON,
     "expected an integer"),
    ("attributes an object", json.dumps(export([{**span(*ids(), "c", 1, 1, {}), "attributes": {"a": 1}}])).encode(),
     JSON, "attributes: expected an array"),
    ("start time text", json.dumps(export([{**span(*ids(), "c", 1, 1, {}), "startTimeUnixNano": "soon"}])).encode(),
     JSON, "startTimeUnixNano: expected an integer"),
    ("bad protobuf", b"\x0a\xff\xff\xff\xff\x0f\x01", {"Content-Type": "application/x-protobuf"}, "runs past the end"),
    ("protobuf garbage", b"\x0f\x00\x01", {"Content-Type": "application/x-protobuf"}, "wire type"),
    ("protobuf wrong wire type", b"\x08\x01", {"Content-Type": "application/x-protobuf"}, "expected 2"),
    ("bad gzip", b"not gzip at all", {**JSON, "Content-Encoding": "gzip"}, "not valid gzip"),
    ("gzip bomb", _gzip_bomb(), {**JSON, "Content-Encoding": "gzip"}, "expands to more than"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "headers", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_exports_get_400_with_a_reason_and_nothing_is_written(
    client: llmbase.LLMBase, db_url: str, body: bytes, headers: dict[str, str], reason: str
) -> None:
    key = ingest_key(client)
    app = create_app(client)
    app.state.otlp_max_bytes = 1_000_000
    # A good span in front of the bad one: the whole export is refused.
    with TestClient(app) as api:
        r = api.post("/v1/traces", content=body, headers={"Authorization": f"Bearer {key}", **headers})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_otlp" and reason in err["message"], err
    assert client.requests.flush(10)
    assert counts(db_url) == {k: 0 for k in counts(db_url)}


def test_a_bad_span_after_good_ones_refuses_the_whole_export(
    client: llmbase.LLMBase, api: TestClient, db_url: str
) -> None:
    key = ingest_key(client)
    good = span(*ids(), "chat", now_ns(), 10, chat_attrs())
    bad = {**span(*ids(), "chat", now_ns(), 10, chat_attrs()), "kind": "CLIENT"}
    r = post(api, key, export([good, bad]))
    assert (
        r.status_code == 400
        and "resourceSpans[0].scopeSpans[0].spans[1].kind" in r.json()["error"]["message"]
    )
    assert client.requests.flush(10)
    assert counts(db_url)["requests"] == 0


def test_limits_keys_and_media_types(client: llmbase.LLMBase, db_url: str) -> None:
    ingest = ingest_key(client)
    reader = ingest_key(client, scopes=("read",))
    body = json.dumps(export([span(*ids(), "chat", now_ns(), 10, chat_attrs())])).encode()
    with TestClient(create_app(client, max_body_bytes=200)) as api:
        r = api.post("/v1/traces", content=body, headers={"Authorization": f"Bearer {ingest}", **JSON})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    with TestClient(create_app(client)) as api:
        assert api.post("/v1/traces", content=body, headers=JSON).status_code == 401
        r = api.post("/v1/traces", content=body, headers={"Authorization": f"Bearer {reader}", **JSON})
        assert r.status_code == 403
        r = api.post("/v1/traces", content=body, headers={"Authorization": f"Bearer {ingest}",
                                                          "Content-Type": "text/plain"})  # fmt: skip
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        r = api.post("/v1/traces", content=body, headers={"Authorization": f"Bearer {ingest}", **JSON,
                                                          "Content-Encoding": "br"})  # fmt: skip
        assert r.status_code == 415
    assert client.requests.flush(10)
    assert counts(db_url)["requests"] == 0


def test_protobuf_decoder_reads_what_the_sdk_encodes() -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from llmbase.otel import decode

    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "svc", "deployment": "prod"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("scope.x", "2.0")
    with tracer.start_as_current_span("parent"), tracer.start_as_current_span("child") as s:
        s.set_attributes({"s": "text é", "i": -42, "big": 2**62, "f": 1.5, "b": True, "arr": ["a", "b"],
                          "ints": [1, 2], "bytes": b"\x00\x01"})  # fmt: skip
        s.add_event("gen_ai.choice", {"message": '{"content": "x"}', "index": 0})
        s.set_status(Status(StatusCode.ERROR, "went wrong"))
    finished = list(memory.get_finished_spans())
    data = encode_spans(finished).SerializeToString()
    child, parent = decode(data, "application/x-protobuf; charset=binary")
    assert child.name == "child" and parent.name == "parent"
    ctx = finished[0].context
    assert ctx is not None
    assert child.trace_id == f"{ctx.trace_id:032x}" and child.span_id == f"{ctx.span_id:016x}"
    assert child.parent_span_id == parent.span_id and parent.parent_span_id is None
    assert child.attributes == {"s": "text é", "i": -42, "big": 2**62, "f": 1.5, "b": True, "arr": ["a", "b"],
                                "ints": [1, 2], "bytes": b"\x00\x01"}  # fmt: skip
    assert child.start_ns == finished[0].start_time and child.end_ns == finished[0].end_time
    assert child.status_code == 2 and child.status_message == "went wrong"
    assert [(e.name, e.attributes) for e in child.events] == [
        ("gen_ai.choice", {"message": '{"content": "x"}', "index": 0})
    ]
    assert child.resource["service.name"] == "svc" and child.resource["deployment"] == "prod"
    assert (child.scope, child.scope_version, child.kind) == ("scope.x", "2.0", 1)


def test_another_tenants_conversation_id_changes_nothing(
    client: llmbase.LLMBase, api: TestClient, db_url: str
) -> None:
    client.admin().tenants.create("acme")
    theirs = client.conversations.create(title="default tenant's")
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": str(theirs.id)}
    trace, root = ids()
    t0 = now_ns()
    spans = [
        span(trace, root, "agent", t0, 100, agent),
        span(trace, ids()[1], "chat", t0, 50, chat_attrs(), root),
    ]
    assert post(api, ingest_key(client, "acme"), export(spans)).status_code == 200
    assert client.requests.flush(10)
    (run,) = rows(db_url, "SELECT tenant_id FROM llmbase.runs")
    assert run["tenant_id"] == tenant_id(client, "acme")
    (c,) = rows(
        db_url, "SELECT completed_at, total_iterations FROM llmbase.conversations WHERE id = %s", theirs.id
    )
    assert c["completed_at"] is None and not c["total_iterations"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_any_bytes_decode_or_fail_with_a_reason(data: bytes) -> None:
    from llmbase.otel import OTLPError, decode, plan

    for media in ("application/x-protobuf", "application/json"):
        try:
            plan(decode(data, media))
        except OTLPError as exc:
            reason = exc.reason
            assert reason


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from([
    "resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId", "attributes", "key", "value",
    "stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue", "bytesValue", "values",
    "events", "status", "code", "startTimeUnixNano", "endTimeUnixNano", "kind", "resource", "name",
])  # fmt: skip
_otlp_like = st.recursive(
    _json_values,
    lambda inner: st.dictionaries(_keys, inner, max_size=5) | st.lists(inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_otlp_like)
def test_any_json_decodes_or_fails_with_a_reason(doc: Any) -> None:
    from llmbase.otel import OTLPError, decode, plan

    try:
        plan(decode(json.dumps(doc).encode(), "application/json"))
    except OTLPError as exc:
        reason = exc.reason
        assert reason


def test_traces_endpoint_conforms_to_its_openapi(client: llmbase.LLMBase) -> None:
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import response_schema_conformance

    key = ingest_key(client)
    app = create_app(client)
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app).include(tag_regex="^opentelemetry$")
    ops = [r.ok() for r in schema.get_all_operations()]
    assert [(o.method.upper(), o.path) for o in ops] == [("POST", "/v1/traces")]
    failures = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=ops[0].as_strategy(mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {key}"},
                checks=[not_a_server_error, response_schema_conformance],
            )

        try:
            run()
        except Exception as exc:
            failures.append(f"{mode.value}: {exc}")
    assert not failures, "\n".join(failures)


def test_a_user_bound_key_logs_for_its_user(client: llmbase.LLMBase, api: TestClient, db_url: str) -> None:
    dave = client.users.create("dave")
    key = client.keys.create("dave's ingest", scopes=["ingest"], user_id=dave.id).secret
    body = export([span(*ids(), "chat", now_ns(), 10, {**chat_attrs(), "enduser.id": "mallory"})])
    assert post(api, key, body).status_code == 200
    assert client.requests.flush(10)
    (row,) = rows(db_url, "SELECT user_id FROM llmbase.requests")
    assert row["user_id"] == dave.id
    assert rows(db_url, "SELECT count(*) AS n FROM llmbase.users WHERE external_id = 'mallory'")[0]["n"] == 0


def test_local_admin_mode_logs_to_the_default_tenant(client: llmbase.LLMBase, db_url: str) -> None:
    body = json.dumps(export([span(*ids(), "chat", now_ns(), 10, chat_attrs())])).encode()
    with TestClient(create_app(client, local_admin=True)) as api:
        assert api.post("/v1/traces", content=body, headers=JSON).status_code == 200
    assert client.requests.flush(10)
    (row,) = rows(db_url, "SELECT tenant_id FROM llmbase.requests")
    assert row["tenant_id"] == tenant_id(client, "default")


_KNOWN = [
    "gen_ai.operation.name", "openinference.span.kind", "gen_ai.request.model", "gen_ai.response.model",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.token_count.total", "gen_ai.input.messages",
    "gen_ai.output.messages", "gen_ai.prompt.0.content", "llm.input_messages.x.message.role", "input.value",
    "error.type", "http.response.status_code", "enduser.id", "session.id", "gen_ai.conversation.id", "tag.tags",
    "llm.invocation_parameters", "gen_ai.response.finish_reasons", "gen_ai.response.time_to_first_chunk",
    "gen_ai.agent.name", "gen_ai.tool.name", "llm.cost.total", "gen_ai.request.stream",
]  # fmt: skip
_attr_values = st.one_of(
    st.sampled_from(
        ["chat", "embeddings", "invoke_agent", "execute_tool", "LLM", "AGENT", "TOOL", "CHAIN", "[", "{"]
    ),
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attrs=st.lists(
        st.dictionaries(st.sampled_from(_KNOWN), _attr_values, max_size=8), min_size=1, max_size=4
    ),
    parents=st.lists(st.integers(min_value=0, max_value=3), min_size=4, max_size=4),
    times=st.lists(
        st.integers(min_value=0, max_value=2**64 - 1)
        | st.integers(min_value=1_700_000_000 * 10**9, max_value=1_700_000_100 * 10**9),
        min_size=8,
        max_size=8,
    ),
)
def test_any_attribute_values_map_without_failing(
    attrs: list[dict[str, Any]], parents: list[int], times: list[int]
) -> None:
    from llmbase.otel import Span, plan

    trace = "ab" * 16
    sids = [f"{i + 1:016x}" for i in range(len(attrs))]
    spans = [
        Span(trace, sids[i], sids[parents[i] % len(sids)], "s", 0, times[2 * i], times[2 * i + 1], a)
        for i, a in enumerate(attrs)
    ]
    p = plan(spans)
    assert p.result.requests == sum(1 for k, _ in p.records if k == "request")
    assert p.result.requests + p.result.ignored + p.result.rejected <= len(spans)
    for kind, payload in p.records:
        assert kind in ("request", "run", "iteration", "tool_call") and payload
        json.dumps(payload, default=str)


def test_a_span_repeated_within_one_export_counts_once() -> None:
    from llmbase.otel import decode, plan

    s = span(*ids(), "chat", now_ns(), 10, chat_attrs())
    p = plan(decode(json.dumps(export([s, s])).encode(), "application/json"))
    assert p.result.requests == 1 and len(p.records) == 1
