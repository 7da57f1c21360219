"""Stub of the OpenAI and Anthropic HTTP APIs on 127.0.0.1 (stdlib http.server, a thread).

Endpoints, in each provider's real wire format:
  POST /v1/chat/completions     JSON, or SSE `data:` chunks ending `data: [DONE]` (usage in a
                                final chunk with empty choices when stream_options.include_usage)
  POST /v1/completions          JSON (the legacy completions API)
  POST /v1/responses            JSON, or SSE events response.created .. response.completed
  POST /v1/embeddings           JSON (floats, or base64 float32 when encoding_format=base64;
                                8 dimensions unless `dimensions` asks for another size)
  POST /v1/audio/transcriptions multipart/form-data in; json / verbose_json / text out
  POST /v1/messages             Anthropic JSON, or SSE message_start .. message_stop

Behaviour per request, chosen by headers (the SDKs send them with `extra_headers=`):
  x-stub-scenario: 429 | 500 | 400 | 529 | slow | midstream-error
  x-stub-delay:    seconds to wait before answering (slow: default 2)
  x-stub-chunk-delay: seconds between stream chunks
Every request is recorded in `StubServer.received` (path, headers, parsed body).
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import json
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["TEXT", "USAGE", "StubServer", "running_stub"]

TEXT = "Hello from the stub server"
#: the token counts every endpoint reports (OpenAI semantics: prompt includes cached)
USAGE = {
    "prompt": 12,
    "completion": 5,
    "total": 17,
    "cached": 4,
    "reasoning": 2,
    "embedding_prompt": 8,
    "anthropic_input": 8,  # Anthropic's input_tokens exclude cache reads (4) and writes (0)
    "transcription_seconds": 3.0,
}
EMBEDDING_DIM = 8


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class StubServer:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url  # the Anthropic SDK appends /v1/messages itself

    def start(self) -> StubServer:
        stub = self

        class Handler(_Handler):
            server_ref = stub

        self._httpd = _Server((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stub-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def last(self, path: str | None = None) -> Received:
        for r in reversed(self.received):
            if path is None or r.path.endswith(path):
                return r
        raise LookupError(path)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many clients connecting at once (concurrency tests)


@contextlib.contextmanager
def running_stub() -> Iterator[StubServer]:
    stub = StubServer().start()
    try:
        yield stub
    finally:
        stub.stop()


# -- wire formats -----------------------------------------------------------------------
def _openai_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": USAGE["prompt"],
        "completion_tokens": USAGE["completion"],
        "total_tokens": USAGE["total"],
        "prompt_tokens_details": {"cached_tokens": USAGE["cached"], "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": USAGE["reasoning"], "audio_tokens": 0},
    }


def _responses_usage() -> dict[str, Any]:
    return {
        "input_tokens": USAGE["prompt"],
        "input_tokens_details": {"cached_tokens": USAGE["cached"]},
        "output_tokens": USAGE["completion"],
        "output_tokens_details": {"reasoning_tokens": USAGE["reasoning"]},
        "total_tokens": USAGE["total"],
    }


def _anthropic_usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": USAGE["anthropic_input"],
        "output_tokens": output_tokens,
        "cache_read_input_tokens": USAGE["cached"],
        "cache_creation_input_tokens": 0,
    }


def _pieces() -> list[str]:
    words = TEXT.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _chat_completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _openai_usage(),
        "system_fingerprint": "fp_stub",
    }


def _chat_chunks(model: str, include_usage: bool) -> Iterator[dict[str, Any]]:
    base = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    yield {
        **base,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        **extra,
    }
    for piece in _pieces():
        yield {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}], **extra}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra}
    if include_usage:
        yield {**base, "choices": [], "usage": _openai_usage()}


def _response_obj(model: str, status: str, with_output: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "resp_stub",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None,
    }
    if with_output:
        out["output"] = [
            {
                "type": "message",
                "id": "msg_stub",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": TEXT, "annotations": []}],
            }
        ]
        out["usage"] = _responses_usage()
    return out


def _response_events(model: str) -> Iterator[tuple[str, dict[str, Any]]]:
    seq = 0

    def ev(kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        nonlocal seq
        seq += 1
        return kind, {"type": kind, "sequence_number": seq - 1, **data}

    yield ev("response.created", response=_response_obj(model, "in_progress", False))
    yield ev("response.in_progress", response=_response_obj(model, "in_progress", False))
    item = {"type": "message", "id": "msg_stub", "status": "in_progress", "role": "assistant", "content": []}
    yield ev("response.output_item.added", output_index=0, item=item)
    yield ev(
        "response.content_part.added",
        item_id="msg_stub",
        output_index=0,
        content_index=0,
        part={"type": "output_text", "text": "", "annotations": []},
    )
    for piece in _pieces():
        yield ev(
            "response.output_text.delta",
            item_id="msg_stub",
            output_index=0,
            content_index=0,
            delta=piece,
            logprobs=[],
        )
    yield ev(
        "response.output_text.done",
        item_id="msg_stub",
        output_index=0,
        content_index=0,
        text=TEXT,
        logprobs=[],
    )
    yield ev("response.completed", response=_response_obj(model, "completed", True))


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    n = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
    dim = body.get("dimensions") or EMBEDDING_DIM  # the `dimensions` parameter, when sent
    vec = [0.125 * (i + 1) for i in range(dim)]
    data: list[dict[str, Any]] = []
    for i in range(n):
        emb: Any = vec
        if body.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": USAGE["embedding_prompt"], "total_tokens": USAGE["embedding_prompt"]},
    }


def _message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_stub",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(USAGE["completion"]),
    }


def _message_events(model: str) -> Iterator[tuple[str, dict[str, Any]]]:
    start = {**_message(model), "content": [], "stop_reason": None, "usage": _anthropic_usage(1)}
    yield "message_start", {"type": "message_start", "message": start}
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    yield "ping", {"type": "ping"}
    for piece in _pieces():
        yield (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": USAGE["completion"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


_OPENAI_ERRORS = {
    429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    400: ("Invalid value for 'messages'.", "invalid_request_error", "invalid_value"),
    529: ("Overloaded", "server_error", None),
}
_ANTHROPIC_ERRORS = {
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    400: ("invalid_request_error", "messages: field required"),
    529: ("overloaded_error", "Overloaded"),
}


# -- handler ----------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # stream chunks leave at once, as from a real API
    server_ref: StubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def handle(self) -> None:
        # A client that gave up (timeouts) closes the socket under a sleeping handler.
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    # plumbing
    def _body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            return _parse_multipart(ctype, raw)
        return json.loads(raw) if raw else None

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(
        self, events: Iterator[tuple[str | None, Any]], chunk_delay: float, fail_after: int | None
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        for i, (event, data) in enumerate(events):
            if fail_after is not None and i == fail_after:
                self.close_connection = True
                return  # drop the connection mid-stream, without the terminating chunk
            if chunk_delay:
                time.sleep(chunk_delay)
            text = data if isinstance(data, str) else json.dumps(data)
            head = f"event: {event}\n" if event else ""
            chunk(f"{head}data: {text}\n\n".encode())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # routes
    def do_POST(self) -> None:
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server_ref.received.append(Received(self.path, headers, body))
        scenario = headers.get("x-stub-scenario", "")
        delay = float(headers.get("x-stub-delay") or (2.0 if scenario == "slow" else 0))
        chunk_delay = float(headers.get("x-stub-chunk-delay") or 0)
        if delay:
            time.sleep(delay)
        anthropic = self.path.startswith("/v1/messages")
        if scenario.isdigit():
            self._error(int(scenario), anthropic)
            return
        fail_after = 3 if scenario == "midstream-error" else None
        path = self.path.split("?")[0]
        if path == "/v1/chat/completions":
            model = body.get("model", "")
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                events = ((None, c) for c in _chat_chunks(model, usage))
                self._sse(_with_done(events), chunk_delay, fail_after)
            else:
                self._json(200, _chat_completion(model))
        elif path == "/v1/completions":
            completion = _chat_completion(body.get("model", ""))
            completion["object"] = "text_completion"
            completion["choices"] = [{"index": 0, "text": TEXT, "logprobs": None, "finish_reason": "stop"}]
            self._json(200, completion)
        elif path == "/v1/responses":
            model = body.get("model", "")
            if body.get("stream"):
                self._sse(_response_events(model), chunk_delay, fail_after)
            else:
                self._json(200, _response_obj(model, "completed", True))
        elif path == "/v1/embeddings":
            self._json(200, _embeddings(body))
        elif path == "/v1/audio/transcriptions":
            self._transcription(body)
        elif path == "/v1/messages":
            model = body.get("model", "")
            if body.get("stream"):
                self._sse(_message_events(model), chunk_delay, fail_after)
            else:
                self._json(200, _message(model))
        else:
            self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def _transcription(self, body: dict[str, Any]) -> None:
        fmt = body.get("response_format") or "json"
        model = body.get("model") or ""
        seconds = USAGE["transcription_seconds"]
        if model.startswith("whisper"):
            usage: dict[str, Any] = {"type": "duration", "seconds": seconds}
        else:
            usage = {
                "type": "tokens",
                "input_tokens": USAGE["prompt"],
                "output_tokens": USAGE["completion"],
                "total_tokens": USAGE["total"],
                "input_token_details": {"audio_tokens": USAGE["prompt"], "text_tokens": 0},
            }
        if fmt == "text":
            self._text(200, TEXT)
        elif fmt == "verbose_json":
            self._json(
                200,
                {
                    "task": "transcribe",
                    "language": "english",
                    "duration": seconds,
                    "text": TEXT,
                    "usage": usage,
                },
            )
        else:
            self._json(200, {"text": TEXT, "usage": usage})

    def _error(self, status: int, anthropic: bool) -> None:
        headers = {"retry-after": "1"} if status == 429 else {}
        if anthropic:
            kind, msg = _ANTHROPIC_ERRORS.get(status, ("api_error", "error"))
            headers["request-id"] = "req_stub"
            self._json(status, {"type": "error", "error": {"type": kind, "message": msg}}, headers)
        else:
            msg, kind, code = _OPENAI_ERRORS.get(status, ("error", "server_error", None))
            self._json(
                status, {"error": {"message": msg, "type": kind, "param": None, "code": code}}, headers
            )


def _with_done(events: Iterator[tuple[str | None, Any]]) -> Iterator[tuple[str | None, Any]]:
    yield from events
    yield None, "[DONE]"


def _parse_multipart(ctype: str, raw: bytes) -> dict[str, Any]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
    )
    out: dict[str, Any] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename:
            out[str(name)] = {
                "filename": filename,
                "bytes": len(payload),
                "content_type": part.get_content_type(),
            }
        else:
            out[str(name)] = payload.decode()
    return out


def main() -> None:
    """`python -m stubs` (from tests/): serve until stdin closes; prints the port first."""
    import sys

    stub = StubServer().start()
    print(stub.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        stub.stop()
