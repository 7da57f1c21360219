"""llmbase.instrument() on the official Anthropic SDK against the local stub server:
messages.create (JSON and stream=True), the messages.stream() helper, errors, async."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

import llmbase
from stubs import TEXT, USAGE, StubServer, running_stub


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with running_stub() as s:
        yield s


class Sink:
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
def client(stub: StubServer, sink: Sink) -> Iterator[anthropic.Anthropic]:
    c = anthropic.Anthropic(base_url=stub.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    yield llmbase.instrument(c, log=sink)
    c.close()


MODEL = "claude-3-5-sonnet-latest"
MSGS = [{"role": "user", "content": "Say hello"}]


def _usage_ok(rec: dict[str, Any]) -> None:
    # Anthropic's input_tokens (8) exclude the 4 cache reads: the log's prompt includes them.
    assert rec["tokens_prompt"] == USAGE["anthropic_input"] + USAGE["cached"] == USAGE["prompt"]
    assert rec["tokens_cached"] == USAGE["cached"]
    assert rec["tokens_completion"] == USAGE["completion"]
    assert rec["tokens_total"] == USAGE["total"]


def test_messages_create(client: anthropic.Anthropic, sink: Sink) -> None:
    msg = client.messages.create(model=MODEL, max_tokens=64, messages=MSGS)
    assert msg.content[0].text == TEXT  # type: ignore[union-attr]
    rec = sink.one()
    assert rec["provider"] == "anthropic" and rec["request_type"] == "chat"
    assert rec["model"] == MODEL and rec["status"] == "success" and rec["stream"] is False
    _usage_ok(rec)
    assert rec["request_body"] == {"model": MODEL, "max_tokens": 64, "messages": MSGS}
    assert rec["response_body"]["content"][0]["text"] == TEXT


def test_messages_create_stream(client: anthropic.Anthropic, sink: Sink) -> None:
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True)
    assert isinstance(stream, anthropic.Stream)
    kinds = [e.type for e in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    rec = sink.one()
    assert rec["stream"] is True and rec["status"] == "success"
    _usage_ok(rec)
    assert 0 < rec["ttft_ms"] <= rec["latency_ms"]
    assert rec["response_body"]["content"] == [{"type": "text", "text": TEXT}]


def test_stream_helper_text_stream_and_final_message(client: anthropic.Anthropic, sink: Sink) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=MSGS, extra_headers={"x-stub-chunk-delay": "0.01"}
    ) as stream:
        assert "".join(stream.text_stream) == TEXT
        final = stream.get_final_message()
        assert stream.get_final_text() == TEXT
    assert final.usage.output_tokens == USAGE["completion"]
    rec = sink.one()
    assert rec["stream"] is True and rec["status"] == "success"
    _usage_ok(rec)
    assert rec["ttft_ms"] < rec["latency_ms"]
    assert rec["response_body"]["content"][0]["text"] == TEXT


def test_stream_helper_get_final_message_without_iterating(client: anthropic.Anthropic, sink: Sink) -> None:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MSGS) as stream:
        assert stream.get_final_text() == TEXT
    _usage_ok(sink.one())


def test_stream_helper_left_early_is_cancelled(client: anthropic.Anthropic, sink: Sink) -> None:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MSGS) as stream:
        next(iter(stream))
    rec = sink.one()
    assert rec["status"] == "cancelled"


def test_stream_helper_error_on_enter(client: anthropic.Anthropic, sink: Sink) -> None:
    with (
        pytest.raises(anthropic.RateLimitError),
        client.messages.stream(
            model=MODEL, max_tokens=64, messages=MSGS, extra_headers={"x-stub-scenario": "429"}
        ),
    ):
        pytest.fail("not reached")
    rec = sink.one()
    assert rec["status"] == "rate_limited" and rec["http_status"] == 429


def test_callers_own_error_inside_the_stream_block_is_not_the_calls(
    client: anthropic.Anthropic, sink: Sink
) -> None:
    def app() -> None:
        with client.messages.stream(model=MODEL, max_tokens=64, messages=MSGS) as stream:
            stream.until_done()
            raise KeyError("app bug")

    with pytest.raises(KeyError):
        app()
    assert sink.one()["status"] == "success"


@pytest.mark.parametrize(
    ("scenario", "exc", "status", "http", "kind"),
    [
        ("429", anthropic.RateLimitError, "rate_limited", 429, "rate_limit_error"),
        ("500", anthropic.InternalServerError, "error", 500, "api_error"),
        ("400", anthropic.BadRequestError, "error", 400, "invalid_request_error"),
        ("529", anthropic.OverloadedError, "error", 529, "overloaded_error"),
    ],
)
def test_errors(
    client: anthropic.Anthropic,
    sink: Sink,
    scenario: str,
    exc: type[Exception],
    status: str,
    http: int,
    kind: str,
) -> None:
    with pytest.raises(exc) as info:
        client.messages.create(
            model=MODEL, max_tokens=8, messages=MSGS, extra_headers={"x-stub-scenario": scenario}
        )
    assert type(info.value) is exc
    rec = sink.one()
    assert (rec["status"], rec["http_status"], rec["error_kind"]) == (status, http, exc.__name__)
    assert rec["response_body"]["error"]["type"] == kind
    assert rec["metadata"]["request_id"] == "req_stub"


def test_timeout(client: anthropic.Anthropic, sink: Sink) -> None:
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=MSGS,
            timeout=0.2,
            extra_headers={"x-stub-scenario": "slow", "x-stub-delay": "1"},
        )
    assert sink.one()["status"] == "timeout"


def test_cache_writes_go_to_metadata() -> None:
    from llmbase.integrations.anthropic import usage_fields

    fields = usage_fields(
        {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_read_input_tokens": 5,
            "cache_creation_input_tokens": 7,
        }
    )
    assert fields == {
        "tokens_prompt": 22,
        "tokens_cached": 5,
        "tokens_completion": 3,
        "tokens_total": 25,
        "metadata": {"cache_write_tokens": 7},
    }


async def test_async_create_stream_and_helper(stub: StubServer, sink: Sink) -> None:
    c = llmbase.instrument(
        anthropic.AsyncAnthropic(base_url=stub.anthropic_base_url, api_key="k", max_retries=0), log=sink
    )
    msg = await c.messages.create(model=MODEL, max_tokens=64, messages=MSGS)
    assert msg.content[0].text == TEXT  # type: ignore[union-attr]
    _usage_ok(sink.one())

    stream = await c.messages.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    assert [e.type async for e in stream][-1] == "message_stop"
    _usage_ok(sink.one())

    async with c.messages.stream(model=MODEL, max_tokens=64, messages=MSGS) as s:
        text = "".join([t async for t in s.text_stream])
        assert await s.get_final_text() == text == TEXT
    rec = sink.one()
    _usage_ok(rec)
    assert rec["ttft_ms"] > 0

    with pytest.raises(anthropic.RateLimitError):
        async with c.messages.stream(
            model=MODEL, max_tokens=8, messages=MSGS, extra_headers={"x-stub-scenario": "429"}
        ):
            pass
    assert sink.one()["status"] == "rate_limited"
    await c.close()
