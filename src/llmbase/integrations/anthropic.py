"""Anthropic SDK: messages.create (with and without stream=True) and the messages.stream()
helper, sync and async.

Usage is normalised to the request log's rule (tokens_prompt includes cached input):
Anthropic's input_tokens exclude cache reads and cache writes, so tokens_prompt =
input_tokens + cache_read_input_tokens + cache_creation_input_tokens, tokens_cached =
cache_read_input_tokens, and cache writes go to metadata.cache_write_tokens (priced at the
cache-write rate by llmbase.pricing).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anthropic
from anthropic.lib.streaming import AsyncMessageStream, MessageStream

from ._capture import (
    AsyncStreamProxy,
    Call,
    Instrumentation,
    StreamObserver,
    StreamProxy,
    dump,
    install_endpoints,
    internal_failure,
)
from ._replay import build, stream

if TYPE_CHECKING:
    from ..cache import CacheEntry

__all__ = ["detect_provider", "install", "usage_fields"]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _get(obj: Any, key: str) -> Any:
    if type(obj) is dict or isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def usage_fields(usage: Any) -> dict[str, Any]:
    """Token columns (and metadata.cache_write_tokens) from an Anthropic usage object."""
    if usage is None:
        return {}
    inp = _int(_get(usage, "input_tokens"))
    out = _int(_get(usage, "output_tokens"))
    read = _int(_get(usage, "cache_read_input_tokens")) or 0
    write = _int(_get(usage, "cache_creation_input_tokens")) or 0
    fields: dict[str, Any] = {}
    if inp is not None:
        fields["tokens_prompt"] = inp + read + write
        fields["tokens_cached"] = read
    if out is not None:
        fields["tokens_completion"] = out
    if fields:
        fields["tokens_total"] = fields.get("tokens_prompt", 0) + fields.get("tokens_completion", 0)
    if write:
        fields["metadata"] = {"cache_write_tokens": write}
    return fields


def _fields(call: Call, message: Any) -> dict[str, Any]:
    fields = usage_fields(getattr(message, "usage", None))
    meta = fields.pop("metadata", None)
    if meta:
        call.metadata(**meta)
    model = getattr(message, "model", None)
    if isinstance(model, str) and model:
        fields["model"] = model
    rid = getattr(message, "_request_id", None)  # documented: `message._request_id`
    if isinstance(rid, str):
        call.metadata(request_id=rid)
    if "request_body" in call.fields and message is not None:
        fields["response_body"] = dump(message)
    return fields


# -- messages.create(stream=True): raw events ---------------------------------------------
class _RawStream(StreamObserver):
    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self.message: dict[str, Any] = {}
        self.usage: dict[str, Any] = {}
        self.text: dict[int, list[str]] = {}

    def on_item(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            self.call.first_token()
            delta = getattr(event, "delta", None)
            text = getattr(delta, "text", None)
            if text:
                self.text.setdefault(getattr(event, "index", 0) or 0, []).append(text)
        elif kind == "message_start":
            msg = getattr(event, "message", None)
            self.message = {"id": getattr(msg, "id", None), "model": getattr(msg, "model", None)}
            self._usage(getattr(msg, "usage", None))
        elif kind == "message_delta":
            self._usage(getattr(event, "usage", None))
            delta = getattr(event, "delta", None)
            self.message["stop_reason"] = getattr(delta, "stop_reason", None)
        elif kind == "message_stop":
            self.complete = True
        return False

    def _usage(self, usage: Any) -> None:
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            value = _int(getattr(usage, key, None))
            if value is not None:
                self.usage[key] = value

    def result(self) -> dict[str, Any]:
        fields = usage_fields(self.usage)
        meta = fields.pop("metadata", None)
        if meta:
            self.call.metadata(**meta)
        if self.message.get("model"):
            fields["model"] = self.message["model"]
        if "request_body" in self.call.fields:
            fields["response_body"] = {
                **self.message,
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "".join(t)} for _, t in sorted(self.text.items())],
                "usage": self.usage,
                "streamed": True,
            }
        return fields


class _Replay:
    """Cached messages and event streams as the SDK's own types (see _replay.py)."""

    cache_type = "chat"

    def replay(self, sdk: Any, entry: CacheEntry, kwargs: Mapping[str, Any], is_async: bool) -> Any:
        if not entry.stream:
            return build(sdk, anthropic.types.Message, entry.response, "/v1/messages")
        cls = anthropic.AsyncStream if is_async else anthropic.Stream
        return stream(
            sdk, cls, anthropic.types.RawMessageStreamEvent, entry.response, done=False, path="/v1/messages"
        )

    def event_name(self, item: Any) -> str | None:
        return getattr(item, "type", None)


class _Messages(_Replay):
    """messages.create (stream or not)."""

    def begin(self, inst: Instrumentation, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any]]:
        return inst.start("chat", kwargs.get("model"), kwargs, stream=kwargs.get("stream") is True), kwargs

    def end(self, call: Call, result: Any) -> Any:
        if isinstance(result, anthropic.AsyncStream):
            return AsyncStreamProxy(result, _RawStream(call))
        if isinstance(result, anthropic.Stream):
            return StreamProxy(result, _RawStream(call))
        call.succeed(**_fields(call, result))
        return result


# -- messages.stream(): the helper's MessageStream ------------------------------------------
class _HelperStream(StreamObserver):
    """Reads usage from the helper's own accumulated snapshot (its public property)."""

    def __init__(self, call: Call, stream: Any) -> None:
        super().__init__(call)
        self.stream = stream

    def on_item(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind in ("content_block_delta", "text", "thinking", "input_json"):
            self.call.first_token()
        elif kind == "message_stop":
            self.complete = True
        return False

    def result(self) -> dict[str, Any]:
        try:
            message = self.stream.current_message_snapshot
        except AssertionError:  # no message_start was received
            return {}
        return _fields(self.call, message)


class _MessageStreamProxy(StreamProxy):
    """The helper's MessageStream, iterated through the observer; its conveniences
    (text_stream, until_done, get_final_message, get_final_text) read through the proxy."""

    def __init__(self, stream: Any, call: Call) -> None:
        super().__init__(stream, _HelperStream(call, stream))
        self.text_stream = self._llmbase_text()

    def _llmbase_text(self) -> Iterator[str]:
        for event in self:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    def until_done(self) -> None:
        for _ in self:
            pass

    def get_final_message(self) -> Any:
        self.until_done()
        return self._llmbase_stream.get_final_message()

    def get_final_text(self) -> str:
        self.until_done()
        text: str = self._llmbase_stream.get_final_text()
        return text


class _AsyncMessageStreamProxy(AsyncStreamProxy):
    def __init__(self, stream: Any, call: Call) -> None:
        super().__init__(stream, _HelperStream(call, stream))
        self.text_stream = self._llmbase_text()

    async def _llmbase_text(self) -> AsyncIterator[str]:
        async for event in self:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    async def until_done(self) -> None:
        async for _ in self:
            pass

    async def get_final_message(self) -> Any:
        await self.until_done()
        return await self._llmbase_stream.get_final_message()

    async def get_final_text(self) -> str:
        await self.until_done()
        text: str = await self._llmbase_stream.get_final_text()
        return text


def _drop_pending(manager: Any) -> None:
    """The async helper made its request coroutine up front; a hit never awaits it."""
    for value in list(vars(manager).values()):
        if inspect.iscoroutine(value):
            value.close()


class _ManagerProxy:
    """What messages.stream() returns: the request starts when the block is entered."""

    def __init__(self, manager: Any, call: Call, output_format: Any = anthropic.NOT_GIVEN) -> None:
        self._manager = manager
        self._call = call
        self._proxy: Any = None
        self._hit: Any = None  # a MessageStream over a cached stream
        self._output_format = output_format

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_manager"], name)

    def __enter__(self) -> Any:
        try:
            self._call.restart()
        except Exception:
            internal_failure("timing messages.stream()")
        ctl = self._call.control
        if ctl is not None:
            raw = ctl.lookup()
            if raw is not None:
                self._hit = MessageStream(raw, output_format=self._output_format)
                return self._hit
            ctl.admit()  # RateLimited / BudgetExceeded reach the caller
        try:
            stream = self._manager.__enter__()
        except BaseException as exc:
            self._call.fail(exc)
            raise
        try:
            self._proxy = _MessageStreamProxy(stream, self._call)
        except Exception:
            internal_failure("wrapping messages.stream()")
            return stream
        return self._proxy

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._hit is not None:
            self._hit.close()
            return
        try:
            self._manager.__exit__(et, ev, tb)
        finally:
            if self._proxy is not None:
                self._proxy._llmbase_obs.end()  # the caller's own error is not the call's

    async def __aenter__(self) -> Any:
        try:
            self._call.restart()
        except Exception:
            internal_failure("timing messages.stream()")
        ctl = self._call.control
        if ctl is not None:
            raw = await ctl.alookup()
            if raw is not None:
                _drop_pending(self._manager)
                self._hit = AsyncMessageStream(raw, output_format=self._output_format)
                return self._hit
            await ctl.aadmit()  # RateLimited / BudgetExceeded reach the caller
        try:
            stream = await self._manager.__aenter__()
        except BaseException as exc:
            self._call.fail(exc)
            raise
        try:
            self._proxy = _AsyncMessageStreamProxy(stream, self._call)
        except Exception:
            internal_failure("wrapping messages.stream()")
            return stream
        return self._proxy

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._hit is not None:
            await self._hit.close()
            return
        try:
            await self._manager.__aexit__(et, ev, tb)
        finally:
            if self._proxy is not None:
                self._proxy._llmbase_obs.end()  # the caller's own error is not the call's
                ctl = self._call.control
                if ctl is not None:
                    await ctl.afinish()


class _StreamHelper(_Replay):
    """messages.stream(...): a sync method returning a (sync or async) context manager."""

    sync_call = True  # a sync method on async clients too
    #: the helper's events that are raw stream events (stored; its conveniences are not)
    _RAW = frozenset(
        {
            "message_start",
            "message_delta",
            "message_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
        }
    )

    def keep(self, item: Any) -> bool:
        return getattr(item, "type", None) in self._RAW

    deferred = True  # the request (and the cache lookup) starts in __enter__

    def begin(self, inst: Instrumentation, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any]]:
        return inst.start("chat", kwargs.get("model"), kwargs, stream=True), kwargs

    def end(self, call: Call, result: Any) -> Any:
        request = call.control.kwargs if call.control is not None else {}
        return _ManagerProxy(result, call, request.get("output_format", anthropic.NOT_GIVEN))


def detect_provider(sdk_client: Any) -> str:
    names = {c.__name__ for c in type(sdk_client).__mro__}
    if any("Bedrock" in n for n in names):
        return "aws"
    if any("Vertex" in n for n in names):
        return "google"
    return "anthropic"


ENDPOINTS: tuple[tuple[tuple[str, ...], str, Any], ...] = (
    (("messages",), "create", _Messages()),
    (("messages",), "stream", _StreamHelper()),
)


def install(sdk_client: Any, inst: Instrumentation) -> None:
    install_endpoints(sdk_client, inst, ENDPOINTS)
