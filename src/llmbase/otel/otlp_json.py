"""OTLP/JSON (the protobuf JSON mapping with OTLP's exceptions): lowerCamelCase field names
(snake_case accepted too), trace and span ids as hex, 64-bit integers as numbers or decimal
strings, enums as integers. Unknown fields are ignored; a field of the wrong type refuses
the whole export with a reason naming its path."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from .spans import MAX_DEPTH, Event, OTLPError, Span

__all__ = ["decode_json"]

_U64 = 2**64


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    v = obj.get(camel)
    return obj.get(snake) if v is None else v


def _obj(v: Any, path: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise OTLPError(f"{path}: expected an object, got {type(v).__name__}")
    return v


def _list(v: Any, path: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise OTLPError(f"{path}: expected an array, got {type(v).__name__}")
    return v


def _str(v: Any, path: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise OTLPError(f"{path}: expected a string, got {type(v).__name__}")
    return v


def _int(v: Any, path: str, *, lo: int = -(2**63), hi: int = _U64 - 1) -> int:
    if v is None:
        return 0
    if isinstance(v, bool):
        raise OTLPError(f"{path}: expected an integer, got a boolean")
    if isinstance(v, str):
        try:
            v = int(v.strip(), 10)
        except ValueError:
            raise OTLPError(f"{path}: expected an integer, got {v[:40]!r}") from None
    if not isinstance(v, int):
        raise OTLPError(f"{path}: expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise OTLPError(f"{path}: integer out of range")
    return v


def _hex_id(v: Any, size: int, path: str, *, optional: bool = False) -> str | None:
    text = _str(v, path)
    if not text and optional:
        return None
    if len(text) != size * 2:
        raise OTLPError(f"{path}: expected {size * 2} hex digits, got {len(text)} characters")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise OTLPError(f"{path}: not hexadecimal") from None
    if not any(raw):
        if optional:
            return None
        raise OTLPError(f"{path}: an all-zero id is invalid")
    return raw.hex()


def _value(v: Any, path: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise OTLPError(f"{path}: attribute value nested deeper than {MAX_DEPTH}")
    av = _obj(v, path)
    if not av:
        return None
    if "stringValue" in av or "string_value" in av:
        return _str(_get(av, "stringValue", "string_value"), path + ".stringValue")
    if "boolValue" in av or "bool_value" in av:
        b = _get(av, "boolValue", "bool_value")
        if not isinstance(b, bool):
            raise OTLPError(f"{path}.boolValue: expected a boolean, got {type(b).__name__}")
        return b
    if "intValue" in av or "int_value" in av:
        return _int(_get(av, "intValue", "int_value"), path + ".intValue", hi=2**63 - 1)
    if "doubleValue" in av or "double_value" in av:
        d = _get(av, "doubleValue", "double_value")
        if isinstance(d, str):  # the protobuf JSON mapping allows a double as a string
            try:
                return float(d)
            except ValueError:
                raise OTLPError(f"{path}.doubleValue: expected a number, got {d[:40]!r}") from None
        if isinstance(d, bool) or not isinstance(d, int | float):
            raise OTLPError(f"{path}.doubleValue: expected a number, got {type(d).__name__}")
        return float(d)
    if "arrayValue" in av or "array_value" in av:
        arr = _obj(_get(av, "arrayValue", "array_value"), path + ".arrayValue")
        vals = _list(arr.get("values"), path + ".arrayValue.values")
        return [_value(x, f"{path}.arrayValue.values[{i}]", depth + 1) for i, x in enumerate(vals)]
    if "kvlistValue" in av or "kvlist_value" in av:
        kv = _obj(_get(av, "kvlistValue", "kvlist_value"), path + ".kvlistValue")
        return _attributes(kv.get("values"), path + ".kvlistValue.values", depth + 1)
    if "bytesValue" in av or "bytes_value" in av:
        text = _str(_get(av, "bytesValue", "bytes_value"), path + ".bytesValue")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise OTLPError(f"{path}.bytesValue: not base64") from None
    return None  # an empty AnyValue (or a kind this version does not know)


def _attributes(v: Any, path: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, kv in enumerate(_list(v, path)):
        p = f"{path}[{i}]"
        item = _obj(kv, p)
        out[_str(item.get("key"), p + ".key")] = _value(item.get("value"), p + ".value", depth)
    return out


def _span(s: Any, path: str, resource: dict[str, Any], scope: tuple[str, str]) -> Span:
    d = _obj(s, path)
    status = _obj(d.get("status"), path + ".status")
    events = []
    for i, e in enumerate(_list(d.get("events"), path + ".events")):
        ep = f"{path}.events[{i}]"
        ed = _obj(e, ep)
        events.append(
            Event(
                _str(ed.get("name"), ep + ".name"),
                _int(_get(ed, "timeUnixNano", "time_unix_nano"), ep + ".timeUnixNano", lo=0),
                _attributes(ed.get("attributes"), ep + ".attributes"),
            )
        )
    trace = _hex_id(_get(d, "traceId", "trace_id"), 16, path + ".traceId")
    span = _hex_id(_get(d, "spanId", "span_id"), 8, path + ".spanId")
    assert trace is not None
    assert span is not None
    return Span(
        trace_id=trace,
        span_id=span,
        parent_span_id=_hex_id(
            _get(d, "parentSpanId", "parent_span_id"), 8, path + ".parentSpanId", optional=True
        ),
        name=_str(d.get("name"), path + ".name"),
        kind=_int(d.get("kind"), path + ".kind", lo=0, hi=5),
        start_ns=_int(
            _get(d, "startTimeUnixNano", "start_time_unix_nano"), path + ".startTimeUnixNano", lo=0
        ),
        end_ns=_int(_get(d, "endTimeUnixNano", "end_time_unix_nano"), path + ".endTimeUnixNano", lo=0),
        attributes=_attributes(d.get("attributes"), path + ".attributes"),
        events=events,
        status_code=_int(status.get("code"), path + ".status.code", lo=0, hi=2),
        status_message=_str(status.get("message"), path + ".status.message"),
        resource=resource,
        scope=scope[0],
        scope_version=scope[1],
    )


def decode_json(body: bytes) -> list[Span]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OTLPError(f"the body is not valid JSON: {exc}") from None
    root = _obj(doc, "$")
    spans: list[Span] = []
    for i, rs in enumerate(_list(_get(root, "resourceSpans", "resource_spans"), "resourceSpans")):
        rp = f"resourceSpans[{i}]"
        rsd = _obj(rs, rp)
        res = _obj(rsd.get("resource"), rp + ".resource")
        resource = _attributes(res.get("attributes"), rp + ".resource.attributes")
        for j, ss in enumerate(_list(_get(rsd, "scopeSpans", "scope_spans"), rp + ".scopeSpans")):
            sp = f"{rp}.scopeSpans[{j}]"
            ssd = _obj(ss, sp)
            sc = _obj(ssd.get("scope"), sp + ".scope")
            scope = (_str(sc.get("name"), sp + ".scope.name"), _str(sc.get("version"), sp + ".scope.version"))
            for k, s in enumerate(_list(ssd.get("spans"), sp + ".spans")):
                spans.append(_span(s, f"{sp}.spans[{k}]", resource, scope))
    return spans
