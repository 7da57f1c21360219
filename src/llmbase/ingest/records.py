"""Normalise queued payloads into rows the sink can COPY, by one documented rule.

A record is never refused for a bad value; the value is repaired or dropped, and what was
done is noted under the row's metadata key ``"_llmbase"`` (docs/ingest.md):

- text (provider, model, error_kind, error_message, ...): NUL and lone surrogates become
  U+FFFD (llmbase._sanitize); longer than the column allows: cut, ending in "…";
- ids (user_id, conversation_id, ...): a UUID or its text; anything else: NULL, noted;
- numbers (tokens, latency, cost, ...): ints / floats / numeric text within the column's
  range (tokens and latencies >= 0, finite); anything else: NULL, noted;
- request_type / status: one of the allowed values (case-insensitive); else "other" /
  "error", noted; `success=True/False` is accepted for status (the seeds' column);
- tokens_total: prompt + completion when not given;
- created_at: an aware datetime (naive = UTC), epoch seconds or ISO text between
  2000-01-01 and a day from now; else the time it was logged, noted;
- bodies (request_body, response_body): any Python value; JSON it cannot be (sets, bytes,
  dates, objects) becomes its str(), an Enum member its value (llmbase._sanitize.clean_json;
  orjson writes the values that are JSON already, see `json_bytes`); over the body cap
  (Settings.ingest_body_max_bytes, UTF-8 bytes of the JSON) the body is replaced by the
  marker ``{"$truncated": true, "original_bytes": n, "head": "<first bytes of the JSON>"}``
  and bodies_truncated is set;
- metadata: a mapping (else wrapped as {"value": ...}); over Settings.max_metadata_bytes it
  becomes the same marker; unknown keyword fields are kept in metadata;
- tags: a string or an iterable of strings (each cut to 200 characters, at most 100).

Runs, iterations and tool calls follow the same rule; a record missing what identifies it
(a run without id, an iteration without run_id and iteration number, a tool call without
run_id) cannot be stored and goes straight to the dead-letter table.

A normalised request is kept as its COPY row (`Record.values`: a tuple in REQUEST_COLUMNS
order whose uuid, jsonb and text[] values are already in their binary COPY format: the 16
bytes of a UUID, b"\x01" + the UTF-8 JSON, text[]'s array format; the tenant at 0, None
while it is a slug), built in one pass over the payload with the common cases (a str, int,
float, UUID or datetime already valid) checked inline; `Normaliser.requests` does several
at once, looking at their JSON in one pass (NUL, NaN, the secret pre-check). A tuple of
such plain values is not tracked by Python's cyclic garbage collector, so a batch in flight
adds nothing to its full collections. `Record.row` is the same as a dict (column -> value,
NULLs left out, UUIDs, JSON as text, tags as a list).
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any
from uuid import UUID

import orjson

from .._ids import uuid7
from .._sanitize import clean_json, clean_text
from ..redact import maybe_secret, scrub_json, scrub_text

__all__ = [
    "KIND_ORDER",
    "REQUEST_COLUMNS",
    "REQUEST_INDEX",
    "Normaliser",
    "Record",
    "decode",
    "encode",
    "json_bytes",
    "request_row",
    "request_values",
    "text_array",
]

#: Within a batch, kinds are applied in this order (foreign keys: runs first).
KIND_ORDER = {"run": 0, "iteration": 1, "tool_call": 2, "request": 3, "retrieval": 4}
TRUNCATED = "$truncated"
NOTES = "_llmbase"
_ZERO = UUID(int=0)
_MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
_CENT = Decimal("1e-10")
_MAX_COST = Decimal("1e10")
_INT4 = 2**31 - 1


class Invalid(ValueError):
    """A value that cannot be stored as given (the record keeps going without it)."""


Prepare = Callable[[str, "UUID | str", dict[str, Any]], "Record"]


class Record:
    """One record on its way to the sink (or the spool): normalised, or still the payload
    as logged plus the function that will normalise it (redaction included) on first use.
    The sink normalises fresh requests inside its COPY loop, so that work overlaps with the
    server storing the rows before them. A request is kept as its COPY row (`values`);
    `row` is a plain dict of the same (a copy: change `values` to change a request)."""

    __slots__ = (
        "_invalid",
        "_payload",
        "_prepare",
        "_row",
        "_user_ref",
        "_values",
        "attempts",
        "error",
        "first_failed_at",
        "fresh",
        "kind",
        "tenant",
    )

    def __init__(
        self,
        kind: str,
        tenant: UUID | str,  # a str is a tenant slug the writer still has to resolve
        row: dict[str, Any] | None = None,  # column -> value (requests: all; others: given)
        user_ref: str | None = None,  # an external user id the writer resolves (and creates)
        *,
        attempts: int = 0,
        error: str | None = None,
        first_failed_at: datetime | None = None,
        invalid: str | None = None,  # why it can never be stored: straight to dead letters
        fresh: bool = True,  # False once it went through the spool (it may be stored already)
        values: tuple[Any, ...] | None = None,  # a request's COPY row (then `row` is None)
    ) -> None:
        self.kind = kind
        self.tenant = tenant
        self._row = row
        self._values = values
        self._user_ref = user_ref
        self.attempts = attempts
        self.error = error
        self.first_failed_at = first_failed_at
        self._invalid = invalid
        self.fresh = fresh
        self._payload: dict[str, Any] | None = None
        self._prepare: Prepare | None = None

    @classmethod
    def lazy(cls, kind: str, tenant: UUID | str, payload: dict[str, Any], prepare: Prepare) -> Record:
        rec = cls(kind, tenant)
        rec._payload = payload
        rec._prepare = prepare
        return rec

    @staticmethod
    def prefetch(records: Sequence[Record]) -> None:
        """Normalise the requests among `records` still as logged, all at once when their
        preparer can (a `many` method, like Normaliser.requests): cheaper than one by one.
        The sink calls it on the next rows it will stream."""
        group = [r for r in records if r._prepare is not None and r.kind == "request"]
        if len(group) < 2:
            return
        prepare = group[0]._prepare
        many: Callable[[list[tuple[UUID | str, dict[str, Any]]]], list[Record]] | None
        many = getattr(prepare, "many", None)
        if many is None:
            return
        group = [r for r in group if r._prepare is prepare]
        made = many([(r.tenant, r._payload or {}) for r in group])
        for r, m in zip(group, made, strict=True):
            r._prepare = r._payload = None
            r._row, r._values, r._user_ref, r._invalid = m._row, m._values, m._user_ref, m._invalid

    def _materialise(self) -> None:
        prepare, payload = self._prepare, self._payload
        self._prepare = self._payload = None
        if prepare is not None and payload is not None:
            made = prepare(self.kind, self.tenant, payload)
            self._row, self._values = made._row, made._values
            self._user_ref, self._invalid = made._user_ref, made._invalid

    @property
    def values(self) -> tuple[Any, ...]:
        """A request's COPY row (see the module docstring)."""
        if self._prepare is not None:
            self._materialise()
        v = self._values
        if v is None:
            v = self._values = request_values(self._row or {}, self.tenant)
            self._row = None
        return v

    @values.setter
    def values(self, values: tuple[Any, ...]) -> None:
        self._prepare = self._payload = None
        self._row = None
        self._values = values

    @property
    def row(self) -> dict[str, Any]:
        if self._prepare is not None:
            self._materialise()
        if self._values is not None:
            return request_row(self._values)
        row = self._row
        if row is None:
            row = self._row = {}
        return row

    @property
    def user_ref(self) -> str | None:
        if self._prepare is not None:
            self._materialise()
        return self._user_ref

    @property
    def invalid(self) -> str | None:
        if self._prepare is not None:
            self._materialise()
        return self._invalid

    @invalid.setter
    def invalid(self, why: str | None) -> None:
        if self._prepare is not None:
            self._materialise()  # first, so it does not overwrite this
        self._invalid = why

    def may_need_user(self) -> bool:
        """Could this record name its user by external id (without normalising it)?"""
        p = self._payload
        if p is not None:
            return p.get("user") is not None and p.get("user_id") is None
        if self._user_ref is None:
            return False
        if self._values is not None:
            return self._values[_I_USER] is None
        return "user_id" not in (self._row or {})

    def peek(self, limit: datetime | None = None) -> tuple[UUID, datetime] | None:
        """(id, created_at) of a request without normalising it when they are plain (a UUID and
        an aware UTC datetime in range, as `log()` sets them); None: ask `values`. `limit`:
        the latest time allowed (default: now + 1 day)."""
        p = self._payload
        if p is None:
            return None
        rid, at = p.get("id"), p.get("created_at")
        if (
            type(rid) is UUID
            and type(at) is datetime
            and at.tzinfo is UTC
            and _MIN_TIME <= at <= (limit or _time_limit())
        ):
            return rid, at
        return None

    @property
    def id(self) -> UUID:
        """The record's own id (the dead-letter key)."""
        if self._prepare is not None:
            self._materialise()
        if self._values is not None and self._values[_I_ID] is not None:
            return UUID(bytes=self._values[_I_ID])
        row = self.row
        rid = row.get("id")
        if isinstance(rid, UUID):
            return rid
        if self.kind == "iteration" and isinstance(row.get("run_id"), UUID):
            from uuid import uuid5

            return uuid5(row["run_id"], str(row.get("iteration")))
        new = row["id"] = uuid7()
        if self._values is not None:
            v = self._values
            self._values = (*v[:_I_ID], new.bytes, *v[_I_ID + 1 :])
        return new

    def __repr__(self) -> str:
        shown = "pending" if self._prepare is not None else (self._values or self._row)
        return f"<Record {self.kind} {self.tenant} {shown}>"


# -- value converters: return the stored value or raise Invalid -------------------------------------
def _clean(s: str) -> str:
    """clean_text, skipping the regular expression for ASCII text without NUL (most text)."""
    if s.isascii() and "\x00" not in s:
        return s
    return clean_text(s)


def _text(limit: int) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        s = _clean(v if type(v) is str else str(v))
        return s if len(s) <= limit else s[: limit - 1] + "…"

    return conv


def _uuid(v: Any) -> UUID:
    if type(v) is UUID:
        return v
    try:
        return UUID(str(v))
    except ValueError:
        raise Invalid("not a UUID") from None


def _uuid_bytes(v: Any) -> bytes:
    return _uuid(v).bytes


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def conv(v: Any) -> int:
        if type(v) is not int:
            if isinstance(v, bool) or v is None:
                raise Invalid("not an integer")
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise Invalid("not an integer") from None
            if not f.is_integer():
                raise Invalid("not an integer")
            v = int(f)
        n: int = v
        if n < lo or n > hi:
            raise Invalid(f"out of range {lo}..{hi}")
        return n

    return conv


def _float(lo: float | None) -> Callable[[Any], float]:
    def conv(v: Any) -> float:
        if type(v) is not float:
            if isinstance(v, bool):
                raise Invalid("not a number")
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise Invalid("not a number") from None
        x: float = v
        if not math.isfinite(x) or (lo is not None and x < lo):
            raise Invalid("not a finite number" if not math.isfinite(x) else f"below {lo}")
        return x

    return conv


def _money(lo: Decimal | None) -> Callable[[Any], Decimal]:
    def conv(v: Any) -> Decimal:
        if type(v) is not Decimal and isinstance(v, bool):
            raise Invalid("not a number")
        try:
            d = v if isinstance(v, Decimal) else Decimal(repr(v) if isinstance(v, float) else str(v))
            d = d.quantize(_CENT)
        except (InvalidOperation, ValueError, TypeError):
            raise Invalid("not a number") from None
        if not d.is_finite() or abs(d) >= _MAX_COST or (lo is not None and d < lo):
            raise Invalid("out of range")
        return d

    return conv


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off", ""}


def _bool(v: Any) -> bool:
    if type(v) is bool:
        return v
    if isinstance(v, int | float) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise Invalid("not a boolean")


_limit_at = 0.0
_limit = _MIN_TIME


def _time_limit() -> datetime:
    """now + 1 day, recomputed at most once a second."""
    global _limit_at, _limit
    now = time.monotonic()
    if now - _limit_at > 1.0:
        _limit_at, _limit = now, datetime.now(UTC) + timedelta(days=1)
    return _limit


def _time(v: Any) -> datetime:
    if type(v) is datetime and v.tzinfo is UTC:
        if _MIN_TIME <= v <= _time_limit():
            return v
        raise Invalid("outside 2000-01-01 .. now + 1 day")
    if isinstance(v, datetime):
        d = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    elif isinstance(v, date):
        d = datetime(v.year, v.month, v.day, tzinfo=UTC)
    elif isinstance(v, int | float) and not isinstance(v, bool):
        try:
            d = datetime.fromtimestamp(v, UTC)
        except (OverflowError, OSError, ValueError):
            raise Invalid("not a time") from None
    elif isinstance(v, str):
        try:
            d = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            raise Invalid("not a time") from None
        d = d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)
    else:
        raise Invalid("not a time")
    if d < _MIN_TIME or d > _time_limit():
        raise Invalid("outside 2000-01-01 .. now + 1 day")
    return d


def _choice(allowed: frozenset[str], aliases: Mapping[str, str] | None = None) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        s = str(v).strip().lower()
        if aliases:
            s = aliases.get(s, s)
        if s not in allowed:
            raise Invalid(f"not one of {sorted(allowed)}")
        return s

    return conv


def _tags(v: Any) -> list[str]:
    if type(v) is str:
        v = [v]
    elif not isinstance(v, list | tuple | set | frozenset) and (
        not isinstance(v, Iterable) or isinstance(v, Mapping | bytes | str)
    ):
        raise Invalid("not a list of strings")
    out = [_clean(t if type(t) is str else str(t))[:200] for t in v]
    return out[:100]


REQUEST_TYPES = frozenset(
    ("chat", "completion", "embedding", "transcription", "speech", "image", "moderation", "rerank", "other")
)
REQUEST_STATUS = frozenset(("success", "error", "timeout", "rate_limited", "cancelled"))
_STATUS_ALIASES = {"ok": "success", "failed": "error", "failure": "error", "canceled": "cancelled"}
_TYPE_ALIASES = {
    "chat_completion": "chat",
    "chat.completions": "chat",
    "responses": "chat",
    "message": "chat",
    "messages": "chat",
    "embeddings": "embedding",
    "audio": "transcription",
    "images": "image",
}

#: Converters of llmbase.requests' columns (ids, times and JSON are handled apart).
_REQUEST_CONV: dict[str, Callable[[Any], Any]] = {
    "request_type": _choice(REQUEST_TYPES, _TYPE_ALIASES),
    "provider": _text(100),
    "model": _text(200),
    "user_id": _uuid,
    "conversation_id": _uuid,
    "message_id": _uuid,
    "run_id": _uuid,
    "iteration": _int(0, _INT4),
    "status": _choice(REQUEST_STATUS, _STATUS_ALIASES),
    "error_kind": _text(200),
    "error_message": _text(10_000),
    "http_status": _int(-32768, 32767),
    "tokens_prompt": _int(0, _INT4),
    "tokens_completion": _int(0, _INT4),
    "tokens_total": _int(0, _INT4),
    "tokens_cached": _int(0, _INT4),
    "tokens_reasoning": _int(0, _INT4),
    "cost_usd": _money(Decimal(0)),
    "cost_source": _text(200),
    "cost_unknown": _bool,
    "latency_ms": _float(0.0),
    "ttft_ms": _float(0.0),
    "stream": _bool,
    "cache_hit": _bool,
    "cost_saved_usd": _money(None),
    "audio_duration_s": _float(0.0),
    "audio_format": _text(50),
    "audio_bytes": _int(0, 2**63 - 1),
    "tags": _tags,
}

#: Column order of the request rows (the staging table and COPY), with their types.
REQUEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tenant_id", "uuid"),
    ("created_at", "timestamptz"),
    ("id", "uuid"),
    ("request_type", "text"),
    ("provider", "text"),
    ("model", "text"),
    ("user_id", "uuid"),
    ("conversation_id", "uuid"),
    ("message_id", "uuid"),
    ("run_id", "uuid"),
    ("iteration", "int4"),
    ("status", "text"),
    ("error_kind", "text"),
    ("error_message", "text"),
    ("http_status", "int2"),
    ("tokens_prompt", "int4"),
    ("tokens_completion", "int4"),
    ("tokens_total", "int4"),
    ("tokens_cached", "int4"),
    ("tokens_reasoning", "int4"),
    ("cost_usd", "numeric"),
    ("cost_source", "text"),
    ("cost_unknown", "bool"),
    ("latency_ms", "float8"),
    ("ttft_ms", "float8"),
    ("stream", "bool"),
    ("cache_hit", "bool"),
    ("cost_saved_usd", "numeric"),
    ("audio_duration_s", "float4"),
    ("audio_format", "text"),
    ("audio_bytes", "int8"),
    ("request_body", "jsonb"),
    ("response_body", "jsonb"),
    ("bodies_truncated", "bool"),
    ("tags", "text[]"),
    ("metadata", "jsonb"),
)
_REQUEST_DEFAULTS: dict[str, Any] = {
    "request_type": "other",
    "status": "success",
    "cost_unknown": False,
    "stream": False,
    "cache_hit": False,
    "bodies_truncated": False,
    "tags": [],
}
_TIME_COLUMNS = frozenset(("created_at", "started_at", "ended_at"))
_UUID_COLUMNS = frozenset(("tenant_id", "id", "user_id", "conversation_id", "message_id", "run_id"))
_MONEY_COLUMNS = frozenset(("cost_usd", "cost_saved_usd"))

RUN_STATUS = frozenset(("running", "success", "error", "cancelled"))
_RUN_CONV: dict[str, dict[str, Callable[[Any], Any]]] = {
    "run": {
        "id": _uuid,
        "user_id": _uuid,
        "conversation_id": _uuid,
        "name": _text(200),
        "status": _choice(RUN_STATUS, _STATUS_ALIASES),
        "error": _text(10_000),
        "started_at": _time,
        "ended_at": _time,
        "total_ms": _float(0.0),
        "iteration_count": _int(0, _INT4),
        "api_ms": _float(None),
        "tool_ms": _float(None),
    },
    "iteration": {
        "run_id": _uuid,
        "iteration": _int(1, _INT4),
        "started_at": _time,
        "ended_at": _time,
        "total_ms": _float(0.0),
        "api_ms": _float(0.0),
        "tool_ms": _float(0.0),
        "api_calls": _int(0, _INT4),
        "tool_calls": _int(0, _INT4),
        "message_id": _uuid,
    },
    "tool_call": {
        "id": _uuid,
        "run_id": _uuid,
        "iteration": _int(0, _INT4),
        "name": _text(200),
        "started_at": _time,
        "duration_ms": _float(0.0),
        "status": _choice(frozenset(("success", "error"))),
        "error": _text(10_000),
    },
}
_REQUIRED = {"run": ("id",), "iteration": ("run_id", "iteration"), "tool_call": ("run_id",)}

# -- the COPY row of a request -------------------------------------------------------------------------
#: Column -> position in a request's COPY row (REQUEST_COLUMNS order; the tenant is 0).
REQUEST_INDEX: dict[str, int] = {c: i for i, (c, _) in enumerate(REQUEST_COLUMNS)}
_COLS = tuple(c for c, _ in REQUEST_COLUMNS)
_NCOLS = len(REQUEST_COLUMNS)
_JSON_AT = frozenset(i for i, (_, t) in enumerate(REQUEST_COLUMNS) if t == "jsonb")
_UUID_AT = frozenset(i for i, (_, t) in enumerate(REQUEST_COLUMNS) if t == "uuid")
_I_ID = REQUEST_INDEX["id"]
_I_CREATED = REQUEST_INDEX["created_at"]
_I_USER = REQUEST_INDEX["user_id"]
_I_PROMPT = REQUEST_INDEX["tokens_prompt"]
_I_COMPLETION = REQUEST_INDEX["tokens_completion"]
_I_TOTAL = REQUEST_INDEX["tokens_total"]
_I_ERROR = REQUEST_INDEX["error_message"]
_I_REQUEST_BODY = REQUEST_INDEX["request_body"]
_I_RESPONSE_BODY = REQUEST_INDEX["response_body"]
_I_TRUNCATED = REQUEST_INDEX["bodies_truncated"]
_I_TAGS = REQUEST_INDEX["tags"]
_I_METADATA = REQUEST_INDEX["metadata"]
_JSONB = b"\x01"  # jsonb's binary format: a version byte, then the JSON text
_EMPTY_OBJECT = _JSONB + b"{}"

_ARRAY_HEAD = struct.Struct("!iiIii")  # ndim 1, no NULLs, element type, length, lower bound 1
_LEN = struct.Struct("!i")
_TEXT_OID = 25
_EMPTY_ARRAY = struct.pack("!iiI", 0, 0, _TEXT_OID)


def text_array(items: list[str]) -> bytes:
    """A list of str in text[]'s binary format (what COPY ... FORMAT BINARY reads)."""
    if not items:
        return _EMPTY_ARRAY
    parts = [_ARRAY_HEAD.pack(1, 0, _TEXT_OID, len(items), 1)]
    for t in items:
        b = t.encode()
        parts.append(_LEN.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def text_array_items(data: bytes) -> list[str]:
    """The inverse of `text_array`."""
    ndim = _LEN.unpack_from(data, 0)[0]
    if ndim == 0:
        return []
    n = _LEN.unpack_from(data, 12)[0]
    out: list[str] = []
    pos = 20
    for _ in range(n):
        size = _LEN.unpack_from(data, pos)[0]
        out.append(data[pos + 4 : pos + 4 + size].decode())
        pos += 4 + size
    return out


_ARRAYS: dict[tuple[str, ...], bytes] = {}  # text_array of tag lists seen (an app has a few)


def _tags_value(v: Any) -> bytes:
    """Tags in text[]'s binary format; plain lists of short ASCII strings take no detour."""
    if type(v) is list and len(v) <= 100:
        for t in v:
            if type(t) is not str or len(t) > 200 or not t.isascii() or "\x00" in t:
                break
        else:
            key = tuple(v)
            data = _ARRAYS.get(key)
            if data is None:
                data = text_array(v)
                if len(_ARRAYS) < 1024:
                    _ARRAYS[key] = data
            return data
    return text_array(_tags(v))


def request_values(row: Mapping[str, Any], tenant: UUID | str | None = None) -> tuple[Any, ...]:
    """The COPY row of a request given as a dict (a record read back from the spool)."""
    values: list[Any] = [None] * _NCOLS
    values[0] = tenant.bytes if isinstance(tenant, UUID) else None
    for k, v in row.items():
        i = REQUEST_INDEX.get(k)
        if i is None or i == 0 or v is None:
            continue
        if i in _JSON_AT:
            v = _JSONB + (v.encode() if isinstance(v, str) else json_bytes(v))
        elif i in _UUID_AT:
            v = v.bytes if isinstance(v, UUID) else UUID(str(v)).bytes
        elif i == _I_TAGS:
            v = text_array(list(v))
        values[i] = v
    return tuple(values)


def request_row(values: tuple[Any, ...]) -> dict[str, Any]:
    """A request's COPY row as a dict: column -> value, NULLs left out, UUIDs, JSON as
    text, tags as a list (the tenant is the record's, not in here)."""
    row: dict[str, Any] = {}
    for i in range(1, _NCOLS):
        v = values[i]
        if v is None:
            continue
        if i in _JSON_AT:
            v = bytes(v[1:]).decode()
        elif i in _UUID_AT:
            v = UUID(bytes=bytes(v))
        elif i == _I_TAGS:
            v = text_array_items(v)
        row[_COLS[i]] = v
    return row


# How `Normaliser.request` checks a field inline before calling its converter.
_TEXT, _ID, _INT, _FLOAT, _BOOL, _CHOICE, _TIME, _OTHER = range(8)
_INF = math.inf


def _request_spec() -> dict[str, tuple[int, int, Any, Callable[[Any], Any]]]:
    """Field -> (position, inline check, its argument, converter)."""
    text = {"provider": 100, "model": 200, "error_kind": 200, "error_message": 10_000}
    text |= {"cost_source": 200, "audio_format": 50}
    choices = {"request_type": REQUEST_TYPES, "status": REQUEST_STATUS}
    spec: dict[str, tuple[int, int, Any, Callable[[Any], Any]]] = {}
    for k, conv in _REQUEST_CONV.items():
        t = dict(REQUEST_COLUMNS)[k]
        if k in text:
            spec[k] = (REQUEST_INDEX[k], _TEXT, text[k], conv)
        elif k in choices:
            spec[k] = (REQUEST_INDEX[k], _CHOICE, choices[k], conv)
        elif t == "uuid":
            spec[k] = (REQUEST_INDEX[k], _ID, None, _uuid_bytes)
        elif t in ("int2", "int4", "int8"):
            lo, hi = {"int2": (-32768, 32767), "int4": (0, _INT4), "int8": (0, 2**63 - 1)}[t]
            spec[k] = (REQUEST_INDEX[k], _INT, (0 if k == "iteration" else lo, hi), conv)
        elif t in ("float8", "float4"):
            spec[k] = (REQUEST_INDEX[k], _FLOAT, 0.0, conv)
        elif t == "bool":
            spec[k] = (REQUEST_INDEX[k], _BOOL, None, conv)
        else:  # money, tags
            spec[k] = (REQUEST_INDEX[k], _OTHER, None, _tags_value if k == "tags" else conv)
    spec["id"] = (_I_ID, _ID, None, _uuid_bytes)
    spec["created_at"] = (_I_CREATED, _TIME, None, _time)
    return spec


_REQUEST_SPEC = _request_spec()
_REQUEST_TEMPLATE: list[Any] = [None] * _NCOLS
for _k, _v in _REQUEST_DEFAULTS.items():
    _REQUEST_TEMPLATE[REQUEST_INDEX[_k]] = _v
_REQUEST_TEMPLATE[_I_TAGS] = _EMPTY_ARRAY
_REQUEST_TEMPLATE[_I_METADATA] = _EMPTY_OBJECT


# -- JSON ----------------------------------------------------------------------------------------------
def _not_json(value: Any) -> Any:
    raise TypeError(type(value).__name__)


# The C encoder of the json module, built once (json.dumps builds one per call): compact
# separators, UTF-8 text as is, NaN / Infinity / other types refused (-> the slow rule).
_C_ENCODE = c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", False, False, False)

# orjson writes JSON values about ten times faster than the json module. It is used only where
# its output is the rule's: dates, dataclasses and subclasses of str / int / dict / list are
# passed to `_not_json` (-> the rule), and so are non-str keys, lone surrogates and integers
# beyond 64 bits (it raises); NUL becomes "\u0000" and NaN / Infinity null (it does not
# raise): both are looked for in its output. Enum members: their value, as in the rule.
_ORJSON = orjson.dumps
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def json_bytes(value: Any) -> bytes:
    """UTF-8 JSON of any Python value by the module's rule (never raises)."""
    return _json_list([value])[0][0]


def _json_list(values: list[Any]) -> tuple[list[bytes], bytes]:
    """`json_bytes` of each value, and all of them joined by newlines (where NUL and NaN are
    looked for at once)."""
    texts: list[bytes] = []
    for v in values:
        try:
            texts.append(_ORJSON(v, _not_json, _ORJSON_OPTIONS))
        except Exception:  # orjson.JSONEncodeError (a TypeError): not plain JSON, see above
            texts.append(dump_json(v).encode())
    joined = texts[0] if len(texts) == 1 else b"\n".join(texts)
    nul = b"\\" in joined and b"\\u0000" in joined
    if nul or b"null" in joined:  # "\u0000": a NUL; null: None, or a NaN / infinity?
        for i, (v, t) in enumerate(zip(values, texts, strict=True)):
            if (nul and b"\\u0000" in t) or (b"null" in t and _non_finite(v)):
                texts[i] = dump_json(v).encode()
        joined = texts[0] if len(texts) == 1 else b"\n".join(texts)
    return texts, joined


def _non_finite(value: Any) -> bool:
    """Is there a NaN or an infinity in `value` (plain dicts, lists and tuples; orjson took
    it, so it is no deeper than orjson's limit)?"""
    t = type(value)
    if t is float:
        return not math.isfinite(value)
    if t is dict:
        items: Iterable[Any] = value.values()
    elif t is list or t is tuple:
        try:  # numbers only (an embedding): math.fsum looks at them in C
            return not math.isfinite(math.fsum(value))
        except (TypeError, ValueError, OverflowError):  # not only numbers; inf - inf; too big
            items = value
    else:
        return False
    for v in items:
        t = type(v)
        if t is float:
            if not math.isfinite(v):
                return True
        elif (t is dict or t is list or t is tuple) and _non_finite(v):
            return True
    return False


def dump_json(value: Any) -> str:
    """JSON text of any Python value by the module's rule (never raises), with the json
    module (`json_bytes` is the fast way to the same)."""
    try:
        text = "".join(_C_ENCODE(value, 0))
    except (TypeError, ValueError, RecursionError):
        return _dump_clean(value)
    if "\\u0000" in text or (not text.isascii() and _has_surrogate(text)):
        return _dump_clean(value)
    return text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _dump_clean(value: Any) -> str:
    try:
        return json.dumps(clean_json(value), ensure_ascii=False, separators=(",", ":"))
    except Exception as exc:  # too deep, cyclic, a str() that raises: keep what can be kept
        try:
            shown = repr(value)[:1000]
        except Exception:
            shown = type(value).__name__
        return json.dumps(
            {"$unserializable": clean_text(shown), "error": clean_text(str(exc))[:200]}, ensure_ascii=False
        )


def cap_json_bytes(raw: bytes, limit: int) -> tuple[bytes, bool]:
    """`raw` (UTF-8 JSON), or the truncation marker when it is longer than `limit` bytes."""
    if len(raw) <= limit:
        return raw, False
    head = raw[:limit].decode(errors="ignore")
    marker = {TRUNCATED: True, "original_bytes": len(raw), "head": head}
    return json.dumps(marker, ensure_ascii=False, separators=(",", ":")).encode(), True


_Fields = tuple[list[Any], list[int], list[Any], "str | None"]


class Normaliser:
    """Turns payloads into Records (one per payload) with the settings' caps and scrubber."""

    def __init__(self, *, body_max_bytes: int, metadata_max_bytes: int, scrub: bool) -> None:
        self.body_max = body_max_bytes
        self.metadata_max = metadata_max_bytes
        self.scrub: Callable[[str], str] | None = scrub_text if scrub else None
        self._tenant: tuple[UUID | None, bytes] = (None, b"")

    def _json(self, value: Any, limit: int) -> bytes:
        """UTF-8 JSON of a value, redacted (`maybe_secret` first), capped."""
        texts, joined = _json_list([value])
        text = texts[0]
        if self.scrub is not None and maybe_secret(joined):
            text = scrub_json(value, text.decode()).encode()
        return cap_json_bytes(text, limit)[0]

    def _metadata_value(self, md: Any, extra: dict[str, Any] | None, notes: dict[str, Any] | None) -> Any:
        """The metadata object to store (None: empty)."""
        if md is None:
            obj: Any = {}
        elif type(md) is dict or isinstance(md, Mapping):
            obj = md if (not extra and not notes and type(md) is dict) else dict(md)
        else:
            obj = {"value": md}
        if extra:
            for k, v in extra.items():
                obj.setdefault(k, v)
        if notes:
            obj[NOTES] = notes
        return obj if obj else None

    def _metadata(self, md: Any, extra: dict[str, Any] | None, notes: dict[str, Any] | None) -> str:
        obj = self._metadata_value(md, extra, notes)
        if obj is None:
            return "{}"
        return self._json(obj, self.metadata_max).decode()

    # -- requests --------------------------------------------------------------------------
    def request(self, tenant: UUID | str, payload: Mapping[str, Any]) -> Record:
        return self.requests([(tenant, payload)])[0]

    def requests(self, items: Sequence[tuple[UUID | str, Mapping[str, Any]]]) -> list[Record]:
        """`request` for several payloads at once: the same records, but the JSON of all of
        them is looked at in one pass (NUL, NaN, the secret pre-check; per record only when
        that pass finds something)."""
        parts = [self._fields(tenant, payload) for tenant, payload in items]
        objs = [o for part in parts for o in part[2]]
        if objs:
            texts, joined = _json_list(objs)
            if self.scrub is not None and maybe_secret(joined):
                texts = self._redacted(parts, objs, texts)
            k = 0
            for vals, at, _, _ in parts:
                for i in at:
                    text = texts[k]
                    k += 1
                    limit = self.metadata_max if i == _I_METADATA else self.body_max
                    if len(text) > limit:
                        text = cap_json_bytes(text, limit)[0]
                        if i != _I_METADATA:
                            vals[_I_TRUNCATED] = True
                    vals[i] = _JSONB + text
        return [
            Record("request", tenant, None, user_ref, values=tuple(vals))
            for (tenant, _), (vals, _, _, user_ref) in zip(items, parts, strict=True)
        ]

    @staticmethod
    def _redacted(parts: list[_Fields], objs: list[Any], texts: list[bytes]) -> list[bytes]:
        """The JSON texts with secrets redacted, record by record where the pre-check says so."""
        out = list(texts)
        k = 0
        for _, at, _, _ in parts:
            mine = texts[k : k + len(at)]
            if mine and maybe_secret(mine[0] if len(mine) == 1 else b"\n".join(mine)):
                for j in range(k, k + len(at)):
                    out[j] = scrub_json(objs[j], texts[j].decode()).encode()
            k += len(at)
        return out

    def _fields(self, tenant: UUID | str, payload: Mapping[str, Any]) -> _Fields:
        """A request's COPY row but its JSON columns (a list), the positions of the JSON
        columns given, their values, and the external user id."""
        vals = _REQUEST_TEMPLATE.copy()
        if type(tenant) is UUID:
            last = self._tenant
            if last[0] is not tenant:  # most records are the last one's tenant
                last = self._tenant = (tenant, tenant.int.to_bytes(16))
            vals[0] = last[1]
        notes: dict[str, Any] | None = None
        extra: dict[str, Any] | None = None
        user_ref: str | None = None
        md: Any = None
        at: list[int] = []  # the JSON columns given (positions), and their values
        objs: list[Any] = []
        spec = _REQUEST_SPEC
        for k, v in payload.items():
            if v is None:
                continue
            s = spec.get(k)
            if s is not None:  # a column: the common valid cases inline, else its converter
                i, check, arg, conv = s
                t = type(v)
                if check == _TEXT:
                    if t is str and len(v) <= arg and v.isascii() and "\x00" not in v:
                        vals[i] = v
                        continue
                elif check == _ID:
                    if t is UUID:
                        vals[i] = v.int.to_bytes(16)  # v.bytes, without the property
                        continue
                elif check == _INT:
                    if t is int and arg[0] <= v <= arg[1]:
                        vals[i] = v
                        continue
                elif check == _FLOAT:
                    if t is float and 0.0 <= v < _INF:
                        vals[i] = v
                        continue
                elif check == _CHOICE:
                    if t is str and v in arg:
                        vals[i] = v
                        continue
                elif check == _BOOL:
                    if t is bool:
                        vals[i] = v
                        continue
                elif check == _TIME and t is datetime and v.tzinfo is UTC and _MIN_TIME <= v <= _time_limit():
                    vals[i] = v
                    continue
                try:
                    vals[i] = conv(v)
                except Exception as exc:  # Invalid, or a value whose str() fails
                    notes = _note(notes, k, v, _reason(exc))
            elif k == "request_body":
                at.append(_I_REQUEST_BODY)
                objs.append(v)
            elif k == "response_body":
                at.append(_I_RESPONSE_BODY)
                objs.append(v)
            elif k == "metadata":
                md = v
            elif k == "user":
                try:
                    ref = clean_text(v if type(v) is str else str(v))
                except Exception:
                    ref = ""
                if 1 <= len(ref) <= 256:
                    user_ref = ref
                else:
                    notes = _note(notes, k, v, "an external user id has 1 to 256 characters")
            elif k == "success" and "status" not in payload:
                try:
                    vals[REQUEST_INDEX["status"]] = "success" if _bool(v) else "error"
                except Exception as exc:  # Invalid, or a value whose str() fails
                    notes = _note(notes, k, v, _reason(exc))
            elif k in ("tenant_id", "bodies_truncated"):
                continue  # the tenant is the client's; truncation is ours to say
            else:
                if extra is None:
                    extra = {}
                extra[k] = v
        if vals[_I_ID] is None:
            vals[_I_ID] = uuid7().bytes
        if vals[_I_CREATED] is None:
            vals[_I_CREATED] = datetime.now(UTC)
        if vals[_I_TOTAL] is None:
            prompt, completion = vals[_I_PROMPT], vals[_I_COMPLETION]
            if prompt is not None or completion is not None:
                total = (prompt or 0) + (completion or 0)
                if total <= _INT4:
                    vals[_I_TOTAL] = total
        if vals[_I_USER] is not None:
            user_ref = None
        if vals[_I_ERROR] is not None and self.scrub is not None:
            vals[_I_ERROR] = self.scrub(vals[_I_ERROR])
        if md is not None or extra or notes:  # else: metadata {} (the template)
            obj = self._metadata_value(md, extra, notes)
            if obj is not None:
                at.append(_I_METADATA)
                objs.append(obj)
        return vals, at, objs, user_ref

    # -- runs, iterations, tool calls ----------------------------------------------------------
    def other(self, kind: str, tenant: UUID | str, payload: Mapping[str, Any]) -> Record:
        convs = _RUN_CONV[kind]
        row: dict[str, Any] = {}
        notes: dict[str, Any] | None = None
        extra: dict[str, Any] | None = None
        user_ref: str | None = None
        md: Any = None
        for k, v in payload.items():
            if v is None:
                continue
            conv = convs.get(k)
            if conv is not None:
                try:
                    row[k] = conv(v)
                except Exception as exc:  # Invalid, or a value whose str() fails
                    notes = _note(notes, k, v, _reason(exc))
            elif k == "metadata":
                md = v
            elif k == "user" and kind == "run":
                try:
                    ref = clean_text(v if type(v) is str else str(v))
                except Exception:
                    ref = ""
                if 1 <= len(ref) <= 256:
                    user_ref = ref
            elif k != "tenant_id":
                if extra is None:
                    extra = {}
                extra[k] = v
        if kind == "tool_call":  # inserted once: fill in now (runs and iterations merge later payloads)
            row.setdefault("id", uuid7())
            row.setdefault("name", "tool")
            row.setdefault("started_at", datetime.now(UTC))
        if md is not None or extra or notes:
            row["metadata"] = self._metadata(md, extra, notes)
        if "error" in row and self.scrub is not None:
            row["error"] = self.scrub(row["error"])
        if "user_id" in row:
            user_ref = None
        rec = Record(kind, tenant, row, user_ref)
        missing = [c for c in _REQUIRED[kind] if c not in row]
        if missing:
            rec.invalid = f"{kind} without {', '.join(missing)}"
        return rec

    def retrieval(self, tenant: UUID | str, payload: Mapping[str, Any]) -> Record:
        """A search of the document store (llmbase.retrievals + retrieval_results): kept as
        JSON-safe values (text sanitised by the documented rule), its id a UUID."""
        row = clean_json({k: v for k, v in payload.items() if k not in ("id", "created_at")})
        rid = payload.get("id")
        row["id"] = rid if isinstance(rid, UUID) else uuid7()
        at = payload.get("created_at")
        row["created_at"] = at if isinstance(at, datetime) else datetime.now(UTC)
        return Record("retrieval", tenant, row)

    def many(self, items: Sequence[tuple[UUID | str, Mapping[str, Any]]]) -> list[Record]:
        """Requests, several at once (Record.prefetch)."""
        return self.requests(items)

    def __call__(self, kind: str, tenant: UUID | str, payload: Mapping[str, Any]) -> Record:
        if kind == "request":
            return self.request(tenant, payload)
        if kind in _RUN_CONV:
            return self.other(kind, tenant, payload)
        if kind == "retrieval":
            return self.retrieval(tenant, payload)
        rec = Record(kind, tenant, {"metadata": dump_json(clean_json(dict(payload)))})
        rec.invalid = f"unknown record kind {kind!r}"
        return rec


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, Invalid) else f"unreadable ({type(exc).__name__})"


def _note(notes: dict[str, Any] | None, key: str, value: Any, reason: str) -> dict[str, Any]:
    if notes is None:
        notes = {}
    try:
        shown = clean_text(repr(value))[:200]
    except Exception:
        shown = type(value).__name__
    notes.setdefault("invalid", {})[key] = {"value": shown, "reason": reason}
    return notes


# -- spool / dead-letter encoding ------------------------------------------------------------------------
def _default(v: Any) -> Any:
    if isinstance(v, UUID | Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    raise TypeError(type(v).__name__)


def encode(rec: Record) -> bytes:
    """A record as compact JSON (the spool frame payload; the dead-letter payload)."""
    doc = {
        "k": rec.kind,
        "t": str(rec.tenant),
        "r": rec.row,
        "u": rec.user_ref,
        "a": rec.attempts,
        "e": rec.error,
        "f": rec.first_failed_at,
        "i": rec.invalid,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=_default).encode()


def decode(data: bytes) -> Record:
    """The inverse of `encode`."""
    doc = json.loads(data)
    row: dict[str, Any] = doc["r"]
    for k, v in row.items():
        if v is None:
            continue
        if k in _UUID_COLUMNS:
            row[k] = UUID(v)
        elif k in _TIME_COLUMNS:
            row[k] = datetime.fromisoformat(v)
        elif k in _MONEY_COLUMNS:
            row[k] = Decimal(v)
    tenant_text: str = doc["t"]
    try:
        tenant: UUID | str = UUID(tenant_text)
    except ValueError:
        tenant = tenant_text
    first = doc.get("f")
    kind: str = doc["k"]
    return Record(
        kind,
        tenant,
        None if kind == "request" else row,
        doc.get("u"),
        attempts=int(doc.get("a") or 0),
        error=doc.get("e"),
        first_failed_at=datetime.fromisoformat(first) if first else None,
        invalid=doc.get("i"),
        fresh=False,
        values=request_values(row, tenant) if kind == "request" else None,
    )


def zero_uuid() -> UUID:
    return _ZERO
