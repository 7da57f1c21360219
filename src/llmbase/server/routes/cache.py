"""The response cache of the key's tenant: `GET /v1/cache/stats`, `POST /v1/cache/get`
(a request's live entry, counted as a hit), `POST /v1/cache/put`, `POST /v1/cache/invalidate`,
`POST /v1/cache/clean` (expired entries). Requests are keyed as in `client.cache`
(docs/cache.md): the canonical JSON of the request with provider, model and type."""

from __future__ import annotations

from fastapi import APIRouter

from ...cache._store import CacheStats
from ...errors import NotFound
from ..auth import Principal, require
from ..schemas import CacheEntryOut, CacheInvalidateIn, CacheKeyIn, CachePutIn, Count
from ._common import ERRORS

router = APIRouter(prefix="/v1/cache", tags=["cache"], responses=ERRORS)


@router.get("/stats", response_model=CacheStats)
def cache_stats(principal: Principal = require("read")) -> CacheStats:
    """Entries, hits, hit rate and cost saved."""
    return principal.client.cache.stats()


@router.post("/get", response_model=CacheEntryOut)
def cache_get(body: CacheKeyIn, principal: Principal = require("read")) -> CacheEntryOut:
    """The live entry of a request (404 on a miss)."""
    entry = principal.client.cache.get(
        body.request,
        provider=body.provider,
        model=body.model,
        request_type=body.request_type,
        stream=body.stream,
        namespace=body.namespace,
    )
    if entry is None:
        key = principal.client.cache.key(
            body.request, provider=body.provider, model=body.model, request_type=body.request_type
        )
        raise NotFound("cache entry", key)
    return CacheEntryOut.of(entry)


@router.post("/put", response_model=CacheEntryOut, status_code=201)
def cache_put(body: CachePutIn, principal: Principal = require("write")) -> CacheEntryOut:
    """Store (or replace) a request's response."""
    entry = principal.client.cache.put(
        body.request,
        body.response,
        provider=body.provider,
        model=body.model,
        request_type=body.request_type,
        stream=body.stream,
        namespace=body.namespace,
        ttl=body.ttl,
        usage=body.usage,
        cost_usd=body.cost_usd,
    )
    return CacheEntryOut.of(entry)


@router.post("/invalidate", response_model=Count)
def cache_invalidate(body: CacheInvalidateIn, principal: Principal = require("write")) -> Count:
    """Delete a request's entry, or entries by namespace / provider / model, or all
    (`everything`). Returns how many."""
    n = principal.client.cache.invalidate(
        body.request,
        provider=body.provider,
        model=body.model,
        request_type=body.request_type,
        namespace=body.namespace,
        everything=body.everything,
    )
    return Count(count=n)


@router.post("/clean", response_model=Count)
def cache_clean(principal: Principal = require("write")) -> Count:
    """Delete the tenant's expired entries."""
    return Count(count=principal.client.cache.clean())
