"""The request log's write API: `client.requests.log()`, `flush()`, `stats()`, `close()`.

`log(**fields)` only enqueues: it fills in the id (UUIDv7) and created_at, attaches the
client's tenant and user (from its cached scope, never a database round trip) and the ids
of the enclosing `client.context(...)` block, appends to the writer's queue and returns the
id. No validation, no JSON, no database; it never raises (a failure is counted in
`stats()["errors"]` and logged through `logging`). See docs/ingest.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .._ids import uuid7
from ..db import DEFAULT_TENANT

if TYPE_CHECKING:
    from ..client import _Core
    from .writer import Writer

__all__ = ["AsyncRequests", "Requests", "enqueue"]

_log = logging.getLogger("llmbase.ingest")
_now = datetime.now
_CurrentIds = Callable[[], Mapping[str, Any]]
_current_ids: _CurrentIds | None = None
_context_loaded = False


def _load_context() -> _CurrentIds | None:
    """llmbase._context.current_ids, when that module is there (imported on first use)."""
    global _current_ids, _context_loaded
    try:
        from .._context import current_ids
    except ImportError:
        current_ids = None  # type: ignore[assignment]
    _current_ids = current_ids
    _context_loaded = True
    return current_ids


def _with_context(fields: dict[str, Any], ids: Mapping[str, Any]) -> None:
    """Add a context block's ids under the call's own: the call wins, tags add up,
    metadata merges (the call's keys win)."""
    has_user = "user" in fields or "user_id" in fields
    for k, v in ids.items():
        if k == "tags":
            mine = fields.get("tags")
            if mine is None:
                fields["tags"] = v
            else:
                mine = [mine] if isinstance(mine, str) else list(mine)
                fields["tags"] = list(v) + [t for t in mine if t not in v]
        elif k == "metadata":
            mine = fields.get("metadata")
            fields["metadata"] = v if mine is None else ({**v, **mine} if isinstance(mine, Mapping) else mine)
        elif k in ("user", "user_id"):
            if not has_user:
                fields[k] = v
        elif fields.get(k) is None:
            fields[k] = v


def _tenant_into(core: _Core, fields: dict[str, Any]) -> UUID | str:
    """The tenant a record belongs to; puts the scope's user into `fields`."""
    sc = core._scope
    if sc is not None and not sc.admin:
        fields.pop("tenant_id", None)  # a scoped client logs for its own tenant only
        if sc.user_id is not None:
            fields["user_id"] = sc.user_id  # and a user-scoped one for its own user
            fields.pop("user", None)
        assert sc.tenant_id is not None
        return sc.tenant_id
    if sc is not None:  # operator scope: the record says which tenant (default: the default)
        return _tenant_ref(fields.pop("tenant_id", None) or DEFAULT_TENANT)
    # Not resolved yet (a slug or an external user id): the writer resolves them.
    fields.pop("tenant_id", None)
    uref = core.user_ref
    if uref is not None:
        if isinstance(uref, UUID):
            fields["user_id"] = uref
            fields.pop("user", None)
        else:
            fields["user"] = uref
            fields.pop("user_id", None)
    return _tenant_ref(core.tenant_ref if core.tenant_ref is not None else DEFAULT_TENANT)


def _tenant_ref(ref: Any) -> UUID | str:
    if isinstance(ref, UUID):
        return ref
    text = str(ref)
    if len(text) == 36:
        try:
            return UUID(text)
        except ValueError:
            pass
    return text


def _submit(core: _Core, writer: Writer, kind: str, fields: dict[str, Any]) -> UUID | None:
    rid: Any = fields.get("id")
    if kind == "request":
        if rid is None:
            rid = fields["id"] = uuid7()
        elif type(rid) is not UUID:
            parsed = _tenant_ref(rid)
            if not isinstance(parsed, UUID):
                fields["invalid_id"] = rid  # kept in metadata; the record gets a fresh id
                parsed = uuid7()
            rid = fields["id"] = parsed
        if "created_at" not in fields:
            fields["created_at"] = _now(UTC)
        cur = _current_ids if _context_loaded else _load_context()
        if cur is not None:
            ids = cur()
            if ids:
                _with_context(fields, ids)
    writer.put(kind, _tenant_into(core, fields), fields)
    return rid if isinstance(rid, UUID) else None


def _failed(writer: Writer | None, exc: BaseException, what: str) -> None:
    try:
        if writer is not None:
            writer._error(exc, what)
        else:
            _log.error("llmbase: %s: %s", what, exc, exc_info=exc)
    except Exception:  # pragma: no cover - logging itself failed; never raise into the app
        return


def enqueue(target: Any, kind: str, payload: Mapping[str, Any]) -> UUID | None:
    """Queue a record for the writer (for producers: runs, integrations). `target` is a
    client or its core; kind is "request", "run", "iteration" or "tool_call"; the tenant
    comes from the client's scope. Returns the record's id when it has one. Never raises."""
    writer: Writer | None = None
    try:
        core = getattr(target, "_core", target)
        writer = core.db.ingest()
        return _submit(core, writer, kind, dict(payload))
    except Exception as exc:
        _failed(writer, exc, f"enqueueing a {kind} record failed")
        return None


class Requests:
    """The request log of a client's scope (sync)."""

    __slots__ = ("_core", "_writer")

    def __init__(self, core: _Core) -> None:
        self._core = core
        self._writer = core.db.ingest()

    def log(self, **fields: Any) -> UUID:
        """Log one model call; returns its id at once (the writer stores it in the
        background). Fields are llmbase.requests' columns (docs/ingest.md): request_type,
        provider, model, status / success, tokens_*, cost_usd, latency_ms, ttft_ms,
        request_body, response_body, tags, metadata, conversation_id, ... and `user`
        (an external id) or `user_id`. Unknown fields go into metadata."""
        try:
            # _submit, inlined for the common case (a scoped client, ids left to us).
            if "id" in fields or "tenant_id" in fields:
                rid = _submit(self._core, self._writer, "request", fields)
                assert rid is not None
                return rid
            rid = fields["id"] = uuid7()
            if "created_at" not in fields:
                fields["created_at"] = _now(UTC)
            cur = _current_ids if _context_loaded else _load_context()
            if cur is not None:
                ids = cur()
                if ids:
                    _with_context(fields, ids)
            core = self._core
            sc = core._scope
            if sc is not None and not sc.admin and sc.user_id is None:
                tenant: UUID | str | None = sc.tenant_id
            else:
                tenant = _tenant_into(core, fields)
            self._writer.put("request", tenant, fields)
            return rid
        except Exception as exc:
            _failed(self._writer, exc, "log() failed")
            rid = fields.get("id")
            return rid if isinstance(rid, UUID) else uuid7()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything logged so far (by this process) is stored; False on
        timeout (nothing is lost: it stays queued or spooled)."""
        return self._writer.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the writer (`client.close()` does this too)."""
        return self._writer.close(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters of this process's writer: enqueued, written, duplicates, spooled,
        replayed, dropped, dead_lettered, errors, batches, queue_depth, spool_bytes, ..."""
        return self._writer.stats()


class AsyncRequests(Requests):
    """The request log for the async client: `log()` is the same (it never waits);
    `flush()` and `close()` wait in a worker thread."""

    __slots__ = ()

    async def flush(self, timeout: float | None = 10.0) -> bool:  # type: ignore[override]
        return await asyncio.to_thread(self._writer.flush, timeout)

    async def close(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        return await asyncio.to_thread(self._writer.close, timeout)
