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
  dates, objects) becomes its str() (llmbase._sanitize.clean_json); over the body cap
  (Settings.ingest_body_max_bytes, UTF-8 bytes of the JSON) the body is replaced by the
  marker ``{"$truncated": true, "original_bytes": n, "head": "<first bytes of the JSON>"}``
  and bodies_truncated is set;
- metadata: a mapping (else wrapped as {"value": ...}); over Settings.max_metadata_bytes it
  becomes the same marker; unknown keyword fields are kept in metadata;
- tags: a string or an iterable of strings (each cut to 200 characters, at most 100).

Runs, iterations and tool calls follow the same rule; a record missing what identifies it
(a run without id, an iteration without run_id and iteration number, a tool call without
run_id) cannot be stored and goes straight to the dead-letter table.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any
from uuid import UUID

from .._ids import uuid7
from .._sanitize import clean_json, clean_text
from ..redact import scrub_json, scrub_text

__all__ = [
    "KIND_ORDER",
    "REQUEST_COLUMNS",
    "Normaliser",
    "Record",
    "decode",
    "encode",
]

#: Within a batch, kinds are applied in this order (foreign keys: runs first).
KIND_ORDER = {"run": 0, "iteration": 1, "tool_call": 2, "request": 3}
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
    as logged plus the function that will normalise it (redaction included) on first use of
    its row. The sink normalises fresh requests inside its COPY loop, so that work overlaps
    with the server storing the rows before them."""

    __slots__ = (
        "_invalid",
        "_pending",
        "_row",
        "_user_ref",
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
        pending: tuple[Prepare, dict[str, Any]] | None = None,
    ) -> None:
        self.kind = kind
        self.tenant = tenant
        self._row = row
        self._user_ref = user_ref
        self.attempts = attempts
        self.error = error
        self.first_failed_at = first_failed_at
        self._invalid = invalid
        self.fresh = fresh
        self._pending = pending

    @classmethod
    def lazy(cls, kind: str, tenant: UUID | str, payload: dict[str, Any], prepare: Prepare) -> Record:
        return cls(kind, tenant, pending=(prepare, payload))

    def _materialise(self) -> dict[str, Any]:
        pending, self._pending = self._pending, None
        if pending is not None:
            made = pending[0](self.kind, self.tenant, pending[1])
            self._row, self._user_ref, self._invalid = made._row, made._user_ref, made._invalid
        if self._row is None:
            self._row = {}
        return self._row

    @property
    def row(self) -> dict[str, Any]:
        row = self._row
        return row if row is not None else self._materialise()

    @property
    def user_ref(self) -> str | None:
        if self._pending is not None:
            self._materialise()
        return self._user_ref

    @property
    def invalid(self) -> str | None:
        if self._pending is not None:
            self._materialise()
        return self._invalid

    @invalid.setter
    def invalid(self, why: str | None) -> None:
        self.row  # noqa: B018 - materialise first, so it does not overwrite this
        self._invalid = why

    def may_need_user(self) -> bool:
        """Could this record name its user by external id (without normalising it)?"""
        if self._pending is not None:
            p = self._pending[1]
            return p.get("user") is not None and p.get("user_id") is None
        return self._user_ref is not None and "user_id" not in (self._row or {})

    def peek(self) -> tuple[UUID, datetime] | None:
        """(id, created_at) of a request without normalising it when they are plain (a UUID and
        an aware UTC datetime in range, as `log()` sets them); None: ask `row`."""
        if self._pending is None:
            return None
        p = self._pending[1]
        rid, at = p.get("id"), p.get("created_at")
        if (
            type(rid) is UUID
            and type(at) is datetime
            and at.tzinfo is UTC
            and _MIN_TIME <= at <= _time_limit()
        ):
            return rid, at
        return None

    @property
    def id(self) -> UUID:
        """The record's own id (the dead-letter key)."""
        row = self.row
        rid = row.get("id")
        if isinstance(rid, UUID):
            return rid
        if self.kind == "iteration" and isinstance(row.get("run_id"), UUID):
            from uuid import uuid5

            return uuid5(row["run_id"], str(row.get("iteration")))
        rid = row["id"] = uuid7()
        return rid

    def __repr__(self) -> str:
        return f"<Record {self.kind} {self.tenant} {'pending' if self._pending else self._row}>"


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
        if isinstance(v, bool):
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


# -- JSON ----------------------------------------------------------------------------------------------
def _not_json(value: Any) -> Any:
    raise TypeError(type(value).__name__)


# The C encoder of the json module, built once (json.dumps builds one per call): compact
# separators, UTF-8 text as is, NaN / Infinity / other types refused (-> the slow rule).
_C_ENCODE = c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", False, False, False)


def dump_json(value: Any) -> str:
    """JSON text of any Python value by the module's rule (never raises)."""
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


def cap_json(text: str, limit: int) -> tuple[str, bool]:
    """`text`, or the truncation marker when its UTF-8 size exceeds `limit` bytes."""
    if len(text) * 4 <= limit:
        return text, False
    raw = text.encode()
    if len(raw) <= limit:
        return text, False
    head = raw[:limit].decode(errors="ignore")
    marker = {TRUNCATED: True, "original_bytes": len(raw), "head": head}
    return json.dumps(marker, ensure_ascii=False, separators=(",", ":")), True


class Normaliser:
    """Turns payloads into Records (one per payload) with the settings' caps and scrubber."""

    def __init__(self, *, body_max_bytes: int, metadata_max_bytes: int, scrub: bool) -> None:
        self.body_max = body_max_bytes
        self.metadata_max = metadata_max_bytes
        self.scrub: Callable[[str], str] | None = scrub_text if scrub else None
        self._scrub_json: Callable[[Any, str], str] | None = scrub_json if scrub else None

    def _json(self, value: Any, limit: int) -> tuple[str, bool]:
        text = dump_json(value)
        if self._scrub_json is not None:
            text = self._scrub_json(value, text)
        return cap_json(text, limit)

    def _metadata(self, md: Any, extra: dict[str, Any] | None, notes: dict[str, Any] | None) -> str:
        if md is None:
            obj: Any = {}
        elif isinstance(md, Mapping):
            obj = md if (not extra and not notes and type(md) is dict) else dict(md)
        else:
            obj = {"value": md}
        if extra:
            for k, v in extra.items():
                obj.setdefault(k, v)
        if notes:
            obj[NOTES] = notes
        if not obj:
            return "{}"
        return self._json(obj, self.metadata_max)[0]

    # -- requests --------------------------------------------------------------------------
    def request(self, tenant: UUID | str, payload: Mapping[str, Any]) -> Record:
        row: dict[str, Any] = dict(_REQUEST_DEFAULTS)
        notes: dict[str, Any] | None = None
        extra: dict[str, Any] | None = None
        user_ref: str | None = None
        md: Any = None
        bodies: dict[str, Any] = {}
        for k, v in payload.items():
            if v is None:
                continue
            conv = _REQUEST_CONV.get(k)
            if conv is not None:
                try:
                    row[k] = conv(v)
                except Exception as exc:  # Invalid, or a value whose str() fails
                    notes = _note(notes, k, v, _reason(exc))
                continue
            if k in ("request_body", "response_body"):
                bodies[k] = v
            elif k == "metadata":
                md = v
            elif k == "id":
                try:
                    row["id"] = _uuid(v)
                except Exception as exc:  # Invalid, or a value whose str() fails
                    notes = _note(notes, k, v, _reason(exc))
            elif k == "created_at":
                try:
                    row["created_at"] = _time(v)
                except Exception as exc:  # Invalid, or a value whose str() fails
                    notes = _note(notes, k, v, _reason(exc))
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
                    row["status"] = "success" if _bool(v) else "error"
                except Exception as exc:  # Invalid, or a value whose str() fails
                    notes = _note(notes, k, v, _reason(exc))
            elif k in ("tenant_id", "bodies_truncated"):
                continue  # the tenant is the client's; truncation is ours to say
            else:
                if extra is None:
                    extra = {}
                extra[k] = v
        if "id" not in row:
            row["id"] = uuid7()
        if "created_at" not in row:
            row["created_at"] = datetime.now(UTC)
        if "tokens_total" not in row and ("tokens_prompt" in row or "tokens_completion" in row):
            total = row.get("tokens_prompt", 0) + row.get("tokens_completion", 0)
            if total <= _INT4:
                row["tokens_total"] = total
        if "user_id" in row:
            user_ref = None
        truncated = False
        for k, v in bodies.items():
            row[k], cut = self._json(v, self.body_max)
            truncated = truncated or cut
        row["bodies_truncated"] = truncated
        if "error_message" in row and self.scrub is not None:
            row["error_message"] = self.scrub(row["error_message"])
        row["metadata"] = self._metadata(md, extra, notes)
        return Record("request", tenant, row, user_ref)

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

    def __call__(self, kind: str, tenant: UUID | str, payload: Mapping[str, Any]) -> Record:
        if kind == "request":
            return self.request(tenant, payload)
        if kind in _RUN_CONV:
            return self.other(kind, tenant, payload)
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
    return Record(
        doc["k"],
        tenant,
        row,
        doc.get("u"),
        attempts=int(doc.get("a") or 0),
        error=doc.get("e"),
        first_failed_at=datetime.fromisoformat(first) if first else None,
        invalid=doc.get("i"),
        fresh=False,
    )


def zero_uuid() -> UUID:
    return _ZERO
