"""One span -> what it is (an LLM call, an agent/chain, a tool call, or nothing of ours)
and, for an LLM call, its request-log fields. The attribute names are the OpenTelemetry
GenAI semantic conventions (`gen_ai.*`, current and older names) and OpenInference's
(`llm.*`, `input.value`, `openinference.span.kind`); docs/otel.md has the table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from .spans import STATUS_ERROR, Span

__all__ = ["classify", "request_fields", "span_time", "stable_id", "str_attr"]

LLM, AGENT, TOOL = "llm", "agent", "tool"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: gen_ai.operation.name -> llmbase request_type
OPERATIONS = {
    "chat": "chat",
    "generate_content": "chat",
    "text_completion": "completion",
    "completion": "completion",
    "embeddings": "embedding",
    "embedding": "embedding",
    "rerank": "rerank",
    "image_generation": "image",
    "speech": "speech",
    "transcription": "transcription",
    "moderation": "moderation",
}
_AGENT_OPS = {"invoke_agent", "invoke_workflow"}
_TOOL_OPS = {"execute_tool"}
_OI_TYPES = {"LLM": "chat", "EMBEDDING": "embedding", "RERANKER": "rerank"}
#: attributes that are bodies (kept in request_body / response_body, not in metadata)
_BODY_PREFIXES = (
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.input.messages", "gen_ai.output.messages",
    "gen_ai.system_instructions", "llm.input_messages", "llm.output_messages", "llm.prompts",
    "input.value", "output.value", "input.mime_type", "output.mime_type",
)  # fmt: skip


def span_time(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def stable_id(kind: str, trace_id: str, span_id: str, start_ns: int) -> UUID:
    """A UUIDv7 whose time is the span's start and whose other bits come from a hash of
    (kind, trace id, span id): the same span exported twice gets the same id."""
    h = int.from_bytes(hashlib.sha256(f"{kind}:{trace_id}:{span_id}".encode()).digest()[:10], "big")
    ms = max(0, start_ns // 1_000_000) & (2**48 - 1)
    rand_a = h >> 68 & 0xFFF
    rand_b = h & (2**62 - 1)
    return UUID(int=ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b)


def first(attrs: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        v = attrs.get(n)
        if v is not None and v != "":
            return v
    return None


def str_attr(attrs: Mapping[str, Any], *names: str) -> str | None:
    v = first(attrs, *names)
    if v is None or isinstance(v, dict | list | bytes):
        return None
    return str(v)


def _num(attrs: Mapping[str, Any], *names: str) -> int | float | None:
    v = first(attrs, *names)
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return None
    if isinstance(v, str):
        try:
            return float(v) if "." in v else int(v)
        except ValueError:
            return None
    return v


def classify(span: Span) -> str | None:
    a = span.attributes
    oi = str(a.get("openinference.span.kind") or "").upper()
    if oi in _OI_TYPES:
        return LLM
    if oi in ("AGENT", "CHAIN"):
        return AGENT
    if oi == "TOOL":
        return TOOL
    op = str(a.get("gen_ai.operation.name") or "").lower()
    if op in _AGENT_OPS:
        return AGENT
    if op in _TOOL_OPS:
        return TOOL
    if op in OPERATIONS:
        return LLM
    if op in ("create_agent",) or oi:
        return None
    if first(a, "gen_ai.request.model", "gen_ai.response.model", "gen_ai.system", "llm.model_name"):
        return LLM
    return None


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in ("{", "["):
        try:
            return json.loads(v)
        except (ValueError, RecursionError):
            return v
    return v


def _indexed(attrs: Mapping[str, Any], prefix: str, inner: str = "") -> list[dict[str, Any]]:
    """`prefix.N.[inner.]field` attributes as a list of dicts in N order."""
    items: dict[int, dict[str, Any]] = {}
    p = prefix + "."
    for k, v in attrs.items():
        if not k.startswith(p):
            continue
        idx, _, rest = k[len(p) :].partition(".")
        if not idx.isdigit() or not rest:
            continue
        if inner and rest.startswith(inner + "."):
            rest = rest[len(inner) + 1 :]
        items.setdefault(int(idx), {})[rest] = v
    return [items[i] for i in sorted(items)]


def _events(span: Span, *names: str) -> list[dict[str, Any]]:
    out = []
    for e in span.events:
        if e.name in names:
            d = {k.removeprefix("gen_ai."): _maybe_json(v) for k, v in e.attributes.items()}
            if e.name.startswith("gen_ai.") and e.name.endswith(".message"):
                d.setdefault("role", e.name[len("gen_ai.") : -len(".message")])
            out.append(d)
    return out


def _request_body(span: Span, model: str | None) -> dict[str, Any] | None:
    a = span.attributes
    body: dict[str, Any] = {}
    for k, v in a.items():
        if k.startswith("gen_ai.request.") and k != "gen_ai.request.model":
            body[k[len("gen_ai.request.") :]] = v
    params = _maybe_json(a.get("llm.invocation_parameters"))
    if isinstance(params, dict):
        body = {**params, **body}
    system = _maybe_json(a.get("gen_ai.system_instructions"))
    if system is not None:
        body["system"] = system
    messages: Any = _maybe_json(a.get("gen_ai.input.messages"))
    if messages is None:
        messages = _indexed(a, "gen_ai.prompt") or _indexed(a, "llm.input_messages", "message") or None
    if messages is None:
        ev = _events(span, "gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message",
                     "gen_ai.tool.message")  # fmt: skip
        prompt = [e.get("prompt") for e in _events(span, "gen_ai.content.prompt") if e.get("prompt")]
        messages = ev or (prompt[0] if prompt else None)
    if messages is None and isinstance(a.get("gen_ai.prompt"), str):
        messages = _maybe_json(a["gen_ai.prompt"])
    if messages is not None:
        body["messages"] = messages
    if "input.value" in a:
        body["input"] = _maybe_json(a["input.value"])
    if a.get("llm.prompts") is not None:
        body["prompts"] = a["llm.prompts"]
    if not body:
        return None
    return {"model": model, **body} if model else body


def _response_body(span: Span) -> dict[str, Any] | None:
    a = span.attributes
    body: dict[str, Any] = {}
    rid = str_attr(a, "gen_ai.response.id")
    if rid:
        body["id"] = rid
    reasons = first(a, "gen_ai.response.finish_reasons")
    if reasons is not None:
        body["finish_reasons"] = reasons if isinstance(reasons, list) else [reasons]
    out: Any = _maybe_json(a.get("gen_ai.output.messages"))
    if out is None:
        out = _indexed(a, "gen_ai.completion") or _indexed(a, "llm.output_messages", "message") or None
    if out is None:
        ev = _events(span, "gen_ai.choice")
        done = [
            e.get("completion") for e in _events(span, "gen_ai.content.completion") if e.get("completion")
        ]
        out = ev or (done[0] if done else None)
    if out is None and isinstance(a.get("gen_ai.completion"), str):
        out = _maybe_json(a["gen_ai.completion"])
    if out is not None:
        body["output"] = out
    if "output.value" in a:
        body["output_value"] = _maybe_json(a["output.value"])
    return body or None


def _status(span: Span) -> dict[str, Any]:
    a = span.attributes
    err = str_attr(a, "error.type")
    http = _num(a, "http.response.status_code", "http.status_code")
    out: dict[str, Any] = {}
    if isinstance(http, int) and 100 <= http <= 599:
        out["http_status"] = http
    if span.status_code != STATUS_ERROR and not err:
        out["status"] = "success"
        return out
    message = span.status_message
    if not message:
        for e in span.events:
            if e.name == "exception":
                message = str_attr(e.attributes, "exception.message") or ""
                err = err or str_attr(e.attributes, "exception.type")
                break
    kind = (err or "error").lower()
    if http == 429 or "ratelimit" in kind or "rate_limit" in kind:
        out["status"] = "rate_limited"
    elif "timeout" in kind or "timedout" in kind:
        out["status"] = "timeout"
    elif "cancel" in kind:
        out["status"] = "cancelled"
    else:
        out["status"] = "error"
    out["error_kind"] = err or "error"
    if message:
        out["error_message"] = message
    return out


def identity(span: Span) -> dict[str, Any]:
    """user / conversation_id / tags from the span's (then the resource's) attributes."""
    a, r = span.attributes, span.resource
    out: dict[str, Any] = {}
    user = str_attr(a, "llmbase.user", "enduser.id", "user.id") or str_attr(r, "llmbase.user", "enduser.id")
    if user:
        out["user"] = user
    conv = str_attr(a, "llmbase.conversation_id", "gen_ai.conversation.id", "session.id") or str_attr(
        r, "llmbase.conversation_id", "session.id"
    )
    if conv:
        try:
            out["conversation_id"] = UUID(conv)
        except ValueError:
            out["session_id"] = conv  # not a llmbase conversation: kept in metadata
    tags: list[str] = []
    service = str_attr(r, "service.name")
    if service:
        tags.append(f"service:{service}")
    for name in ("llmbase.tags", "tag.tags"):
        v = a.get(name)
        if isinstance(v, list):
            tags.extend(str(t) for t in v if t is not None)
        elif isinstance(v, str):
            tags.append(v)
    if tags:
        out["tags"] = tags
    return out


def otel_metadata(span: Span) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "name": span.name,
    }
    if span.parent_span_id:
        meta["parent_span_id"] = span.parent_span_id
    if span.scope:
        meta["scope"] = f"{span.scope} {span.scope_version}".strip()
    if span.resource:
        meta["resource"] = span.resource
    rest = {k: v for k, v in span.attributes.items() if not k.startswith(_BODY_PREFIXES)}
    if rest:
        meta["attributes"] = rest
    return meta


def request_fields(span: Span) -> dict[str, Any]:
    """The `client.requests.log()` fields of an LLM-call span."""
    a = span.attributes
    op = str(a.get("gen_ai.operation.name") or "").lower()
    oi = str(a.get("openinference.span.kind") or "").upper()
    request_model = str_attr(a, "gen_ai.request.model")
    model = str_attr(a, "gen_ai.response.model", "llm.model_name") or request_model
    f: dict[str, Any] = {
        "id": stable_id("request", span.trace_id, span.span_id, span.start_ns),
        "created_at": span_time(span.start_ns),
        "request_type": OPERATIONS.get(op) or _OI_TYPES.get(oi) or "other",
        "provider": str_attr(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
        "model": model,
        "latency_ms": span.duration_ms,
        "tokens_prompt": _num(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                              "llm.token_count.prompt"),
        "tokens_completion": _num(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                                  "llm.token_count.completion"),
        "tokens_total": _num(a, "gen_ai.usage.total_tokens", "llm.token_count.total"),
        "tokens_cached": _num(a, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                              "llm.token_count.prompt_details.cache_read"),
        "tokens_reasoning": _num(a, "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                                 "llm.token_count.completion_details.reasoning"),
        "cost_usd": _num(a, "llm.cost.total", "gen_ai.usage.cost"),
        "request_body": _request_body(span, request_model or model),
        "response_body": _response_body(span),
    }  # fmt: skip
    ttft = _num(a, "gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token")
    if ttft is not None:
        f["ttft_ms"] = float(ttft) * 1000.0
    stream = first(a, "gen_ai.request.stream", "llm.is_streaming")
    if isinstance(stream, bool):
        f["stream"] = stream
    f.update(_status(span))
    ident = identity(span)
    meta: dict[str, Any] = {"otel": otel_metadata(span)}
    session = ident.pop("session_id", None)
    if session:
        meta["session_id"] = session
    if request_model and model and request_model != model:
        meta["request_model"] = request_model
    f.update(ident)
    f["metadata"] = meta
    return {k: v for k, v in f.items() if v is not None}
