"""Ids attached to every call logged inside a block: `with client.context(user=..., ...)`.

State lives in context variables, so a block covers the code inside it in its own thread and
every asyncio task created inside it (tasks copy the context when they are created); it
does not leak into other threads or tasks. Blocks nest: inner ids win, tags add up and
metadata merges. Threads started inside a block do not inherit it (Python threads start
with an empty context); `asyncio.to_thread` and `contextvars.copy_context().run` carry it.

The writer's `log()` reads `current_ids()` on its hot path: one `ContextVar.get()` of a
dict built when the block was entered, never per call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Protocol
from uuid import UUID

from .errors import ValidationError

__all__ = ["Context", "context", "current_ids", "current_log", "current_timer"]

_log = logging.getLogger("llmbase.context")


class Timer(Protocol):
    """Receives the latency of each instrumented call made inside a run or an iteration."""

    def add_api(self, ms: float) -> None: ...


_EMPTY: dict[str, Any] = {}
#: the merged ids of the innermost block, keyed like llmbase.requests columns (read-only)
_IDS: ContextVar[dict[str, Any]] = ContextVar("llmbase_ids", default=_EMPTY)
#: the `requests.log` of the client the innermost block was opened on (None: the caller's)
_LOG: ContextVar[Callable[..., Any] | None] = ContextVar("llmbase_log", default=None)
#: the run or iteration that instrumented calls report their latency to
_TIMER: ContextVar[Timer | None] = ContextVar("llmbase_timer", default=None)


def current_ids() -> dict[str, Any]:
    """The ids of the innermost `context()` block ({} outside any). Do not mutate it.

    Keys (only those set): user_id (UUID) or user (external id), conversation_id,
    message_id, run_id, iteration, tags (list of str), metadata (dict).
    """
    return _IDS.get()


def current_log() -> Callable[..., Any] | None:
    """`requests.log` of the client whose block is innermost, or None outside any block."""
    return _LOG.get()


def current_timer() -> Timer | None:
    return _TIMER.get()


def _id(value: Any, field: str) -> UUID:
    """A UUID from a UUID, its string, or an object with an `.id` (Conversation, Run...)."""
    if isinstance(value, UUID):
        return value
    ident = getattr(value, "id", value)
    if isinstance(ident, UUID):
        return ident
    try:
        return UUID(str(ident))
    except ValueError:
        raise ValidationError("not a valid id", field=field) from None


def normalize(**ids: Any) -> dict[str, Any]:
    """Validate block arguments into request column names (None values are dropped)."""
    out: dict[str, Any] = {}
    user = ids.get("user")
    if user is not None:
        if isinstance(user, str):
            out["user"] = user
        else:
            out["user_id"] = _id(user, "user")
    for key in ("conversation", "message", "run"):
        value = ids.get(key)
        if value is not None:
            out[key + "_id"] = _id(value, key)
    iteration = ids.get("iteration")
    if iteration is not None:
        if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
            raise ValidationError("must be a non-negative integer", field="iteration")
        out["iteration"] = iteration
    tags: Iterable[str] | None = ids.get("tags")
    if tags is not None:
        out["tags"] = [tags] if isinstance(tags, str) else [str(t) for t in tags]
    metadata: Mapping[str, Any] | None = ids.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise ValidationError("must be a mapping", field="metadata")
        out["metadata"] = dict(metadata)
    return out


def combine(outer: Mapping[str, Any], inner: Mapping[str, Any]) -> dict[str, Any]:
    """Nest `inner` in `outer`: inner ids win, tags add up (once each), metadata merges."""
    out = dict(outer)
    if "user" in inner or "user_id" in inner:
        out.pop("user", None)
        out.pop("user_id", None)
    for key, value in inner.items():
        if key == "tags":
            tags = list(out.get("tags", ()))
            out["tags"] = tags + [t for t in value if t not in tags]
        elif key == "metadata":
            out["metadata"] = {**out.get("metadata", {}), **value}
        else:
            out[key] = value
    return out


_KEYS = frozenset({"user", "conversation", "message", "run", "iteration", "tags", "metadata"})


class Context:
    """A block attaching ids (and optionally a client and a timer) to the calls inside it.
    Usable with `with` and `async with`; re-entrant objects are not (enter it once)."""

    __slots__ = ("_client", "_ids", "_timer", "_tokens")

    def __init__(self, ids: Mapping[str, Any], *, client: Any = None, timer: Timer | None = None) -> None:
        unknown = set(ids) - _KEYS
        if unknown:
            raise ValidationError(f"unknown context keys: {', '.join(sorted(unknown))}", field="context")
        self._ids = normalize(**ids)  # validate now, in the caller's frame
        self._client = client
        self._timer = timer
        self._tokens: tuple[Token[Any], ...] | None = None

    def __enter__(self) -> None:
        tokens: list[Token[Any]] = [_IDS.set(combine(_IDS.get(), self._ids))]
        log = _client_log(self._client)
        if log is not None:
            tokens.append(_LOG.set(log))
        if self._timer is not None:
            tokens.append(_TIMER.set(self._timer))
        self._tokens = tuple(tokens)

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        tokens, self._tokens = self._tokens, None
        for token in reversed(tokens or ()):
            # ValueError: exited in another context than it was entered in (an async
            # generator finalised elsewhere); that context never saw the block.
            with contextlib.suppress(ValueError):
                token.var.reset(token)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(et, ev, tb)


def _client_log(client: Any) -> Callable[..., Any] | None:
    """The client's `requests.log`, resolved once when the block is entered (never raises:
    without a usable writer, calls go to the instrumented client's own log)."""
    if client is None:
        return None
    try:
        log: Callable[..., Any] = client.requests.log
    except Exception:
        _log.warning("llmbase: cannot log through %r; using the instrumented client", client, exc_info=True)
        return None
    return log


def context(client: Any, **ids: Any) -> Context:
    """Attach ids to every call logged inside the block (see the module docstring).

    `user` is a UUID or an external id (str); `conversation`, `message`, `run` are UUIDs or
    objects with an `.id`; `iteration` an int; `tags` a list of str; `metadata` a dict.
    Calls made by instrumented SDK clients inside the block are logged through `client`
    (so `with db.tenant("acme").context(...)` logs them for tenant acme). A client scoped to
    a user (`db.user("alice")`) attaches that user unless `user=` is given.
    """
    core = getattr(client, "_core", None)
    if ids.get("user") is None and core is not None and core.user_ref is not None:
        ids["user"] = core.user_ref
    return Context(ids, client=client)
