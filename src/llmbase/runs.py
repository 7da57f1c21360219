"""Agent runs (seed 004): a run, its iterations and tool calls, timed and logged.

    with db.run("answer", conversation=conv, user="alice") as run:
        while not done:
            with run.iteration():              # instrumented calls inside are linked to it
                reply = openai.chat.completions.create(...)
                with run.tool("search"):
                    hits = search(...)

Every block also works with `async with`. Times are wall-clock milliseconds: an
iteration's api_ms is the summed latency of the instrumented calls inside it, tool_ms
the summed duration of its tool blocks, total_ms its whole duration. The run adds up
all of its calls and tools (inside iterations or not), counts iterations and times itself.
An exception leaving a block marks it status 'error' (and is re-raised unchanged).

Records go through the background writer (`llmbase.ingest.api.enqueue`): "run" when the
run starts and when it ends, "iteration" and "tool_call" when they end. A run that ends
with a conversation sets the conversation's completed_at, total_time_ms and
total_iterations (the writer does this in the same transaction).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from uuid import UUID

from ._context import Context, _id, current_timer
from ._ids import uuid7
from .errors import ValidationError

__all__ = ["Iteration", "Run", "ToolCall"]

_log = logging.getLogger("llmbase.runs")
_MAX_ERROR = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


def _error(ev: BaseException | None) -> str | None:
    if ev is None:
        return None
    text = f"{type(ev).__name__}: {ev}" if str(ev) else type(ev).__name__
    return text[:_MAX_ERROR]


def _failed(ev: BaseException | None) -> bool:
    # Leaving a block by GeneratorExit (a generator closed early) is not a failure.
    return ev is not None and not isinstance(ev, GeneratorExit)


def _metadata(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError("must be a mapping", field="metadata")
    return dict(value)


class _Block:
    """Shared `with` / `async with` plumbing: subclasses define _enter and _exit."""

    def _enter(self) -> None:
        raise NotImplementedError

    def _exit(self, ev: BaseException | None) -> None:
        raise NotImplementedError

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(ev)

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(ev)


class Run(_Block):
    """One agent run. Create it with `client.run(name, ...)` and enter it once."""

    def __init__(
        self,
        client: Any,
        name: str | None = None,
        *,
        conversation: Any = None,
        user: UUID | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
        id: UUID | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise ValidationError("must be a string of at most 200 characters", field="name")
        self.client = client
        self.id: UUID = id or uuid7()
        self.name = name
        self.conversation_id: UUID | None = (
            None if conversation is None else _id(conversation, "conversation")
        )
        self.user = user
        self.metadata = _metadata(metadata)
        self.status = "running"
        self.error: str | None = None
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.total_ms: float | None = None
        self.iteration_count = 0
        self.api_ms = 0.0
        self.tool_ms = 0.0
        self._t0 = 0.0
        self._lock = threading.Lock()
        self._context = Context(
            {"run": self.id, "conversation": self.conversation_id, "user": user, "tags": tags},
            client=client,
            timer=self,
        )

    # -- timing, reported by calls, iterations and tools ------------------------------------
    def add_api(self, ms: float) -> None:
        with self._lock:
            self.api_ms += ms

    def add_tool(self, ms: float) -> None:
        with self._lock:
            self.tool_ms += ms

    def _next_iteration(self) -> int:
        with self._lock:
            self.iteration_count += 1
            return self.iteration_count

    # -- children ---------------------------------------------------------------------------
    def iteration(self, *, message: Any = None, metadata: Mapping[str, Any] | None = None) -> Iteration:
        """The next iteration (numbered from 1 when entered)."""
        return Iteration(self, message=message, metadata=metadata)

    def tool(self, name: str, *, metadata: Mapping[str, Any] | None = None) -> ToolCall:
        """Time a tool execution; inside an iteration of this run it belongs to that iteration."""
        return ToolCall(self, name, metadata=metadata)

    # -- records ----------------------------------------------------------------------------
    def _payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "conversation_id": self.conversation_id,
            "status": self.status,
            "started_at": self.started_at,
            "metadata": self.metadata,
        }
        if isinstance(self.user, UUID):
            payload["user_id"] = self.user
        elif self.user is not None:
            payload["user"] = self.user
        if self.ended_at is not None:
            payload.update(
                ended_at=self.ended_at,
                total_ms=self.total_ms,
                iteration_count=self.iteration_count,
                api_ms=self.api_ms,
                tool_ms=self.tool_ms,
                error=self.error,
            )
        return payload

    def _enter(self) -> None:
        if self.started_at is not None:
            raise RuntimeError("a Run is entered once; create another with client.run()")
        self.started_at = _now()
        self._t0 = time.perf_counter()
        _emit(self.client, "run", self._payload())
        self._context.__enter__()

    def _exit(self, ev: BaseException | None) -> None:
        self._context.__exit__(None, None, None)
        self.total_ms = (time.perf_counter() - self._t0) * 1000.0
        self.ended_at = _now()
        if _failed(ev):
            self.status = "error"
            self.error = _error(ev)
        else:
            self.status = "success"
        _emit(self.client, "run", self._payload())

    def __enter__(self) -> Run:
        self._enter()
        return self

    async def __aenter__(self) -> Run:
        self._enter()
        return self

    def __repr__(self) -> str:
        return f"<Run {self.name!r} {self.id} {self.status}>"


class Iteration(_Block):
    """One iteration of a run: calls and tools inside it are linked to it."""

    def __init__(self, run: Run, *, message: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        self.run = run
        self.number = 0
        self.message_id: UUID | None = None if message is None else _id(message, "message")
        self.metadata = _metadata(metadata)
        self.api_ms = 0.0
        self.tool_ms = 0.0
        self.api_calls = 0
        self.tool_calls = 0
        self.total_ms: float | None = None
        self.started_at: datetime | None = None
        self._t0 = 0.0
        self._lock = threading.Lock()
        self._context: Context | None = None

    def add_api(self, ms: float) -> None:
        with self._lock:
            self.api_ms += ms
            self.api_calls += 1
        self.run.add_api(ms)

    def add_tool(self, ms: float) -> None:
        with self._lock:
            self.tool_ms += ms
            self.tool_calls += 1
        self.run.add_tool(ms)

    def tool(self, name: str, *, metadata: Mapping[str, Any] | None = None) -> ToolCall:
        return ToolCall(self.run, name, metadata=metadata, iteration=self)

    def _enter(self) -> None:
        if self.started_at is not None:
            raise RuntimeError("an Iteration is entered once; use run.iteration() again")
        self.number = self.run._next_iteration()
        self.started_at = _now()
        self._t0 = time.perf_counter()
        self._context = Context(
            {"run": self.run.id, "iteration": self.number, "message": self.message_id}, timer=self
        )
        self._context.__enter__()

    def _exit(self, ev: BaseException | None) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
        self.total_ms = (time.perf_counter() - self._t0) * 1000.0
        if _failed(ev):
            self.metadata = {**self.metadata, "status": "error", "error": _error(ev)}
        _emit(
            self.run.client,
            "iteration",
            {
                "run_id": self.run.id,
                "iteration": self.number,
                "started_at": self.started_at,
                "ended_at": _now(),
                "total_ms": self.total_ms,
                "api_ms": self.api_ms,
                "tool_ms": self.tool_ms,
                "api_calls": self.api_calls,
                "tool_calls": self.tool_calls,
                "message_id": self.message_id,
                "metadata": self.metadata,
            },
        )

    def __enter__(self) -> Iteration:
        self._enter()
        return self

    async def __aenter__(self) -> Iteration:
        self._enter()
        return self

    def __repr__(self) -> str:
        return f"<Iteration {self.number} of {self.run.id}>"


class ToolCall(_Block):
    """A timed tool execution of a run (and of the iteration it runs in, if any)."""

    def __init__(
        self,
        run: Run,
        name: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        iteration: Iteration | None = None,
    ) -> None:
        if not isinstance(name, str) or not 1 <= len(name) <= 200:
            raise ValidationError("must be a string of 1 to 200 characters", field="name")
        self.run = run
        self.name = name
        self.id = uuid7()
        self.metadata = _metadata(metadata)
        self.iteration = iteration
        self.duration_ms: float | None = None
        self.started_at: datetime | None = None
        self._t0 = 0.0

    def _enter(self) -> None:
        if self.iteration is None:
            current = current_timer()
            if isinstance(current, Iteration) and current.run is self.run:
                self.iteration = current
        self.started_at = _now()
        self._t0 = time.perf_counter()

    def _exit(self, ev: BaseException | None) -> None:
        self.duration_ms = (time.perf_counter() - self._t0) * 1000.0
        if self.iteration is not None:
            self.iteration.add_tool(self.duration_ms)
        else:
            self.run.add_tool(self.duration_ms)
        failed = _failed(ev)
        _emit(
            self.run.client,
            "tool_call",
            {
                "id": self.id,
                "run_id": self.run.id,
                "iteration": self.iteration.number if self.iteration is not None else None,
                "name": self.name,
                "started_at": self.started_at,
                "duration_ms": self.duration_ms,
                "status": "error" if failed else "success",
                "error": _error(ev) if failed else None,
                "metadata": self.metadata,
            },
        )

    def __enter__(self) -> ToolCall:
        self._enter()
        return self

    async def __aenter__(self) -> ToolCall:
        self._enter()
        return self


def _emit(client: Any, kind: str, payload: dict[str, Any]) -> None:
    """Hand a record to the background writer; never raises into the agent."""
    try:
        from .ingest.api import enqueue

        enqueue(client, kind, payload)
    except Exception:
        _log.warning(
            "llmbase: could not record %s %s", kind, payload.get("id") or payload.get("run_id"), exc_info=True
        )
