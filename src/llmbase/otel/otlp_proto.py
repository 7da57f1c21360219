"""OTLP/protobuf without a protobuf runtime: the wire format (varints, fixed 32/64-bit,
length-delimited fields) read directly for the few messages of a trace export
(opentelemetry/proto/collector/trace/v1: ExportTraceServiceRequest and what it contains).
Unknown fields are skipped as protobuf requires; a truncated or malformed message, or a
known field with the wrong wire type, refuses the whole export with a reason."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from .spans import MAX_DEPTH, Event, OTLPError, Span

__all__ = ["decode_proto", "encode_partial_success"]

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_Field = tuple[int, int, Any]  # (number, wire type, int or memoryview)


def _varint(buf: memoryview, pos: int, what: str) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise OTLPError(f"{what}: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise OTLPError(f"{what}: varint longer than 10 bytes")


def _fields(buf: memoryview, what: str) -> Iterator[_Field]:
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos, what)
        number, wt = tag >> 3, tag & 7
        if number == 0:
            raise OTLPError(f"{what}: field number 0")
        if wt == VARINT:
            value, pos = _varint(buf, pos, what)
            yield number, wt, value
        elif wt == I64:
            if pos + 8 > end:
                raise OTLPError(f"{what}: truncated 64-bit field {number}")
            yield number, wt, int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wt == LEN:
            size, pos = _varint(buf, pos, what)
            if pos + size > end:
                raise OTLPError(f"{what}: field {number} runs past the end of the message")
            yield number, wt, buf[pos : pos + size]
            pos += size
        elif wt == I32:
            if pos + 4 > end:
                raise OTLPError(f"{what}: truncated 32-bit field {number}")
            yield number, wt, int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise OTLPError(f"{what}: unsupported wire type {wt} (field {number})")


def _want(f: _Field, wt: int, what: str) -> Any:
    if f[1] != wt:
        raise OTLPError(f"{what}: field {f[0]} has wire type {f[1]}, expected {wt}")
    return f[2]


def _text(v: memoryview, what: str) -> str:
    try:
        return bytes(v).decode("utf-8")
    except UnicodeDecodeError:
        raise OTLPError(f"{what}: invalid UTF-8") from None


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _value(buf: memoryview, what: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise OTLPError(f"{what}: attribute value nested deeper than {MAX_DEPTH}")
    out: Any = None
    for f in _fields(buf, what):
        n = f[0]
        if n == 1:
            out = _text(_want(f, LEN, what), what)
        elif n == 2:
            out = bool(_want(f, VARINT, what))
        elif n == 3:
            out = _signed(_want(f, VARINT, what))
        elif n == 4:
            out = struct.unpack("<d", _want(f, I64, what).to_bytes(8, "little"))[0]
        elif n == 5:
            arr = _want(f, LEN, what)
            out = [_value(_want(g, LEN, what), what, depth + 1) for g in _fields(arr, what) if g[0] == 1]
        elif n == 6:
            out = _attributes((g for g in _fields(_want(f, LEN, what), what) if g[0] == 1), what, depth + 1)
        elif n == 7:
            out = bytes(_want(f, LEN, what))
    return out


def _attributes(items: Iterator[_Field], what: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in items:
        key, value = "", None
        for g in _fields(_want(f, LEN, what), what):
            if g[0] == 1:
                key = _text(_want(g, LEN, what), what + ".key")
            elif g[0] == 2:
                value = _value(_want(g, LEN, what), f"{what}[{key!r}]", depth)
        out[key] = value
    return out


def _id(v: memoryview, size: int, what: str, *, optional: bool = False) -> str | None:
    raw = bytes(v)
    if optional and (not raw or not any(raw)):
        return None
    if len(raw) != size:
        raise OTLPError(f"{what}: expected {size} bytes, got {len(raw)}")
    if not any(raw):
        raise OTLPError(f"{what}: an all-zero id is invalid")
    return raw.hex()


def _span(buf: memoryview, what: str, resource: dict[str, Any], scope: tuple[str, str]) -> Span:
    trace = span_id = None
    parent: str | None = None
    name, kind, start, end = "", 0, 0, 0
    attrs: list[_Field] = []
    events: list[Event] = []
    code, message = 0, ""
    for f in _fields(buf, what):
        n = f[0]
        if n == 1:
            trace = _id(_want(f, LEN, what), 16, what + ".trace_id")
        elif n == 2:
            span_id = _id(_want(f, LEN, what), 8, what + ".span_id")
        elif n == 4:
            parent = _id(_want(f, LEN, what), 8, what + ".parent_span_id", optional=True)
        elif n == 5:
            name = _text(_want(f, LEN, what), what + ".name")
        elif n == 6:
            kind = _want(f, VARINT, what)
        elif n == 7:
            start = _want(f, I64, what + ".start_time_unix_nano")
        elif n == 8:
            end = _want(f, I64, what + ".end_time_unix_nano")
        elif n == 9:
            attrs.append(f)
        elif n == 11:
            events.append(_event(_want(f, LEN, what), what + ".events"))
        elif n == 15:
            for g in _fields(_want(f, LEN, what), what + ".status"):
                if g[0] == 2:
                    message = _text(_want(g, LEN, what + ".status"), what + ".status.message")
                elif g[0] == 3:
                    code = _want(g, VARINT, what + ".status")
    if trace is None or span_id is None:
        raise OTLPError(f"{what}: a span needs a trace_id and a span_id")
    if kind > 5 or code > 2:
        raise OTLPError(f"{what}: unknown span kind or status code")
    return Span(
        trace, span_id, parent, name, kind, start, end,
        _attributes(iter(attrs), what + ".attributes"), events, code, message,
        resource, scope[0], scope[1],
    )  # fmt: skip


def _event(buf: memoryview, what: str) -> Event:
    ev = Event("", 0)
    attrs: list[_Field] = []
    for f in _fields(buf, what):
        if f[0] == 1:
            ev.time_ns = _want(f, I64, what)
        elif f[0] == 2:
            ev.name = _text(_want(f, LEN, what), what)
        elif f[0] == 3:
            attrs.append(f)
    ev.attributes = _attributes(iter(attrs), what + ".attributes")
    return ev


def decode_proto(body: bytes) -> list[Span]:
    spans: list[Span] = []
    root = memoryview(body)
    for i, rs in enumerate(f for f in _fields(root, "ExportTraceServiceRequest") if f[0] == 1):
        rp = f"resource_spans[{i}]"
        resource: dict[str, Any] = {}
        scope_spans: list[memoryview] = []
        for f in _fields(_want(rs, LEN, rp), rp):
            if f[0] == 1:
                res = (g for g in _fields(_want(f, LEN, rp), rp + ".resource") if g[0] == 1)
                resource = _attributes(res, rp + ".resource.attributes")
            elif f[0] == 2:
                scope_spans.append(_want(f, LEN, rp))
        for j, ss in enumerate(scope_spans):
            sp = f"{rp}.scope_spans[{j}]"
            scope = ("", "")
            bodies: list[memoryview] = []
            for f in _fields(ss, sp):
                if f[0] == 1:
                    name = version = ""
                    for g in _fields(_want(f, LEN, sp), sp + ".scope"):
                        if g[0] == 1:
                            name = _text(_want(g, LEN, sp), sp + ".scope.name")
                        elif g[0] == 2:
                            version = _text(_want(g, LEN, sp), sp + ".scope.version")
                    scope = (name, version)
                elif f[0] == 2:
                    bodies.append(_want(f, LEN, sp))
            spans.extend(_span(b, f"{sp}.spans[{k}]", resource, scope) for k, b in enumerate(bodies))
    return spans


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | LEN) + _encode_varint(len(payload)) + payload


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_partial_success(rejected: int, message: str) -> bytes:
    """An ExportTraceServiceResponse: empty when everything was accepted."""
    if not rejected and not message:
        return b""
    inner = b""
    if rejected:
        inner += _encode_varint(1 << 3 | VARINT) + _encode_varint(rejected)
    if message:
        inner += _len_field(2, message.encode())
    return _len_field(1, inner)
