"""The cache key of a model request: sha256 of its canonical JSON.

Canonical = the request's arguments with the ones that cannot change the answer removed
(`stream`, `stream_options`, `user`, `metadata`, timeouts, headers, ...), SDK sentinels
(NotGiven / Omit) and None dropped, pydantic models dumped, keys sorted, compact
separators, floats in their shortest repr. The key covers provider, model and request type
too. `params_hash` is the same without the prompt (messages / input / prompt), so a
semantic match can require "same model and parameters" exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError

__all__ = ["IGNORED", "PROMPT_FIELDS", "RequestKey", "canonical", "prompt_text", "request_key"]

#: request arguments that do not change the answer (left out of the key)
IGNORED = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "timeout",
        "extra_headers",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "background",
        "betas",
    }
)
#: the arguments that hold the prompt (embedded for semantic matches)
PROMPT_FIELDS = ("messages", "input", "prompt")
_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class RequestKey:
    """The exact key, the parameters' key, and the normalised request itself."""

    key_hash: bytes
    params_hash: bytes
    provider: str
    model: str
    request_type: str
    request: dict[str, Any]

    @property
    def hex(self) -> str:
        return self.key_hash.hex()


def _given(value: Any) -> bool:
    return value is not None and type(value).__name__ not in ("Omit", "NotGiven")


def _norm(value: Any, depth: int, field: str) -> Any:
    """A JSON value with a single spelling for equal requests."""
    if depth > _MAX_DEPTH:
        raise ValidationError(f"nested deeper than {_MAX_DEPTH} levels", field=field)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("must be a finite number", field=field)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError("keys must be strings", field=field)
            if _given(v):
                out[k] = _norm(v, depth + 1, field)
        return out
    if isinstance(value, list | tuple):
        return [_norm(v, depth + 1, field) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"sha256": hashlib.sha256(bytes(value)).hexdigest()}
    dump = getattr(value, "model_dump", None)
    if dump is not None:  # a pydantic model (SDK params, response_format classes)
        try:
            return _norm(dump(mode="json", exclude_unset=True), depth + 1, field)
        except TypeError:
            pass
    schema = getattr(value, "model_json_schema", None)
    if schema is not None:  # a pydantic class given as response_format
        return {"schema": _norm(schema(), depth + 1, field)}
    raise ValidationError(f"cannot be part of a cache key ({type(value).__name__})", field=field)


def canonical(value: Any) -> str:
    """The canonical JSON text of a normalised value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationError("must be a string", field=field)
    if "\x00" in value:
        raise ValidationError("must not contain NUL characters", field=field)
    if len(value) > limit:
        raise ValidationError(f"longer than {limit} characters", field=field)
    return value


def request_key(
    request: Mapping[str, Any],
    *,
    provider: str | None = None,
    model: str | None = None,
    request_type: str = "chat",
) -> RequestKey:
    """The key of a request (the keyword arguments of the SDK call). `model` defaults to
    request["model"]."""
    if not isinstance(request, Mapping):
        raise ValidationError("must be a mapping of the call's arguments", field="request")
    body = {k: v for k, v in request.items() if k not in IGNORED and _given(v)}
    norm = _norm(body, 0, "request")
    model = model if model is not None else norm.get("model")
    prov = _text(provider or "", "provider", 100)
    mod = _text(model if isinstance(model, str) else "", "model", 200)
    rtype = _text(request_type, "request_type", 50)
    if not rtype:
        raise ValidationError("must not be empty", field="request_type")
    norm.pop("model", None)
    head = {"provider": prov, "model": mod, "type": rtype}
    key = hashlib.sha256(canonical({**head, "request": norm}).encode()).digest()
    params = {k: v for k, v in norm.items() if k not in PROMPT_FIELDS}
    params_hash = hashlib.sha256(canonical({**head, "params": params}).encode()).digest()
    return RequestKey(key, params_hash, prov, mod, rtype, norm)


def prompt_text(request: Mapping[str, Any]) -> str:
    """The text of a request's prompt (what a semantic match embeds): the string contents
    of messages / input / prompt, one per line, with their roles."""
    parts: list[str] = []

    def walk(value: Any, role: str | None) -> None:
        if isinstance(value, str):
            parts.append(f"{role}: {value}" if role else value)
        elif isinstance(value, Mapping):
            r = value.get("role") if isinstance(value.get("role"), str) else role
            for k in ("content", "text", "input_text"):
                if k in value:
                    walk(value[k], r)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, role)

    for name in PROMPT_FIELDS:
        if name in request:
            walk(request[name], None)
    return "\n".join(parts)
