"""Instrument the official OpenAI and Anthropic SDK clients: `llmbase.instrument(client)`.

Each observed method of *that client instance* (e.g. `openai_client.chat.completions.create`)
is replaced by a wrapper that times the call, reads usage from the response (or from the
stream as the caller iterates it) and logs one record through `client.requests.log`, which
only enqueues. Nothing is patched on the SDK's classes or modules; the provider's result
and exceptions reach the caller unchanged; llmbase's own failures are logged, never raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ._capture import Instrumentation, Options, install_endpoints, uninstall_endpoints

__all__ = ["get_default_client", "instrument", "set_default_client", "uninstrument"]

C = TypeVar("C")
_ATTR = "_llmbase_instrumentation"

_default: Any = None
_lock = threading.Lock()


def set_default_client(client: Any, *, replace: bool = True) -> None:
    """The llmbase client `instrument()` logs through when none is given. `llmbase.connect()`
    sets it to its first result (replace=False); pass None to clear it."""
    global _default
    with _lock:
        if replace or _default is None:
            _default = client


def get_default_client() -> Any:
    return _default


def _sdk(sdk_client: Any) -> str:
    for cls in type(sdk_client).__mro__:
        root = cls.__module__.split(".", 1)[0]
        if root in ("openai", "anthropic"):
            return root
    raise ConfigurationError(
        f"llmbase.instrument() does not know {type(sdk_client).__name__}: it instruments "
        "openai.OpenAI / AsyncOpenAI / AzureOpenAI and anthropic.Anthropic / AsyncAnthropic clients"
    )


def _module(kind: str) -> Any:
    import importlib

    return importlib.import_module(f"{__name__}.{kind}")


def instrument(
    sdk_client: C,
    client: Any = None,
    *,
    log: Callable[..., Any] | None = None,
    capture_bodies: bool = True,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    provider: str | None = None,
    include_usage: bool = True,
    cache: Any = None,
    limits: bool | None = None,
) -> C:
    """Log every model call made through `sdk_client` and return it (the same object).

    - `client`: the llmbase client to log through (default: the first `llmbase.connect()`
      result). Inside `with db.context(...)` blocks, calls are logged through that block's
      client, so a tenant- or user-scoped client there attributes them.
    - `log`: a callable taking request fields as keywords, instead of a client (tests,
      custom sinks).
    - `capture_bodies`: keep request and response bodies (the writer caps and redacts them).
    - `tags`, `metadata`: added to every record of this SDK client.
    - `provider`: the provider name for pricing (default: detected from the client).
    - `include_usage`: ask OpenAI streams for usage when the caller did not set
      `stream_options` (the extra usage chunk is hidden from the caller).
    - `cache`: True (defaults) or a `llmbase.cache.CachePolicy` (or a dict of its options):
      a hit returns the stored response as the SDK's own type without calling the provider
      and is logged with cache_hit and the cost it saved; streams are replayed as streams.
      See docs/cache.md.
    - `limits`: check the scope's rate limits and budgets before each call (after a cache
      miss) and settle after it. None (default) / True: whenever the scope has any (no
      database round trip when it has none); False: never. `RateLimited` /
      `BudgetExceeded` reach the caller and the provider is not called.

    Idempotent: instrumenting again updates these settings and wraps nothing twice.
    """
    kind = _sdk(sdk_client)
    if client is None and log is None:
        client = get_default_client()
        if client is None:
            raise ConfigurationError(
                "llmbase.instrument() needs an llmbase client: call llmbase.connect() first, "
                "or pass instrument(sdk_client, client)"
            )
    from ..cache import CachePolicy

    policy = CachePolicy.of(cache)
    if policy is not None and policy.client is None and client is None:
        raise ConfigurationError(
            "instrument(cache=...) needs an llmbase client: pass instrument(sdk, client, cache=...) "
            "or CachePolicy(client=...)"
        )
    if limits is not None and not isinstance(limits, bool):
        raise ConfigurationError("instrument(limits=...) takes True, False or None")
    mod = _module(kind)
    options = Options(
        capture_bodies=capture_bodies,
        tags=tuple(str(t) for t in tags),
        metadata=dict(metadata or {}),
        provider=provider,
        include_usage=include_usage,
        cache=policy,
        limits=limits,
    )
    existing = getattr(sdk_client, _ATTR, None)
    if isinstance(existing, Instrumentation):
        existing.reconfigure(provider or mod.detect_provider(sdk_client), client, log, options)
        return sdk_client
    inst = Instrumentation(provider or mod.detect_provider(sdk_client), client, log, options)
    install_endpoints(sdk_client, inst, mod.ENDPOINTS)
    _follow_copies(sdk_client, inst, mod)
    setattr(sdk_client, _ATTR, inst)
    return sdk_client


def _follow_copies(sdk_client: Any, inst: Instrumentation, mod: Any) -> None:
    """`sdk_client.with_options(...)` / `.copy(...)` return new clients: instrument them too."""
    for name in ("copy", "with_options"):
        original = getattr(sdk_client, name, None)
        if original is None or not callable(original):
            continue

        def copying(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            new = _original(*args, **kwargs)
            try:
                install_endpoints(new, inst, mod.ENDPOINTS)
                _follow_copies(new, inst, mod)
                setattr(new, _ATTR, inst)
            except Exception:
                from ._capture import internal_failure

                internal_failure("instrumenting a client copy")
            return new

        copying.__llmbase_original__ = original  # type: ignore[attr-defined]
        setattr(sdk_client, name, copying)


def uninstrument(sdk_client: C) -> C:
    """Restore the SDK client's own methods (the reverse of `instrument`)."""
    if getattr(sdk_client, _ATTR, None) is None:
        return sdk_client
    mod = _module(_sdk(sdk_client))
    uninstall_endpoints(sdk_client, mod.ENDPOINTS)
    for name in ("copy", "with_options"):
        if hasattr(getattr(sdk_client, name, None), "__llmbase_original__"):
            delattr(sdk_client, name)
    delattr(sdk_client, _ATTR)
    return sdk_client
