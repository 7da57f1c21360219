"""Cached responses back into the official SDKs' own objects.

A body is built by the SDK client's own response processing (`_process_response_data`,
what it does with a JSON body off the wire), so a hit is the same type with the same
fields as the original. A stream is replayed by the SDK's own `Stream` / `AsyncStream`
reading the stored events as server-sent events from an in-memory response: iteration,
`with`, `close()`, `.response` and the SDK's helpers behave as on a live stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["HEADER", "build", "sse", "stream"]

#: set on the in-memory response of a replayed stream
HEADER = "x-llmbase-cache"


def _httpx() -> Any:
    try:
        import httpx2

        return httpx2
    except ImportError:  # SDK versions built on httpx
        import httpx

        return httpx


def _response(sdk: Any, content: bytes, path: str) -> Any:
    httpx = _httpx()
    base = str(getattr(sdk, "base_url", "") or "http://llmbase.cache/").rstrip("/")
    request = httpx.Request("POST", base + path)
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream", HEADER: "hit"},
        content=content,
        request=request,
    )


def build(sdk: Any, cast_to: Any, data: Any, path: str = "/") -> Any:
    """The SDK's object for a JSON body."""
    process = getattr(sdk, "_process_response_data", None)
    if process is not None:
        return process(data=data, cast_to=cast_to, response=_response(sdk, b"", path))
    return cast_to.model_validate(data)


def sse(events: Iterable[Any], *, done: bool) -> bytes:
    """Server-sent events text for stored `[event name or None, data]` pairs."""
    out: list[str] = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def stream(
    sdk: Any, stream_cls: Any, cast_to: Any, events: Iterable[Any], *, done: bool, path: str = "/"
) -> Any:
    """The SDK's own stream class over the stored events."""
    return stream_cls(cast_to=cast_to, response=_response(sdk, sse(events, done=done), path), client=sdk)
