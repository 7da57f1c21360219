"""The response cache: `client.cache` (sync) / `AsyncCache`, and `instrument(..., cache=...)`.

An entry is one model response per tenant, keyed by the sha256 of the canonical request
(`request_key`), with a TTL, hit counts and the cost the original call had. A semantic
match (optional) embeds the prompt and accepts the closest entry with the same provider,
model and parameters when its cosine similarity reaches the threshold. See docs/cache.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError
from . import _store
from ._key import RequestKey, prompt_text, request_key
from ._store import MAX_ENTRY_BYTES, CacheEntry, CacheStats, threshold_of, ttl_seconds

if TYPE_CHECKING:
    from ..client import _Core
    from ..documents.embedders import Embedder

__all__ = [
    "MAX_ENTRY_BYTES",
    "AsyncCache",
    "Cache",
    "CacheEntry",
    "CachePolicy",
    "CacheStats",
    "RequestKey",
    "Semantic",
    "prompt_text",
    "request_key",
]


@dataclass(frozen=True)
class Semantic:
    """Semantic matching: embed the prompt with `embedder`; a hit needs cosine similarity
    >= `threshold` with an entry of the same tenant, namespace, provider, model and
    parameters. Use one embedder (model) per namespace."""

    embedder: Embedder
    threshold: float = 0.95

    def __post_init__(self) -> None:
        threshold_of(self.threshold)
        if not callable(getattr(self.embedder, "embed", None)):
            raise ValidationError("needs an embedder with .embed(texts)", field="semantic")


@dataclass(frozen=True)
class CachePolicy:
    """How `llmbase.instrument(sdk, cache=...)` caches (`cache=True` = these defaults).

    - `ttl`: seconds (or a timedelta) an entry lives; None = until invalidated.
    - `namespace`: a separate cache space (per feature, prompt version, ...).
    - `semantic`: a `Semantic(embedder, threshold)` for similar prompts; None = exact only.
    - `streams`: cache streamed calls too (replayed as streams).
    - `request_types`: which calls ("chat", "completion", "embedding"); None = all cacheable.
    - `client`: the llmbase client whose tenant owns the entries (default: the client the
      calls are logged through).
    """

    ttl: Any = 3600.0
    namespace: str = ""
    semantic: Semantic | None = None
    streams: bool = True
    request_types: frozenset[str] | None = None
    client: Any = None

    def __post_init__(self) -> None:
        ttl_seconds(self.ttl)
        _store.namespace_of(self.namespace)
        if self.semantic is not None and not isinstance(self.semantic, Semantic):
            raise ValidationError("must be llmbase.cache.Semantic(embedder, threshold)", field="semantic")

    @classmethod
    def of(cls, value: Any) -> CachePolicy | None:
        """instrument()'s `cache=` argument: None/False, True, a policy, or a dict of options."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, CachePolicy):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        raise ValidationError("must be True, a CachePolicy or a dict of its options", field="cache")

    def allows(self, request_type: str, stream: bool) -> bool:
        if stream and not self.streams:
            return False
        return self.request_types is None or request_type in self.request_types


def _key(request: Any, provider: str | None, model: str | None, request_type: str) -> RequestKey:
    if isinstance(request, RequestKey):
        return request
    return request_key(request, provider=provider, model=model, request_type=request_type)


def _semantic(value: Any) -> Semantic | None:
    if value is None or isinstance(value, Semantic):
        return value
    raise ValidationError("must be llmbase.cache.Semantic(embedder, threshold)", field="semantic")


def _embed(sem: Semantic, key: RequestKey) -> list[float] | None:
    text = prompt_text(key.request)
    if not text:
        return None
    return list(sem.embedder.embed([text])[0])


async def _aembed(sem: Semantic, key: RequestKey) -> list[float] | None:
    from ..documents.embedders import aembed

    text = prompt_text(key.request)
    if not text:
        return None
    return list((await aembed(sem.embedder, [text]))[0])


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="json", exclude_unset=True)
    return value


class _Base:
    def __init__(self, core: _Core) -> None:
        self._core = core


class Cache(_Base):
    """The response cache of a client's tenant (sync)."""

    def key(
        self,
        request: Mapping[str, Any],
        *,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
    ) -> str:
        """The hex key of a request (no database access)."""
        return _key(request, provider, model, request_type).hex

    def get(
        self,
        request: Mapping[str, Any] | RequestKey,
        *,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
        stream: bool = False,
        namespace: str = "",
        semantic: Semantic | None = None,
        count_hit: bool = True,
    ) -> CacheEntry | None:
        """The live entry of a request (counted as a hit), or None."""
        return self._get(
            _key(request, provider, model, request_type), stream, namespace, semantic, count_hit
        )[0]

    def _get(
        self, key: RequestKey, stream: bool, namespace: str, semantic: Semantic | None, count_hit: bool
    ) -> tuple[CacheEntry | None, list[float] | None]:
        sem = _semantic(semantic)
        entry = self._core.run(_store.lookup, key, stream=stream, namespace=namespace, count_hit=count_hit)
        if entry is not None or sem is None:
            return entry, None
        vec = _embed(sem, key)
        if vec is None:
            return None, None
        entry = self._core.run(
            _store.lookup,
            key,
            stream=stream,
            namespace=namespace,
            embedding=vec,
            threshold=sem.threshold,
            count_hit=count_hit,
        )
        return entry, vec

    def put(
        self,
        request: Mapping[str, Any] | RequestKey,
        response: Any,
        *,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
        stream: bool = False,
        namespace: str = "",
        ttl: Any = None,
        usage: Mapping[str, Any] | None = None,
        cost_usd: Any = None,
        semantic: Semantic | None = None,
        embedding: Sequence[float] | None = None,
    ) -> CacheEntry:
        """Store (or replace) a request's response: JSON, or a pydantic model (dumped)."""
        key = _key(request, provider, model, request_type)
        sem = _semantic(semantic)
        if embedding is None and sem is not None:
            embedding = _embed(sem, key)
        return self._core.run(
            _store.store,
            key,
            _dump(response),
            stream=stream,
            namespace=namespace,
            usage=usage,
            cost_usd=cost_usd,
            ttl=ttl,
            embedding=embedding,
        )

    def get_or_call(
        self,
        request: Mapping[str, Any],
        fn: Callable[[Mapping[str, Any]], Any],
        *,
        ttl: Any = None,
        semantic: Semantic | None = None,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
        namespace: str = "",
        load: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The cached response of `request`, else `fn(request)`, stored. A hit returns the
        stored JSON (through `load` when given, e.g. `ChatCompletion.model_validate`); a
        miss returns what fn returned. fn's exceptions propagate and store nothing."""
        ttl_seconds(ttl)
        key = _key(request, provider, model, request_type)
        entry, vec = self._get(key, False, namespace, semantic, True)
        if entry is not None:
            return load(entry.response) if load is not None else entry.response
        result = fn(request)
        self.put(key, result, namespace=namespace, ttl=ttl, semantic=semantic, embedding=vec)
        return result

    def invalidate(
        self,
        request: Mapping[str, Any] | RequestKey | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
        namespace: str | None = None,
        everything: bool = False,
    ) -> int:
        """Delete a request's entry, or entries by namespace / provider / model, or all of
        the tenant's (everything=True). Returns how many. Needs a tenant-wide client."""
        key = _key(request, provider, model, request_type) if request is not None else None
        return self._core.run(
            _store.invalidate,
            key,
            namespace=namespace,
            provider=provider if key is None else None,
            model=model if key is None else None,
            everything=everything,
        )

    def clean(self, limit: int | None = None) -> int:
        """Delete expired entries (the tenant's; every tenant's on `client.admin()`)."""
        return self._core.run(_store.clean, limit)

    def stats(self) -> CacheStats:
        """Entries, hits, hit rate and cost saved."""
        return self._core.run(_store.stats)


class AsyncCache(_Base):
    """The response cache for the async client: the same plans, awaited."""

    def key(
        self,
        request: Mapping[str, Any],
        *,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
    ) -> str:
        return _key(request, provider, model, request_type).hex

    async def get(
        self,
        request: Mapping[str, Any] | RequestKey,
        *,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
        stream: bool = False,
        namespace: str = "",
        semantic: Semantic | None = None,
        count_hit: bool = True,
    ) -> CacheEntry | None:
        key = _key(request, provider, model, request_type)
        return (await self._get(key, stream, namespace, semantic, count_hit))[0]

    async def _get(
        self, key: RequestKey, stream: bool, namespace: str, semantic: Semantic | None, count_hit: bool
    ) -> tuple[CacheEntry | None, list[float] | None]:
        sem = _semantic(semantic)
        entry = await self._core.arun(
            _store.lookup, key, stream=stream, namespace=namespace, count_hit=count_hit
        )
        if entry is not None or sem is None:
            return entry, None
        vec = await _aembed(sem, key)
        if vec is None:
            return None, None
        entry = await self._core.arun(
            _store.lookup,
            key,
            stream=stream,
            namespace=namespace,
            embedding=vec,
            threshold=sem.threshold,
            count_hit=count_hit,
        )
        return entry, vec

    async def put(
        self,
        request: Mapping[str, Any] | RequestKey,
        response: Any,
        *,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
        stream: bool = False,
        namespace: str = "",
        ttl: Any = None,
        usage: Mapping[str, Any] | None = None,
        cost_usd: Any = None,
        semantic: Semantic | None = None,
        embedding: Sequence[float] | None = None,
    ) -> CacheEntry:
        key = _key(request, provider, model, request_type)
        sem = _semantic(semantic)
        if embedding is None and sem is not None:
            embedding = await _aembed(sem, key)
        return await self._core.arun(
            _store.store,
            key,
            _dump(response),
            stream=stream,
            namespace=namespace,
            usage=usage,
            cost_usd=cost_usd,
            ttl=ttl,
            embedding=embedding,
        )

    async def get_or_call(
        self,
        request: Mapping[str, Any],
        fn: Callable[[Mapping[str, Any]], Awaitable[Any] | Any],
        *,
        ttl: Any = None,
        semantic: Semantic | None = None,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
        namespace: str = "",
        load: Callable[[Any], Any] | None = None,
    ) -> Any:
        """As Cache.get_or_call; `fn` may be async."""
        ttl_seconds(ttl)
        key = _key(request, provider, model, request_type)
        entry, vec = await self._get(key, False, namespace, semantic, True)
        if entry is not None:
            return load(entry.response) if load is not None else entry.response
        result = fn(request)
        if inspect.isawaitable(result):
            result = await result
        await self.put(key, result, namespace=namespace, ttl=ttl, semantic=semantic, embedding=vec)
        return result

    async def invalidate(
        self,
        request: Mapping[str, Any] | RequestKey | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        request_type: str = "chat",
        namespace: str | None = None,
        everything: bool = False,
    ) -> int:
        key = _key(request, provider, model, request_type) if request is not None else None
        return await self._core.arun(
            _store.invalidate,
            key,
            namespace=namespace,
            provider=provider if key is None else None,
            model=model if key is None else None,
            everything=everything,
        )

    async def clean(self, limit: int | None = None) -> int:
        return await self._core.arun(_store.clean, limit)

    async def stats(self) -> CacheStats:
        return await self._core.arun(_store.stats)
