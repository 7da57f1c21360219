"""llmbase.instrument() on the official OpenAI SDK, driven over HTTP against the local stub
server (tests/stubs): what each call records, streams left unchanged for the caller, errors
mapped and re-raised as the provider's own exceptions. Records are captured through the
`log=` sink here; tests/test_instrument_db.py checks the same calls land in PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import socket
import wave
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import llmbase
from llmbase.integrations import uninstrument
from stubs import TEXT, USAGE, StubServer, running_stub


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with running_stub() as s:
        yield s


class Sink:
    """A log function that keeps what it is given (the writer's `log(**fields)` signature)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, **fields: Any) -> None:
        self.records.append(fields)

    def one(self) -> dict[str, Any]:
        assert len(self.records) == 1, self.records
        return self.records.pop()


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def oai(stub: StubServer, sink: Sink) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0)
    yield llmbase.instrument(c, log=sink)
    c.close()


@pytest.fixture
def bare(stub: StubServer) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0)
    yield c
    c.close()


MSGS = [{"role": "user", "content": "Say hello"}]


def _usage_ok(rec: dict[str, Any], reasoning: bool = True) -> None:
    assert rec["tokens_prompt"] == USAGE["prompt"]
    assert rec["tokens_completion"] == USAGE["completion"]
    assert rec["tokens_total"] == USAGE["total"]
    assert rec["tokens_cached"] == USAGE["cached"]
    if reasoning:
        assert rec["tokens_reasoning"] == USAGE["reasoning"]


# -- chat completions ---------------------------------------------------------------------
def test_chat_completion_records_usage_latency_bodies(oai: openai.OpenAI, sink: Sink) -> None:
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, temperature=0)
    assert reply.choices[0].message.content == TEXT
    rec = sink.one()
    assert rec["request_type"] == "chat"
    assert rec["provider"] == "openai"
    assert rec["model"] == "gpt-4o-mini"
    assert rec["status"] == "success"
    assert rec["stream"] is False
    assert rec["latency_ms"] > 0
    assert "ttft_ms" not in rec
    _usage_ok(rec)
    assert rec["request_body"] == {"model": "gpt-4o-mini", "messages": MSGS, "temperature": 0}
    assert rec["response_body"]["choices"][0]["message"]["content"] == TEXT
    assert rec["created_at"].tzinfo is not None


def test_request_body_is_a_snapshot(oai: openai.OpenAI, sink: Sink) -> None:
    messages = [{"role": "user", "content": "one"}]
    oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
    messages.append({"role": "assistant", "content": "two"})  # the app keeps its history
    assert sink.one()["request_body"]["messages"] == [{"role": "user", "content": "one"}]


def test_chat_stream_is_unchanged_for_the_caller(
    oai: openai.OpenAI, bare: openai.OpenAI, sink: Sink, stub: StubServer
) -> None:
    def contents(client: openai.OpenAI) -> list[Any]:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
        assert isinstance(stream, openai.Stream)
        return [(len(c.choices), c.choices[0].delta.content if c.choices else None, c.usage) for c in stream]

    expected = contents(bare)
    got = contents(oai)
    assert got == expected  # no extra usage-only chunk, although llmbase asked for usage
    assert stub.last("/chat/completions").body["stream_options"] == {"include_usage": True}
    rec = sink.one()
    assert rec["stream"] is True
    assert rec["status"] == "success"
    _usage_ok(rec)
    assert 0 < rec["ttft_ms"] <= rec["latency_ms"]
    assert rec["response_body"]["choices"][0]["message"]["content"] == TEXT


def test_chat_stream_keeps_callers_stream_options(oai: openai.OpenAI, sink: Sink, stub: StubServer) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # the caller asked: kept
    assert stub.last("/chat/completions").body["stream_options"] == {"include_usage": True}
    _usage_ok(sink.one())


def test_chat_stream_include_usage_off(stub: StubServer, sink: Sink) -> None:
    with openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0) as c:
        llmbase.instrument(c, log=sink, include_usage=False)
        list(c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert "stream_options" not in stub.last("/chat/completions").body
    rec = sink.one()
    assert rec["status"] == "success" and "tokens_prompt" not in rec


def test_chat_stream_timing_ttft_before_end(oai: openai.OpenAI, sink: Sink) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, extra_headers={"x-stub-chunk-delay": "0.02"}
    )
    for _ in stream:
        pass
    rec = sink.one()
    # 8 chunks 20 ms apart: the first token comes ~40 ms in, the end ~160 ms in.
    assert rec["latency_ms"] - rec["ttft_ms"] >= 80


def test_chat_stream_context_manager_and_early_close(oai: openai.OpenAI, sink: Sink) -> None:
    with oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True) as stream:
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
    rec = sink.one()
    assert rec["status"] == "cancelled"  # the caller stopped reading
    assert rec["latency_ms"] > 0


def test_chat_stream_break_then_garbage_collected(oai: openai.OpenAI, sink: Sink) -> None:
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    for _ in stream:
        break
    assert sink.records == []  # still open: the caller may go on reading
    del stream  # no reference cycle: recorded at once, without waiting for the collector
    rec = sink.one()
    assert rec["status"] == "cancelled"
    never_read = oai.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    del never_read
    assert sink.one()["status"] == "cancelled"


def test_chat_stream_error_mid_stream(oai: openai.OpenAI, sink: Sink) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True, extra_headers={"x-stub-scenario": "midstream-error"}
    )
    with pytest.raises(openai.APIConnectionError):
        for _ in stream:
            pass
    rec = sink.one()
    assert rec["status"] == "error"
    assert rec["error_kind"] == "APIConnectionError"
    assert rec["ttft_ms"] > 0  # some tokens had arrived


def test_chat_stream_helper_logs_once(oai: openai.OpenAI, sink: Sink) -> None:
    with oai.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == TEXT
    rec = sink.one()
    assert rec["stream"] is True
    _usage_ok(rec)


def test_chat_parse(oai: openai.OpenAI, sink: Sink) -> None:
    parsed = oai.chat.completions.parse(model="gpt-4o-mini", messages=MSGS)
    assert parsed.choices[0].message.content == TEXT
    rec = sink.one()
    assert rec["stream"] is False
    _usage_ok(rec)


def test_legacy_completions(oai: openai.OpenAI, sink: Sink) -> None:
    result = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")
    assert result.choices[0].text == TEXT
    rec = sink.one()
    assert rec["request_type"] == "completion"
    _usage_ok(rec)


# -- responses ------------------------------------------------------------------------------
def test_responses_create(oai: openai.OpenAI, sink: Sink) -> None:
    resp = oai.responses.create(model="gpt-4o-mini", input="Say hello")
    assert resp.output_text == TEXT
    rec = sink.one()
    assert rec["request_type"] == "chat" and rec["metadata"]["api"] == "responses"
    _usage_ok(rec)
    assert rec["response_body"]["output"][0]["content"][0]["text"] == TEXT


def test_responses_stream(oai: openai.OpenAI, sink: Sink) -> None:
    events = [e.type for e in oai.responses.create(model="gpt-4o-mini", input="hi", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    rec = sink.one()
    assert rec["stream"] is True and rec["status"] == "success"
    _usage_ok(rec)
    assert 0 < rec["ttft_ms"] <= rec["latency_ms"]


def test_responses_stream_helper(oai: openai.OpenAI, sink: Sink) -> None:
    with oai.responses.stream(model="gpt-4o-mini", input="hi") as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().output_text == TEXT
    _usage_ok(sink.one())


# -- embeddings -----------------------------------------------------------------------------
def test_embeddings(oai: openai.OpenAI, sink: Sink) -> None:
    result = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8  # base64 decoded by the SDK
    rec = sink.one()
    assert rec["request_type"] == "embedding"
    assert rec["tokens_prompt"] == USAGE["embedding_prompt"] == rec["tokens_total"]
    assert "tokens_completion" not in rec
    body = rec["response_body"]
    assert body["data"] == [{"index": 0, "dimensions": 8}, {"index": 1, "dimensions": 8}]  # no vectors


# -- audio transcriptions -------------------------------------------------------------------
def _wav(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return buf.getvalue()


def test_transcription_whisper_duration(oai: openai.OpenAI, sink: Sink, stub: StubServer) -> None:
    audio = _wav(1.5)
    result = oai.audio.transcriptions.create(model="whisper-1", file=("clip.wav", audio, "audio/wav"))
    assert result.text == TEXT
    assert stub.last("/audio/transcriptions").body["file"]["bytes"] == len(audio)
    rec = sink.one()
    assert rec["request_type"] == "transcription"
    assert rec["audio_format"] == "wav"
    assert rec["audio_bytes"] == len(audio)
    assert rec["audio_duration_s"] == USAGE["transcription_seconds"]  # billed seconds, from usage
    assert rec["request_body"]["file"] == {"format": "wav", "bytes": len(audio)}


def test_transcription_tokens_and_wav_header_duration(oai: openai.OpenAI, sink: Sink) -> None:
    audio = _wav(2.0)
    oai.audio.transcriptions.create(model="gpt-4o-transcribe", file=("clip.wav", audio))
    rec = sink.one()
    assert rec["audio_duration_s"] == pytest.approx(2.0)
    assert rec["tokens_prompt"] == USAGE["prompt"] and rec["tokens_completion"] == USAGE["completion"]


def test_transcription_formats(oai: openai.OpenAI, sink: Sink, tmp_path: Any) -> None:
    path = tmp_path / "talk.mp3"
    path.write_bytes(b"ID3" + b"\x00" * 997)
    text = oai.audio.transcriptions.create(model="whisper-1", file=path, response_format="text")
    assert text.strip() == TEXT
    rec = sink.one()
    assert rec["audio_format"] == "mp3" and rec["audio_bytes"] == 1000
    assert rec["response_body"] == {"text": text}
    with path.open("rb") as f:
        verbose = oai.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
    assert verbose.duration == USAGE["transcription_seconds"]
    rec = sink.one()
    assert rec["audio_bytes"] == 1000 and rec["audio_duration_s"] == USAGE["transcription_seconds"]


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scenario", "exc", "status", "http"),
    [
        ("429", openai.RateLimitError, "rate_limited", 429),
        ("500", openai.InternalServerError, "error", 500),
        ("400", openai.BadRequestError, "error", 400),
    ],
)
def test_api_errors_are_recorded_and_reraised(
    oai: openai.OpenAI, sink: Sink, scenario: str, exc: type[Exception], status: str, http: int
) -> None:
    with pytest.raises(exc) as info:
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, extra_headers={"x-stub-scenario": scenario}
        )
    assert type(info.value) is exc
    assert info.value.status_code == http  # type: ignore[attr-defined]
    if scenario == "429":
        assert info.value.response.headers["retry-after"] == "1"  # type: ignore[attr-defined]
    rec = sink.one()
    assert rec["status"] == status
    assert rec["http_status"] == http
    assert rec["error_kind"] == exc.__name__
    assert rec["error_message"]
    assert rec["response_body"]["message"]  # the provider's error JSON


def test_timeout(oai: openai.OpenAI, sink: Sink) -> None:
    with pytest.raises(openai.APITimeoutError):
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=MSGS,
            timeout=0.2,
            extra_headers={"x-stub-scenario": "slow", "x-stub-delay": "1"},
        )
    rec = sink.one()
    assert rec["status"] == "timeout" and rec["http_status"] is None
    assert rec["latency_ms"] >= 190


def test_connection_error(sink: Sink) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0) as c:
        llmbase.instrument(c, log=sink)
        with pytest.raises(openai.APIConnectionError):
            c.embeddings.create(model="text-embedding-3-small", input="x")
    rec = sink.one()
    assert rec["status"] == "error" and rec["error_kind"] == "APIConnectionError"


def test_the_providers_exception_object_is_reraised_unchanged(sink: Sink) -> None:
    from llmbase.integrations._capture import Instrumentation, Options, wrap
    from llmbase.integrations.openai import ENDPOINTS

    boom = openai.OpenAIError("boom")

    def create(**kwargs: Any) -> Any:
        raise boom

    inst = Instrumentation("openai", None, sink, Options())
    wrapped = wrap(create, inst, ENDPOINTS[0][2])
    with pytest.raises(openai.OpenAIError) as info:
        wrapped(model="m", messages=[])
    assert info.value is boom
    assert boom.__context__ is None and boom.__cause__ is None
    assert sink.one()["status"] == "error"


# -- never raising, idempotence, scope ------------------------------------------------------
def test_llmbase_failures_never_reach_the_app(stub: StubServer) -> None:
    def broken_log(**fields: Any) -> None:
        raise RuntimeError("the log is down")

    with openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0) as c:
        llmbase.instrument(c, log=broken_log)
        assert (
            c.chat.completions.create(model="gpt-4o-mini", messages=MSGS).choices[0].message.content == TEXT
        )
        chunks = list(c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
        assert len(chunks) == 7
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="m", messages=MSGS, extra_headers={"x-stub-scenario": "429"})


def test_llmbase_client_without_writer_never_raises(stub: StubServer) -> None:
    class NoWriter:
        @property
        def requests(self) -> Any:
            raise RuntimeError("no writer")

    with openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0) as c:
        llmbase.instrument(c, NoWriter())
        assert c.embeddings.create(model="text-embedding-3-small", input="x").data


def test_instrument_is_idempotent_and_per_instance(stub: StubServer, sink: Sink) -> None:
    c = openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0)
    other = openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0)
    assert llmbase.instrument(c, log=sink) is c
    assert llmbase.instrument(c, log=sink, tags=["v2"]) is c
    c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert sink.one()["tags"] == ["v2"]  # one record, with the latest settings
    other.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert sink.records == []  # the class was not patched
    assert (
        "create" not in vars(type(c.chat.completions))
        or type(c.chat.completions).create is not c.chat.completions.create
    )
    uninstrument(c)
    c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert sink.records == []
    c.close()
    other.close()


def test_with_options_copies_stay_instrumented(oai: openai.OpenAI, sink: Sink) -> None:
    oai.with_options(timeout=5).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert sink.one()["status"] == "success"


def test_options_tags_metadata_no_bodies(stub: StubServer, sink: Sink) -> None:
    with openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0) as c:
        llmbase.instrument(
            c, log=sink, capture_bodies=False, tags=["prod"], metadata={"app": "docs"}, provider="acme"
        )
        c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    rec = sink.one()
    assert "request_body" not in rec and "response_body" not in rec
    assert rec["tags"] == ["prod"] and rec["metadata"] == {"app": "docs"} and rec["provider"] == "acme"


# -- async ----------------------------------------------------------------------------------
async def test_async_chat_stream_and_errors(stub: StubServer, sink: Sink) -> None:
    c = llmbase.instrument(
        openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), log=sink
    )
    reply = await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert reply.choices[0].message.content == TEXT
    _usage_ok(sink.one())

    stream = await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    pieces = [ch.choices[0].delta.content async for ch in stream]
    assert "".join(p for p in pieces if p) == TEXT and len(pieces) == 7
    rec = sink.one()
    _usage_ok(rec)
    assert rec["ttft_ms"] > 0

    emb = await c.embeddings.create(model="text-embedding-3-small", input="x")
    assert emb.data and sink.one()["request_type"] == "embedding"

    with pytest.raises(openai.RateLimitError):
        await c.responses.create(model="gpt-4o-mini", input="x", extra_headers={"x-stub-scenario": "429"})
    assert sink.one()["status"] == "rate_limited"

    task = asyncio.ensure_future(
        c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers={"x-stub-delay": "1"})
    )
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.one()["status"] == "cancelled"
    await c.close()


async def test_async_stream_helpers(stub: StubServer, sink: Sink) -> None:
    c = llmbase.instrument(
        openai.AsyncOpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=0), log=sink
    )
    async with c.chat.completions.stream(model="gpt-4o-mini", messages=MSGS) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == TEXT
    _usage_ok(sink.one())
    async with c.responses.stream(model="gpt-4o-mini", input="hi") as rstream:
        async for _ in rstream:
            pass
        assert (await rstream.get_final_response()).output_text == TEXT
    rec = sink.one()
    _usage_ok(rec)
    assert rec["ttft_ms"] > 0
    await c.close()
