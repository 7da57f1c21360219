"""What every instrumented call shares: timing, ids from the context, the record, the error
mapping, and the stream proxies. Provider modules only say where usage lives.

Two rules hold everywhere here: the provider's result or exception reaches the caller
unchanged (the same object), and a failure of llmbase itself is logged, never raised.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar

from .._context import current_ids, current_log, current_timer

__all__ = ["Call", "Instrumentation", "Options", "StreamObserver", "classify", "dump", "wrap"]

_log = logging.getLogger("llmbase.instrument")
T = TypeVar("T")
Sink = Callable[..., Any]

#: request arguments that configure the HTTP client, not the model call
_TRANSPORT_ARGS = frozenset({"extra_headers", "extra_query", "timeout"})
_MAX_MESSAGE = 10_000


def internal_failure(what: str) -> None:
    """llmbase failed while observing a call: report it, never raise into the app."""
    _log.warning("llmbase instrumentation failed in %s; the call itself is unaffected", what, exc_info=True)


def given(value: Any) -> bool:
    """False for the SDKs' 'argument omitted' sentinels (Omit, NotGiven) and None."""
    return value is not None and type(value).__name__ not in ("Omit", "NotGiven")


def snapshot(value: Any, depth: int = 0) -> Any:
    """Copy the containers of a request (dicts, lists, tuples) so that the app may mutate its
    own objects (messages.append(...)) while the writer serialises this one; leaves are kept."""
    if depth > 32:
        return value
    if isinstance(value, dict):
        return {k: snapshot(v, depth + 1) for k, v in value.items() if given(v)}
    if isinstance(value, list | tuple):
        return [snapshot(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": len(value)}
    return value


def request_body(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: snapshot(v, 1) for k, v in kwargs.items() if k not in _TRANSPORT_ARGS and given(v)}


def dump(obj: Any) -> Any:
    """A JSON-able form of an SDK response model (its wire fields), or the object itself."""
    if obj is None or isinstance(obj, str | int | float | bool | dict | list):
        return obj
    model_dump = getattr(obj, "model_dump", None)
    if model_dump is not None:
        try:
            return model_dump(mode="json", exclude_unset=True, warnings=False)
        except Exception:
            return str(obj)
    return str(obj)


def classify(exc: BaseException) -> dict[str, Any]:
    """Record fields for a failed call: status, error_kind, error_message, http_status."""
    names = {c.__name__ for c in type(exc).__mro__}
    code = getattr(exc, "status_code", None)
    http = code if isinstance(code, int) and not isinstance(code, bool) else None
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | GeneratorExit):
        status = "cancelled"
    elif "RateLimitError" in names or "RateLimited" in names or http == 429:
        status = "rate_limited"
    elif "APITimeoutError" in names or isinstance(exc, TimeoutError) or http == 408:
        status = "timeout"
    else:
        status = "error"
    out: dict[str, Any] = {
        "status": status,
        "error_kind": type(exc).__name__[:200],
        "error_message": str(exc)[:_MAX_MESSAGE] or type(exc).__name__,
        "http_status": http,
    }
    return out


@dataclass
class Options:
    """instrument() options: see llmbase.instrument."""

    capture_bodies: bool = True
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    provider: str | None = None
    include_usage: bool = True
    #: a llmbase.cache.CachePolicy, or None (no caching)
    cache: Any = None
    #: check limits and budgets before each call (None/True: when defined; False: never)
    limits: bool | None = None


class Instrumentation:
    """Where the records of one SDK client go, and with which options."""

    def __init__(self, provider: str, client: Any, log: Sink | None, options: Options) -> None:
        self.reconfigure(provider, client, log, options)

    def reconfigure(self, provider: str, client: Any, log: Sink | None, options: Options) -> None:
        self.provider = provider
        self.client = client
        self.explicit_log = log
        self.options = options
        self._client_log: Sink | None = None

    def sink(self) -> Sink | None:
        """An explicit `log=` wins; then the client of the innermost context block; then the
        client given to instrument() (or the process default)."""
        if self.explicit_log is not None:
            return self.explicit_log
        ctx = current_log()
        if ctx is not None:
            return ctx
        if self._client_log is None and self.client is not None:
            try:
                self._client_log = self.client.requests.log
            except Exception:
                internal_failure("resolving client.requests.log")
        return self._client_log

    def start(
        self, request_type: str, model: Any, request: Mapping[str, Any] | None, *, stream: bool
    ) -> Call:
        return Call(self, request_type, model if isinstance(model, str) else None, request, stream)


class Call:
    """One model call being observed: started when the SDK method is called (or, for
    `messages.stream()`, when its context is entered) and emitted exactly once."""

    __slots__ = ("_t0", "control", "done", "fields", "hide_usage", "sink", "timer", "ttft_ms")

    def __init__(
        self,
        inst: Instrumentation,
        request_type: str,
        model: str | None,
        request: Mapping[str, Any] | None,
        stream: bool,
    ) -> None:
        self._t0 = time.perf_counter()
        self.done = False
        self.control: Any = None  # the call's cache / limits Control (integrations/_control.py)
        self.hide_usage = False  # llmbase asked for a usage chunk the caller did not
        self.ttft_ms: float | None = None
        # Taken now, not when the call ends: a stream may be drained in another context.
        self.sink = inst.sink()
        self.timer = current_timer()
        ids = current_ids()
        opts = inst.options
        fields: dict[str, Any] = {
            "created_at": datetime.now(UTC),
            "request_type": request_type,
            "provider": inst.provider,
            "model": model,
            "stream": stream,
        }
        fields.update(ids)
        tags = list(ids.get("tags", ()))
        tags += [t for t in opts.tags if t not in tags]
        if tags:
            fields["tags"] = tags
        if opts.metadata or "metadata" in ids:
            fields["metadata"] = {**opts.metadata, **ids.get("metadata", {})}
        if opts.capture_bodies and request is not None:
            fields["request_body"] = request_body(request)
        self.fields = fields

    def restart(self) -> None:
        """The request really starts now (a stream manager's `__enter__`)."""
        self._t0 = time.perf_counter()
        self.fields["created_at"] = datetime.now(UTC)

    def first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self._t0) * 1000.0

    def metadata(self, **values: Any) -> None:
        self.fields["metadata"] = {**self.fields.get("metadata", {}), **values}

    def succeed(self, status: str = "success", **fields: Any) -> None:
        self._emit(status, fields)

    def fail(self, exc: BaseException, **fields: Any) -> None:
        try:
            info = classify(exc)
            body = getattr(exc, "body", None)
            if body is not None and "request_body" in self.fields:
                info["response_body"] = body
            rid = getattr(exc, "request_id", None)
            if isinstance(rid, str):
                self.metadata(request_id=rid)
        except Exception:
            internal_failure("classifying an error")
            info = {"status": "error"}
        info.update(fields)
        self._emit(info.pop("status"), info)

    def _emit(self, status: str, extra: dict[str, Any]) -> None:
        if self.done:
            return
        self.done = True
        try:
            latency = (time.perf_counter() - self._t0) * 1000.0
            if self.timer is not None:
                self.timer.add_api(latency)
            fields = self.fields
            fields.update(extra)
            fields["status"] = status
            fields["latency_ms"] = latency
            if self.ttft_ms is not None:
                fields["ttft_ms"] = self.ttft_ms
            if self.sink is not None:
                self.sink(**fields)
        except Exception:
            internal_failure("recording a call")
        if self.control is not None:
            try:
                self.control.emitted(status, self.fields)
            except Exception:
                internal_failure("finishing a call")


# -- wrapping SDK methods ------------------------------------------------------------------
class Endpoint(Protocol):
    """How one SDK method is observed."""

    def begin(self, inst: Instrumentation, kwargs: dict[str, Any]) -> tuple[Call, dict[str, Any]]:
        """Start a call; returns it and the kwargs to send (normally the caller's own)."""
        ...

    def end(self, call: Call, result: Any) -> Any:
        """Record a result; returns what the caller gets (the result, or a stream proxy)."""
        ...


ORIGINAL = "__llmbase_original__"


def _is_async(original: Callable[..., Any], endpoint: Endpoint) -> bool:
    """An async SDK method: a coroutine function, or one of an Async* resource behind the
    SDKs' sync decorator (@required_args) that returns a coroutine. Endpoints that are
    sync methods on async clients too (messages.stream) say so with `sync_call`."""
    if inspect.iscoroutinefunction(original):
        return True
    if getattr(endpoint, "sync_call", False):
        return False
    return _async_owner(original)


def _async_owner(original: Callable[..., Any]) -> bool:
    return type(getattr(original, "__self__", None)).__name__.startswith("Async")


def _control(
    inst: Instrumentation,
    endpoint: Endpoint,
    call: Call,
    kwargs: dict[str, Any],
    original: Any,
    is_async: bool,
) -> Any:
    if inst.options.cache is None and inst.options.limits is False:
        return None
    try:
        from ._control import control_for

        return control_for(inst, endpoint, call, kwargs, original, is_async)
    except Exception:
        internal_failure("preparing cache and limits")
        return None


def wrap(original: Callable[..., Any], inst: Instrumentation, endpoint: Endpoint) -> Callable[..., Any]:
    """A wrapper with the original's signature and behaviour that observes each call."""
    if _is_async(original, endpoint):
        return _wrap_async(original, inst, endpoint)
    deferred = getattr(endpoint, "deferred", False)  # the request starts later (__enter__)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            call, send = endpoint.begin(inst, kwargs)
        except Exception:
            internal_failure("starting a call")
            return original(*args, **kwargs)
        ctl = _control(inst, endpoint, call, kwargs, original, deferred and _async_owner(original))
        if ctl is not None and not deferred:
            hit = ctl.lookup()
            if hit is not None:
                return hit
            ctl.admit()  # RateLimited / BudgetExceeded reach the caller
        try:
            result = original(*args, **send)
        except BaseException as exc:
            call.fail(exc)
            raise
        if inspect.iscoroutine(result):
            # An async method behind a sync decorator (the SDKs' @required_args).
            return _finish_async(result, call, endpoint)
        if ctl is not None:
            ctl.result = result
        try:
            return endpoint.end(call, result)
        except Exception:
            internal_failure("reading a result")
            return result

    setattr(wrapper, ORIGINAL, original)
    return wrapper


async def _finish_async(pending: Awaitable[Any], call: Call, endpoint: Endpoint) -> Any:
    try:
        result = await pending
    except BaseException as exc:
        call.fail(exc)
        raise
    try:
        return endpoint.end(call, result)
    except Exception:
        internal_failure("reading a result")
        return result


def install_endpoints(
    sdk_client: Any, inst: Instrumentation, endpoints: Iterable[tuple[tuple[str, ...], str, Endpoint]]
) -> None:
    """Replace each observed method on this client's own resource objects (never on a class):
    `sdk_client.chat.completions.create = wrapper`. Re-installing wraps the original again."""
    for path, method, endpoint in endpoints:
        resource: Any = sdk_client
        try:
            for attr in path:
                resource = getattr(resource, attr)
            original = getattr(resource, method)
        except AttributeError:
            continue  # an SDK version without this resource
        original = getattr(original, ORIGINAL, original)
        setattr(resource, method, wrap(original, inst, endpoint))


def uninstall_endpoints(sdk_client: Any, endpoints: Iterable[tuple[tuple[str, ...], str, Endpoint]]) -> None:
    """Undo install_endpoints: drop the instance attributes, the class methods show again."""
    for path, method, _ in endpoints:
        resource: Any = sdk_client
        try:
            for attr in path:
                resource = getattr(resource, attr)
        except AttributeError:
            continue
        if hasattr(getattr(resource, method, None), ORIGINAL):
            delattr(resource, method)


def _wrap_async(
    original: Callable[..., Awaitable[Any]], inst: Instrumentation, endpoint: Endpoint
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            call, send = endpoint.begin(inst, kwargs)
        except Exception:
            internal_failure("starting a call")
            return await original(*args, **kwargs)
        ctl = _control(inst, endpoint, call, kwargs, original, True)
        if ctl is not None:
            hit = await ctl.alookup()
            if hit is not None:
                return hit
            await ctl.aadmit()  # RateLimited / BudgetExceeded reach the caller
        try:
            result = await original(*args, **send)
        except BaseException as exc:
            call.fail(exc)
            if ctl is not None:
                await ctl.afinish()
            raise
        if ctl is not None:
            ctl.result = result
        try:
            out = endpoint.end(call, result)
        except Exception:
            internal_failure("reading a result")
            return result
        if ctl is not None and call.done:
            await ctl.afinish()
        return out

    setattr(wrapper, ORIGINAL, original)
    return wrapper


# -- streams -------------------------------------------------------------------------------
class StreamObserver:
    """Sees each item of a stream; says at the end what the call produced."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.complete = False
        self.started = False  # set once the caller starts iterating

    def on_item(self, item: Any) -> bool:
        """Observe one item; True hides it from the caller (a usage chunk we asked for)."""
        return False

    def result(self) -> dict[str, Any]:
        """Record fields (usage, model, response body) known at the end."""
        return {}

    def end(self, exc: BaseException | None = None) -> None:
        """Emit the call: complete, failed, or given up by the caller ('cancelled')."""
        call = self.call
        if call.done:
            return
        try:
            fields = self.result()
        except Exception:
            internal_failure("summarising a stream")
            fields = {}
        if exc is not None and not isinstance(exc, GeneratorExit):
            call.fail(exc, **fields)
        elif self.complete:
            call.succeed(**fields)
        else:
            call.succeed("cancelled", **fields)

    def see(self, item: Any) -> bool:
        try:
            ctl = self.call.control
            if ctl is not None:
                ctl.see(item)
            return self.on_item(item)
        except Exception:
            internal_failure("observing a stream item")
            return False


# The item generators are module functions, not methods: holding no reference to the
# proxy, they leave no reference cycle, so a stream the caller abandons is recorded as
# 'cancelled' as soon as it is dropped, not at the next garbage collection.
def _observe(stream: Any, obs: StreamObserver) -> Iterator[Any]:
    obs.started = True
    try:
        for item in stream:
            if not obs.see(item):
                yield item
    except BaseException as exc:  # GeneratorExit too: the caller stopped reading
        obs.end(exc)
        raise
    obs.complete = True
    obs.end()


async def _afinish(obs: StreamObserver) -> None:
    ctl = obs.call.control
    if ctl is not None:
        await ctl.afinish()


async def _aobserve(stream: Any, obs: StreamObserver) -> AsyncIterator[Any]:
    obs.started = True
    try:
        async for item in stream:
            if not obs.see(item):
                yield item
    except BaseException as exc:
        obs.end(exc)
        if not isinstance(exc, GeneratorExit):
            await _afinish(obs)
        raise
    obs.complete = True
    obs.end()
    await _afinish(obs)


class _ProxyBase:
    """Delegates every attribute to the wrapped stream and claims its class, so
    `isinstance(proxy, openai.Stream)` and `stream.response` work as before."""

    _llmbase_stream: Any
    _llmbase_obs: StreamObserver

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._llmbase_stream)

    def __getattr__(self, name: str) -> Any:
        stream = self.__dict__.get("_llmbase_stream")
        if stream is None:
            raise AttributeError(name)
        return getattr(stream, name)

    def __repr__(self) -> str:
        return repr(self._llmbase_stream)

    def __del__(self) -> None:
        # Dropped without ever being iterated. (Once iteration started, the item
        # generator, which outlives the proxy in `for x in proxy`, records the end.)
        obs = self.__dict__.get("_llmbase_obs")
        if obs is not None and not obs.started and not obs.call.done:
            obs.end()


class StreamProxy(_ProxyBase):
    """A sync stream observed as the caller iterates it; iteration is unchanged."""

    def __init__(self, stream: Any, observer: StreamObserver) -> None:
        self._llmbase_stream = stream
        self._llmbase_obs = observer
        self._llmbase_iter = _observe(stream, observer)

    def __iter__(self) -> Iterator[Any]:
        self._llmbase_obs.started = True  # the generator may now outlive this proxy
        return self._llmbase_iter

    def __next__(self) -> Any:
        return next(self._llmbase_iter)

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._llmbase_stream.__exit__(et, ev, tb)
        finally:
            self._llmbase_obs.end()

    def close(self) -> None:
        try:
            self._llmbase_stream.close()
        finally:
            self._llmbase_obs.end()


class AsyncStreamProxy(_ProxyBase):
    """An async stream observed as the caller iterates it; iteration is unchanged."""

    def __init__(self, stream: Any, observer: StreamObserver) -> None:
        self._llmbase_stream = stream
        self._llmbase_obs = observer
        self._llmbase_iter = _aobserve(stream, observer)

    def __aiter__(self) -> AsyncIterator[Any]:
        self._llmbase_obs.started = True
        return self._llmbase_iter

    async def __anext__(self) -> Any:
        return await self._llmbase_iter.__anext__()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._llmbase_stream.__aexit__(et, ev, tb)
        finally:
            self._llmbase_obs.end()
            await _afinish(self._llmbase_obs)

    async def close(self) -> None:
        try:
            await self._llmbase_stream.close()
        finally:
            self._llmbase_obs.end()
            await _afinish(self._llmbase_obs)
