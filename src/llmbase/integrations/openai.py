"""OpenAI SDK: chat completions (and `.parse`, `.stream`), responses (and `.parse`, `.stream`),
legacy completions, embeddings and audio transcriptions, sync and async.

Where usage lives: chat/completions/embeddings report prompt_tokens, completion_tokens,
total_tokens, prompt_tokens_details.cached_tokens and completion_tokens_details.reasoning_tokens;
responses report input_tokens/output_tokens and their *_details; transcriptions report
tokens (gpt-4o-transcribe) or seconds of audio (whisper-1).

Streaming chat completions report usage only when the request sets
`stream_options={"include_usage": True}`. When the caller did not set `stream_options`,
llmbase asks for it and removes the extra usage-only chunk (empty `choices`) from what
the caller iterates, so the caller sees the same chunks as without llmbase
(`instrument(..., include_usage=False)` turns this off; usage is then unknown).
"""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import openai

from ._capture import (
    AsyncStreamProxy,
    Call,
    Instrumentation,
    StreamObserver,
    StreamProxy,
    dump,
    given,
    install_endpoints,
)
from ._replay import build, stream

if TYPE_CHECKING:
    from ..cache import CacheEntry

__all__ = ["ENDPOINTS", "detect_provider", "install", "usage_fields"]


def usage_fields(usage: Any) -> dict[str, Any]:
    """Token columns from an OpenAI usage object (chat, responses, embeddings, transcription)."""
    if usage is None:
        return {}

    def get(key: str) -> Any:
        return _sub(usage, key)

    out: dict[str, Any] = {}
    if get("type") == "duration":  # whisper: billed per second of audio
        seconds = get("seconds")
        if isinstance(seconds, int | float):
            out["audio_duration_s"] = float(seconds)
        return out
    prompt = get("prompt_tokens")
    if prompt is None:
        prompt = get("input_tokens")
    completion = get("completion_tokens")
    if completion is None:
        completion = get("output_tokens")
    details = get("prompt_tokens_details") or get("input_tokens_details")
    out_details = get("completion_tokens_details") or get("output_tokens_details")
    cached = _sub(details, "cached_tokens")
    reasoning = _sub(out_details, "reasoning_tokens")
    for key, value in (
        ("tokens_prompt", prompt),
        ("tokens_completion", completion),
        ("tokens_total", get("total_tokens")),
        ("tokens_cached", cached),
        ("tokens_reasoning", reasoning),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = value
    if "tokens_total" not in out and ("tokens_prompt" in out or "tokens_completion" in out):
        out["tokens_total"] = out.get("tokens_prompt", 0) + out.get("tokens_completion", 0)
    return out


def _sub(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if type(obj) is dict or isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _request_id(call: Call, result: Any) -> None:
    rid = getattr(result, "_request_id", None)  # documented: `response._request_id`
    if isinstance(rid, str):
        call.metadata(request_id=rid)


def _is_stream(result: Any) -> bool:
    return isinstance(result, openai.Stream | openai.AsyncStream)


def _proxy(result: Any, observer: StreamObserver) -> Any:
    if isinstance(result, openai.AsyncStream):
        return AsyncStreamProxy(result, observer)
    return StreamProxy(result, observer)


# -- replaying cached responses ------------------------------------------------------------
def _wants_usage(kwargs: Mapping[str, Any]) -> bool:
    opts = kwargs.get("stream_options")
    return given(opts) and isinstance(opts, Mapping) and bool(opts.get("include_usage"))


def _usage_only(data: Any) -> bool:
    return isinstance(data, dict) and data.get("choices") == [] and data.get("usage") is not None


class _Replay:
    """Cached bodies and streams as the SDK's own types (see _replay.py)."""

    cache_type: str | None = None
    path = "/"
    body_type: Any = None
    item_type: Any = None
    named_events = False  # the stream's SSE events carry `event:` names (responses)

    def replay(self, sdk: Any, entry: CacheEntry, kwargs: Mapping[str, Any], is_async: bool) -> Any:
        if not entry.stream:
            return build(sdk, self.body_type, entry.response, self.path)
        events = entry.response
        if self.cache_type in ("chat", "completion") and not _wants_usage(kwargs):
            events = [e for e in events if not _usage_only(e[1])]  # llmbase asked for it, not the caller
        cls = openai.AsyncStream if is_async else openai.Stream
        return stream(sdk, cls, self.item_type, events, done=not self.named_events, path=self.path)

    def event_name(self, item: Any) -> str | None:
        return getattr(item, "type", None) if self.named_events else None


# -- chat completions (and legacy completions) ----------------------------------------------
class _ChatStream(StreamObserver):
    def __init__(self, call: Call, hide_usage_chunk: bool) -> None:
        super().__init__(call)
        self.hide_usage_chunk = hide_usage_chunk
        self.usage: Any = None
        self.model: str | None = None
        self.id: str | None = None
        self.text: dict[int, list[str]] = {}
        self.tools: dict[int, dict[int, dict[str, Any]]] = {}
        self.finish: dict[int, str] = {}

    def on_item(self, chunk: Any) -> bool:
        choices = getattr(chunk, "choices", None) or ()
        if self.model is None:
            self.model = getattr(chunk, "model", None)
            self.id = getattr(chunk, "id", None)
        for choice in choices:
            idx = getattr(choice, "index", 0) or 0
            delta = getattr(choice, "delta", None)
            piece = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
            if piece:
                self.call.first_token()
                self.text.setdefault(idx, []).append(piece)
            for tc in (getattr(delta, "tool_calls", None) or ()) if delta is not None else ():
                self.call.first_token()
                slot = self.tools.setdefault(idx, {}).setdefault(
                    getattr(tc, "index", 0) or 0, {"id": None, "name": "", "arguments": ""}
                )
                fn = getattr(tc, "function", None)
                slot["id"] = slot["id"] or getattr(tc, "id", None)
                slot["name"] += getattr(fn, "name", None) or ""
                slot["arguments"] += getattr(fn, "arguments", None) or ""
            reason = getattr(choice, "finish_reason", None)
            if reason:
                self.finish[idx] = reason
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
            return self.hide_usage_chunk and not choices
        return False

    def result(self) -> dict[str, Any]:
        out = usage_fields(self.usage)
        if self.model:
            out["model"] = self.model
        if "request_body" in self.call.fields:
            choices = []
            for idx in sorted(set(self.text) | set(self.tools) | set(self.finish)):
                message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text.get(idx, ()))}
                if idx in self.tools:
                    message["tool_calls"] = [
                        {
                            "id": t["id"],
                            "type": "function",
                            "function": {"name": t["name"], "arguments": t["arguments"]},
                        }
                        for _, t in sorted(self.tools[idx].items())
                    ]
                choices.append({"index": idx, "message": message, "finish_reason": self.finish.get(idx)})
            out["response_body"] = {
                "id": self.id,
                "model": self.model,
                "choices": choices,
                "usage": dump(self.usage),
                "streamed": True,
            }
        return out


class _Chat(_Replay):
    """chat.completions.create / .parse, completions.create."""

    def __init__(self, request_type: str = "chat", streaming: bool = True, cacheable: bool = True) -> None:
        self.request_type = request_type
        self.streaming = streaming
        if cacheable:  # not .parse: its parsed output depends on the caller's classes
            self.cache_type = request_type
        if request_type == "chat":
            self.path = "/chat/completions"
            self.body_type = openai.types.chat.ChatCompletion
            self.item_type = openai.types.chat.ChatCompletionChunk
        else:
            self.path = "/completions"
            self.body_type = self.item_type = openai.types.Completion

    def begin(self, inst: Instrumentation, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any]]:
        stream = self.streaming and kwargs.get("stream") is True
        call = inst.start(self.request_type, kwargs.get("model"), kwargs, stream=stream)
        send = kwargs
        if stream and inst.options.include_usage and not given(kwargs.get("stream_options")):
            send = {**kwargs, "stream_options": {"include_usage": True}}
            call.hide_usage = True
        return call, send

    def end(self, call: Call, result: Any) -> Any:
        if _is_stream(result):
            return _proxy(result, _ChatStream(call, call.hide_usage))
        _request_id(call, result)
        fields = usage_fields(getattr(result, "usage", None))
        model = getattr(result, "model", None)
        if isinstance(model, str):
            fields["model"] = model
        if "request_body" in call.fields:
            fields["response_body"] = dump(result)
        call.succeed(**fields)
        return result


# -- responses ------------------------------------------------------------------------------
class _ResponsesStream(StreamObserver):
    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self.response: Any = None
        self.error: str | None = None

    def on_item(self, event: Any) -> bool:
        kind = getattr(event, "type", "") or ""
        if kind.endswith(".delta"):
            self.call.first_token()
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.response = getattr(event, "response", None)
            if kind == "response.failed":
                err = getattr(self.response, "error", None)
                self.error = str(getattr(err, "message", None) or "response.failed")
        elif kind == "error":
            self.error = str(getattr(event, "message", None) or "error event")
        return False

    def result(self) -> dict[str, Any]:
        resp = self.response
        out = usage_fields(getattr(resp, "usage", None))
        model = getattr(resp, "model", None)
        if isinstance(model, str):
            out["model"] = model
        if resp is not None and "request_body" in self.call.fields:
            out["response_body"] = dump(resp)
        return out

    def end(self, exc: BaseException | None = None) -> None:
        if exc is None and self.error is not None and not self.call.done:
            fields = self.result()
            self.call.succeed(
                "error", error_kind="response.failed", error_message=self.error[:10_000], **fields
            )
            return
        super().end(exc)


class _Responses(_Replay):
    """responses.create / .parse (and .stream, which calls create)."""

    request_type = "chat"
    path = "/responses"
    named_events = True

    def __init__(self, cacheable: bool = True) -> None:
        self.cache_type = "chat" if cacheable else None
        self.body_type = openai.types.responses.Response
        self.item_type = openai.types.responses.ResponseStreamEvent

    def begin(self, inst: Instrumentation, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any]]:
        call = inst.start("chat", kwargs.get("model"), kwargs, stream=kwargs.get("stream") is True)
        call.metadata(api="responses")
        return call, kwargs

    def end(self, call: Call, result: Any) -> Any:
        if _is_stream(result):
            return _proxy(result, _ResponsesStream(call))
        _request_id(call, result)
        fields = usage_fields(getattr(result, "usage", None))
        model = getattr(result, "model", None)
        if isinstance(model, str):
            fields["model"] = model
        if "request_body" in call.fields:
            fields["response_body"] = dump(result)
        if getattr(result, "status", None) == "failed":
            err = getattr(result, "error", None)
            msg = str(getattr(err, "message", None) or "response.failed")
            call.succeed("error", error_kind="response.failed", error_message=msg[:10_000], **fields)
        else:
            call.succeed(**fields)
        return result


# -- embeddings -----------------------------------------------------------------------------
class _Embeddings(_Replay):
    cache_type = "embedding"
    path = "/embeddings"
    body_type = openai.types.CreateEmbeddingResponse

    def begin(self, inst: Instrumentation, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any]]:
        return inst.start("embedding", kwargs.get("model"), kwargs, stream=False), kwargs

    def end(self, call: Call, result: Any) -> Any:
        _request_id(call, result)
        fields = usage_fields(getattr(result, "usage", None))
        fields.pop("tokens_completion", None)
        model = getattr(result, "model", None)
        if isinstance(model, str) and model:
            fields["model"] = model
        if "request_body" in call.fields:
            data = getattr(result, "data", None) or []
            # The vectors are the caller's; the log keeps their count and dimensions.
            fields["response_body"] = {
                "object": "list",
                "model": model,
                "data": [
                    {"index": getattr(d, "index", i), "dimensions": _dims(getattr(d, "embedding", None))}
                    for i, d in enumerate(data)
                ],
                "usage": dump(getattr(result, "usage", None)),
            }
        call.succeed(**fields)
        return result


def _dims(vec: Any) -> int | None:
    if isinstance(vec, list):
        return len(vec)
    return None


# -- audio transcriptions -------------------------------------------------------------------
_AUDIO_TYPES = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp4": "m4a"}


def _audio_meta(file: Any) -> dict[str, Any]:
    """Format, size and (for WAV) duration of the `file` argument, without consuming it."""
    name: Any = None
    content: Any = file
    ctype: Any = None
    if isinstance(file, tuple):
        name = file[0] if len(file) > 0 else None
        content = file[1] if len(file) > 1 else None
        ctype = file[2] if len(file) > 2 else None
    elif isinstance(file, os.PathLike):
        name = os.fspath(file)
    else:
        name = getattr(file, "name", None)
    out: dict[str, Any] = {}
    fmt = None
    if isinstance(name, str | os.PathLike) and "." in os.fspath(name):
        fmt = os.fspath(name).rsplit(".", 1)[-1].lower()
    elif isinstance(ctype, str):
        fmt = _AUDIO_TYPES.get(ctype)
    if fmt:
        out["audio_format"] = fmt[:50]
    head = b""
    if isinstance(content, bytes | bytearray):
        out["audio_bytes"] = len(content)
        head = bytes(content[:64])
    elif isinstance(content, os.PathLike):
        out["audio_bytes"] = os.path.getsize(content)
    elif hasattr(content, "seek") and hasattr(content, "tell"):
        pos = content.tell()
        content.seek(0, io.SEEK_END)
        out["audio_bytes"] = content.tell() - pos
        content.seek(pos)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE" and isinstance(content, bytes | bytearray):
        try:
            with wave.open(io.BytesIO(content)) as w:
                out["audio_duration_s"] = w.getnframes() / float(w.getframerate())
        except (wave.Error, EOFError, ZeroDivisionError):
            pass
    return out


class _TranscriptionStream(StreamObserver):
    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self.usage: Any = None
        self.text: str | None = None

    def on_item(self, event: Any) -> bool:
        kind = getattr(event, "type", "") or ""
        if kind.endswith(".delta"):
            self.call.first_token()
        elif kind.endswith(".done"):
            self.usage = getattr(event, "usage", None)
            self.text = getattr(event, "text", None)
        return False

    def result(self) -> dict[str, Any]:
        out = usage_fields(self.usage)
        if "request_body" in self.call.fields:
            out["response_body"] = {"text": self.text, "usage": dump(self.usage), "streamed": True}
        return out


class _Transcriptions:
    def begin(self, inst: Instrumentation, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any]]:
        request = {k: v for k, v in kwargs.items() if k != "file"}
        meta: dict[str, Any] = {}
        try:
            meta = _audio_meta(kwargs.get("file"))
        except Exception:  # an unreadable file object: the SDK will say so
            meta = {}
        request["file"] = {"format": meta.get("audio_format"), "bytes": meta.get("audio_bytes")}
        call = inst.start("transcription", kwargs.get("model"), request, stream=kwargs.get("stream") is True)
        call.fields.update(meta)
        return call, kwargs

    def end(self, call: Call, result: Any) -> Any:
        if _is_stream(result):
            return _proxy(result, _TranscriptionStream(call))
        _request_id(call, result)
        fields = usage_fields(getattr(result, "usage", None))
        duration = getattr(result, "duration", None)  # verbose_json
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            fields["audio_duration_s"] = float(duration)
        if "request_body" in call.fields:
            fields["response_body"] = dump(result) if not isinstance(result, str) else {"text": result}
        call.succeed(**fields)
        return result


#: (resource path, method, endpoint) for every method llmbase observes
ENDPOINTS: tuple[tuple[tuple[str, ...], str, Any], ...] = (
    (("chat", "completions"), "create", _Chat()),
    (("chat", "completions"), "parse", _Chat(streaming=False, cacheable=False)),
    (("completions",), "create", _Chat("completion")),
    (("responses",), "create", _Responses()),
    (("responses",), "parse", _Responses(cacheable=False)),
    (("embeddings",), "create", _Embeddings()),
    (("audio", "transcriptions"), "create", _Transcriptions()),
)


def detect_provider(sdk_client: Any) -> str:
    """'azure' for AzureOpenAI, a genai-prices provider id when base_url names a known
    OpenAI-compatible API (groq, openrouter, ...), else 'openai'."""
    names = {c.__name__ for c in type(sdk_client).__mro__}
    if "AzureOpenAI" in names or "AsyncAzureOpenAI" in names:
        return "azure"
    base = str(getattr(sdk_client, "base_url", "") or "")
    if base:
        try:
            from genai_prices import data_snapshot

            return str(data_snapshot.get_snapshot().find_provider(None, None, base).id)
        except LookupError:  # a local or unknown endpoint
            return "openai"
    return "openai"


def install(sdk_client: Any, inst: Instrumentation) -> None:
    install_endpoints(sdk_client, inst, ENDPOINTS)
