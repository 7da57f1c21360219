"""What happens around an instrumented call besides the record: the response cache (a hit
returns the stored response and the provider is not called; a successful miss is stored)
and the limits guard (admit before the provider is called, settle or cancel after).

A `Control` belongs to one call. Its I/O runs in the caller's thread for sync SDK clients
and is awaited for async ones. Rules: RateLimited / BudgetExceeded from the guard reach
the caller; any other failure of llmbase here is logged and the call goes on uncached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BudgetExceeded, RateLimited
from ._capture import Call, Instrumentation, dump, internal_failure

if TYPE_CHECKING:
    from ..cache import CacheEntry, CachePolicy, RequestKey
    from ..client import _Core

__all__ = ["Cacheable", "Control", "control_for"]

_REFUSALS = (RateLimited, BudgetExceeded)
_RAW_HEADER = "x-stainless-raw-response"
_guard_module: Any = None
_guard_failed_at: float | None = None


def _guard() -> Any:
    """llmbase.limits.guard (when the import fails, tried again at most every 5 s)."""
    global _guard_module, _guard_failed_at
    if _guard_module is not None:
        return _guard_module
    if _guard_failed_at is not None and time.monotonic() - _guard_failed_at < 5.0:
        return None
    try:
        from ..limits import guard
    except ImportError:
        _guard_failed_at = time.monotonic()
        return None
    _guard_module = guard
    return guard


class Cacheable(Protocol):
    """An endpoint whose responses can be cached and replayed."""

    cache_type: str | None

    def replay(self, sdk: Any, entry: CacheEntry, kwargs: Mapping[str, Any], is_async: bool) -> Any: ...

    def event_name(self, item: Any) -> str | None: ...


def _sdk_client(original: Any) -> Any:
    return getattr(getattr(original, "__self__", None), "_client", None)


def _raw_response(kwargs: Mapping[str, Any]) -> bool:
    headers = kwargs.get("extra_headers")
    return isinstance(headers, Mapping) and any(str(k).lower() == _RAW_HEADER for k in headers)


def _core_of(inst: Instrumentation, call: Call, policy: CachePolicy | None) -> _Core | None:
    """The llmbase core the call acts for: the policy's client, else the client the call is
    logged through (a context block's), else the instrumented client's."""
    for target in (
        policy.client if policy is not None else None,
        getattr(call.sink, "__self__", None),
        inst.client,
    ):
        core = getattr(target, "_core", None)
        if core is not None:
            return core  # type: ignore[no-any-return]
    return None


def control_for(
    inst: Instrumentation, endpoint: Any, call: Call, kwargs: Mapping[str, Any], original: Any, is_async: bool
) -> Control | None:
    """A Control when the call needs one (caching or limits apply), else None (fast)."""
    opts = inst.options
    policy: CachePolicy | None = opts.cache
    rtype = getattr(endpoint, "cache_type", None)
    stream = bool(call.fields.get("stream"))
    cache_on = (
        policy is not None
        and rtype is not None
        and policy.allows(rtype, stream)
        and not _raw_response(kwargs)
    )
    limits_on = opts.limits is not False
    if not cache_on and not limits_on:
        return None
    core = _core_of(inst, call, policy)
    if core is None:
        return None
    guard = _guard() if limits_on else None
    if not cache_on and guard is None:
        return None
    # The guard reads a context block's user itself (llmbase.limits.guard).
    return Control(
        inst, endpoint, call, kwargs, original, core, core, policy if cache_on else None, guard, is_async
    )


class Control:
    """Cache lookup, guard, and the after-call bookkeeping of one call."""

    def __init__(
        self,
        inst: Instrumentation,
        endpoint: Any,
        call: Call,
        kwargs: Mapping[str, Any],
        original: Any,
        core: _Core,
        guard_core: _Core,
        policy: CachePolicy | None,
        guard: Any,
        is_async: bool,
    ) -> None:
        self.inst = inst
        self.endpoint = endpoint
        self.call = call
        self.kwargs = kwargs
        self.original = original
        self.core = core
        self.guard_core = guard_core
        self.policy = policy
        self.guard = guard
        self.is_async = is_async
        self.key: RequestKey | None = None
        self.embedding: list[float] | None = None
        self.ticket: Any = None
        self.result: Any = None  # a non-stream result, to store
        self.items: list[Any] | None = [] if policy is not None and call.fields.get("stream") else None
        self.outcome: tuple[str, dict[str, Any]] | None = None
        self.finished = False
        call.control = self

    # -- before the call --------------------------------------------------------------
    def _key(self) -> RequestKey | None:
        from ..cache import request_key

        try:
            rtype = self.endpoint.cache_type
            self.key = request_key(self.kwargs, provider=self.inst.provider, request_type=rtype)
        except Exception:
            internal_failure("computing a cache key")
            self.policy = None
            self.items = None
        return self.key

    def lookup(self) -> Any:
        """The replayed response on a hit (the call is recorded), else None."""
        if self.policy is None or self._key() is None:
            return None
        assert self.key is not None
        try:
            from ..cache import Cache

            entry, self.embedding = Cache(self.core)._get(
                self.key,
                bool(self.call.fields.get("stream")),
                self.policy.namespace,
                self.policy.semantic,
                True,
            )
        except Exception:
            internal_failure("looking up the response cache")
            return None
        return self._serve(entry) if entry is not None else None

    async def alookup(self) -> Any:
        if self.policy is None or self._key() is None:
            return None
        assert self.key is not None
        try:
            from ..cache import AsyncCache

            entry, self.embedding = await AsyncCache(self.core)._get(
                self.key,
                bool(self.call.fields.get("stream")),
                self.policy.namespace,
                self.policy.semantic,
                True,
            )
        except Exception:
            internal_failure("looking up the response cache")
            return None
        return self._serve(entry) if entry is not None else None

    def _serve(self, entry: CacheEntry) -> Any:
        try:
            response = self.endpoint.replay(_sdk_client(self.original), entry, self.kwargs, self.is_async)
        except Exception:
            internal_failure("replaying a cached response")
            return None
        self.items = None
        self.policy = None  # nothing to store
        fields: dict[str, Any] = {
            "cache_hit": True,
            "cost_usd": Decimal(0),
            "cost_saved_usd": entry.cost_usd,
        }
        if entry.model:
            fields["model"] = entry.model
        if "request_body" in self.call.fields:
            fields["response_body"] = (
                {"cached_stream": True, "events": len(entry.response)} if entry.stream else entry.response
            )
        cache_meta: dict[str, Any] = {"entry_id": str(entry.id), "key": entry.key}
        if entry.similarity is not None:
            cache_meta["similarity"] = round(entry.similarity, 6)
        tokens = entry.usage.get("tokens_total")
        if tokens is not None:
            cache_meta["tokens_total"] = tokens
        self.call.metadata(cache=cache_meta)
        self.finished = True
        self.call.succeed(**fields)
        return response

    def admit(self) -> None:
        """Ask the guard; RateLimited / BudgetExceeded propagate (the call is recorded)."""
        if self.guard is None:
            return
        try:
            self.ticket = self.guard.admit(self.guard_core, **self._guard_args())
        except _REFUSALS as exc:
            self.finished = True
            self.call.fail(exc)
            raise
        except Exception:
            internal_failure("checking limits and budgets")

    async def aadmit(self) -> None:
        if self.guard is None:
            return
        try:
            self.ticket = await self.guard.aadmit(self.guard_core, **self._guard_args())
        except _REFUSALS as exc:
            self.finished = True
            self.call.fail(exc)
            raise
        except Exception:
            internal_failure("checking limits and budgets")

    def _guard_args(self) -> dict[str, Any]:
        f = self.call.fields
        return {
            "provider": self.inst.provider,
            "model": f.get("model"),
            "request_type": f.get("request_type") or "chat",
            "request": self.kwargs,
        }

    # -- after the call -----------------------------------------------------------------
    def see(self, item: Any) -> None:
        if self.items is not None:
            keep = getattr(self.endpoint, "keep", None)
            if keep is None or keep(item):
                self.items.append(item)

    def emitted(self, status: str, fields: dict[str, Any]) -> None:
        """The call's record is final (Call._emit): bookkeeping now (sync) or soon (async)."""
        self.outcome = (status, fields)
        if not self.is_async:
            self.finish()
        else:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            # Awaited by the async paths that can; a stream dropped unfinished lands here.
            task = loop.create_task(self.afinish())
            _PENDING.add(task)
            task.add_done_callback(_PENDING.discard)

    def _cost(self, fields: dict[str, Any]) -> Decimal | None:
        from ..pricing import cost_of, pricer

        given = fields.get("cost_usd")
        if given is not None:
            return Decimal(str(given))
        scope = self.core.scope()
        overrides = pricer(self.core.db).overrides(scope.tenant_id) if scope.tenant_id else {}
        return cost_of(fields, overrides).usd

    def _plan(self) -> tuple[bool, Decimal | None, Any]:
        """(store it?, cost, what to store) from the outcome."""
        assert self.outcome is not None
        status, fields = self.outcome
        cost = None
        try:
            cost = self._cost(fields)
        except Exception:
            internal_failure("pricing a call")
        body: Any = None
        ok = status == "success" and self.policy is not None and self.key is not None
        if ok:
            if self.items is not None:
                body = [[self.endpoint.event_name(i), dump(i)] for i in self.items]
                ok = bool(body)
            else:
                body = dump(self.result)
                ok = body is not None and not isinstance(body, str)
        return ok, cost, body

    def _usage(self) -> dict[str, Any]:
        assert self.outcome is not None
        f = self.outcome[1]
        keys = ("tokens_prompt", "tokens_completion", "tokens_total", "tokens_cached", "tokens_reasoning")
        return {k: f[k] for k in keys if isinstance(f.get(k), int)}

    def finish(self) -> None:
        if self.finished or self.outcome is None:
            return
        self.finished = True
        ok, cost, body = self._plan()
        tokens = self.outcome[1].get("tokens_total")
        if self.ticket is not None:
            try:
                if tokens is None and cost is None:
                    self.ticket.cancel()
                else:
                    self.ticket.settle(tokens=tokens, cost_usd=cost)
            except Exception:
                internal_failure("settling limits and budgets")
        if ok:
            self._store(body, cost)

    async def afinish(self) -> None:
        if self.finished or self.outcome is None:
            return
        self.finished = True
        try:
            ok, cost, body = await asyncio.to_thread(self._plan)
        except Exception:
            internal_failure("finishing a call")
            return
        tokens = self.outcome[1].get("tokens_total")
        if self.ticket is not None:
            try:
                if tokens is None and cost is None:
                    await self.ticket.cancel()
                else:
                    await self.ticket.settle(tokens=tokens, cost_usd=cost)
            except Exception:
                internal_failure("settling limits and budgets")
        if ok:
            await self._astore(body, cost)

    def _store_args(self, body: Any, cost: Decimal | None) -> dict[str, Any]:
        assert self.policy is not None
        return {
            "stream": self.items is not None,
            "namespace": self.policy.namespace,
            "usage": self._usage(),
            "cost_usd": cost,
            "ttl": self.policy.ttl,
            "semantic": self.policy.semantic,
            "embedding": self.embedding,
        }

    def _store(self, body: Any, cost: Decimal | None) -> None:
        from ..cache import Cache

        try:
            assert self.key is not None
            Cache(self.core).put(self.key, body, **self._store_args(body, cost))
        except Exception:
            internal_failure("storing a response in the cache")

    async def _astore(self, body: Any, cost: Decimal | None) -> None:
        from ..cache import AsyncCache

        try:
            assert self.key is not None
            await AsyncCache(self.core).put(self.key, body, **self._store_args(body, cost))
        except Exception:
            internal_failure("storing a response in the cache")

    def cancel(self) -> None:
        """The provider call raised before a record had usage: settle what the record says."""
        # Call.fail emits the record, which runs finish(); nothing else to do here.


_PENDING: set[asyncio.Task[None]] = set()
