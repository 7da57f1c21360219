"""The cache's SQL, written once as plans (sync and async clients run the same ones)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from psycopg import sql

from .._sanitize import clean_json
from ..errors import PayloadTooLarge, PermissionDenied, ValidationError
from ..stores._common import Ctx
from ..stores._plan import Plan, Query
from ._key import RequestKey

__all__ = [
    "MAX_ENTRY_BYTES",
    "CacheEntry",
    "CacheStats",
    "clean",
    "invalidate",
    "lookup",
    "stats",
    "store",
]

#: the largest response (its JSON) the cache stores
MAX_ENTRY_BYTES = 8 * 1024 * 1024
_MAX_DIM = 16_000

_COLS = (
    "id, tenant_id, namespace, key_hash, stream, provider, model, request_type, response, usage,"
    " cost_usd, hit_count, put_count, last_hit_at, created_at, expires_at"
)


@dataclass(frozen=True)
class CacheEntry:
    """A stored response. `response` is the body (JSON) or, for a stream, the list of its
    events `[event name or None, data]`; `similarity` is set on semantic hits."""

    id: UUID
    tenant_id: UUID
    namespace: str
    key_hash: bytes
    stream: bool
    provider: str
    model: str
    request_type: str
    response: Any
    usage: dict[str, Any]
    cost_usd: Decimal | None
    hit_count: int
    put_count: int
    last_hit_at: datetime | None
    created_at: datetime
    expires_at: datetime | None
    similarity: float | None = None

    @property
    def key(self) -> str:
        return self.key_hash.hex()


@dataclass(frozen=True)
class CacheStats:
    """Totals of the scope's tenant: `hit_rate` = hits / (hits + stores) over the entries
    currently kept; `cost_saved_usd` = sum of hits x the original call's cost."""

    entries: int
    expired: int
    hits: int
    stores: int
    hit_rate: float | None
    cost_saved_usd: Decimal
    bytes: int
    last_hit_at: datetime | None


# -- validation ---------------------------------------------------------------------------
def namespace_of(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("must be a string", field="namespace")
    if "\x00" in value or len(value) > 200:
        raise ValidationError("at most 200 characters, no NUL", field="namespace")
    return value


def ttl_seconds(ttl: Any) -> float | None:
    """None (never expires), seconds > 0, or a positive timedelta."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, int | float | Decimal):
        raise ValidationError("must be seconds (a number) or a timedelta", field="ttl")
    value = float(ttl)
    if not math.isfinite(value) or value <= 0:
        raise ValidationError("must be a positive, finite number of seconds", field="ttl")
    if value > 100 * 365 * 86400:
        raise ValidationError("longer than 100 years", field="ttl")
    return value


def threshold_of(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError("must be a number", field="threshold")
    v = float(value)
    if not math.isfinite(v) or not 0.0 < v <= 1.0:
        raise ValidationError("must be in (0, 1]", field="threshold")
    return v


def vector_text(embedding: Any) -> str:
    """pgvector's text form of an embedding, checked: finite numbers, 1..16000 of them."""
    if isinstance(embedding, str | bytes) or not isinstance(embedding, Sequence):
        raise ValidationError("must be a list of numbers", field="embedding")
    if not 0 < len(embedding) <= _MAX_DIM:
        raise ValidationError(f"must have 1 to {_MAX_DIM} dimensions", field="embedding")
    out = []
    for x in embedding:
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise ValidationError("must be a list of numbers", field="embedding")
        f = float(x)
        if not math.isfinite(f):
            raise ValidationError("must contain finite numbers only", field="embedding")
        out.append(repr(f))
    if not any(float(x) for x in embedding):
        raise ValidationError("must not be all zeros (no direction)", field="embedding")
    return "[" + ",".join(out) + "]"


def cost_of(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValidationError("must be a number", field="cost_usd")
    try:
        d = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationError("must be a number", field="cost_usd") from exc
    if not d.is_finite() or d < 0 or d >= Decimal(10) ** 10:
        raise ValidationError("must be a finite number >= 0", field="cost_usd")
    return d.quantize(Decimal("1e-10"))


def usage_of(value: Any) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise ValidationError("must be a mapping of token counts", field="usage")
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str) or "\x00" in k:
            raise ValidationError("keys must be strings", field="usage")
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValidationError(f"{k} must be a number >= 0", field="usage")
        out[k] = v
    return json.dumps(out)


def response_json(response: Any) -> str:
    text = json.dumps(clean_json(response), ensure_ascii=False, separators=(",", ":"))
    if len(text) > MAX_ENTRY_BYTES or len(text.encode()) > MAX_ENTRY_BYTES:
        raise PayloadTooLarge(f"larger than {MAX_ENTRY_BYTES} bytes", field="response")
    return text


def _row(r: dict[str, Any], similarity: float | None = None) -> CacheEntry:
    return CacheEntry(
        id=r["id"],
        tenant_id=r["tenant_id"],
        namespace=r["namespace"],
        key_hash=bytes(r["key_hash"]),
        stream=r["stream"],
        provider=r["provider"],
        model=r["model"],
        request_type=r["request_type"],
        response=r["response"],
        usage=r["usage"],
        cost_usd=r["cost_usd"],
        hit_count=r["hit_count"],
        put_count=r["put_count"],
        last_hit_at=r["last_hit_at"],
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        similarity=similarity,
    )


# -- plans --------------------------------------------------------------------------------
_LIVE = sql.SQL("(expires_at IS NULL OR expires_at > now())")
_C = sql.SQL(_COLS)
# Hit counts are statistics and entries can be recomputed: no wait for a WAL flush.
_ASYNC_COMMIT = Query("SELECT set_config('synchronous_commit', 'off', true)", fetch="none")
_HIT = sql.SQL(
    "UPDATE llmbase.cache_entries SET hit_count = hit_count + 1, last_hit_at = now()"
    " WHERE tenant_id = %s AND namespace = %s AND key_hash = %s AND stream = %s AND {live}"
    " RETURNING {cols}"
).format(live=_LIVE, cols=_C)
_PEEK = sql.SQL(
    "SELECT {cols} FROM llmbase.cache_entries"
    " WHERE tenant_id = %s AND namespace = %s AND key_hash = %s AND stream = %s AND {live}"
).format(live=_LIVE, cols=_C)
_HIT_ID = sql.SQL(
    "UPDATE llmbase.cache_entries SET hit_count = hit_count + 1, last_hit_at = now()"
    " WHERE tenant_id = %s AND id = %s AND {live} RETURNING {cols}"
).format(live=_LIVE, cols=_C)
_BY_ID = sql.SQL("SELECT {cols} FROM llmbase.cache_entries WHERE tenant_id = %s AND id = %s").format(cols=_C)


def _nearest(vs: str) -> sql.Composed:
    """The closest live entry with the same parameters (exact scan of those candidates)."""
    return sql.SQL(
        "SELECT id, 1 - (embedding OPERATOR({vs}.<=>) %s::{vs}.vector) AS similarity"
        " FROM llmbase.cache_entries"
        " WHERE tenant_id = %s AND namespace = %s AND params_hash = %s AND stream = %s"
        " AND embedding IS NOT NULL AND {vs}.vector_dims(embedding) = %s AND {live}"
        " ORDER BY embedding OPERATOR({vs}.<=>) %s::{vs}.vector LIMIT 1"
    ).format(vs=sql.Identifier(vs), live=_LIVE)


def lookup(
    ctx: Ctx,
    key: RequestKey,
    *,
    stream: bool = False,
    namespace: str = "",
    embedding: Sequence[float] | None = None,
    threshold: float = 0.95,
    count_hit: bool = True,
) -> Plan[CacheEntry | None]:
    """The live entry of this request (a hit is counted), else the semantically closest
    one with the same parameters when `embedding` is given and similar enough."""
    tid = ctx.scope.require_tenant()
    ns = namespace_of(namespace)
    vec = vector_text(embedding) if embedding is not None else None
    thr = threshold_of(threshold)
    if count_hit:
        yield _ASYNC_COMMIT
    args = (tid, ns, key.key_hash, bool(stream))
    row = yield Query(_HIT if count_hit else _PEEK, args, fetch="optional")
    if row is not None:
        return _row(row)
    if vec is None:
        return None
    vs = yield Query("SELECT llmbase.vector_schema()::text", fetch="one", tuples=True)
    dims = vec.count(",") + 1
    near = yield Query(
        _nearest(vs[0]),
        (vec, tid, ns, key.params_hash, bool(stream), dims, vec),
        fetch="optional",
        tuples=True,
    )
    if near is None or near[1] is None or float(near[1]) < thr:
        return None
    q = _HIT_ID if count_hit else _BY_ID
    hit = yield Query(q, (tid, near[0]), fetch="optional")
    return _row(hit, float(near[1])) if hit is not None else None


_PUT = (
    "INSERT INTO llmbase.cache_entries AS c (tenant_id, namespace, key_hash, stream, params_hash,"
    " provider, model, request_type, request, response, usage, cost_usd, embedding, expires_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s, {emb},"
    " now() + make_interval(secs => %s))"
    " ON CONFLICT (tenant_id, namespace, key_hash, stream) DO UPDATE SET"
    " params_hash = EXCLUDED.params_hash, request = EXCLUDED.request, response = EXCLUDED.response,"
    " usage = EXCLUDED.usage, cost_usd = EXCLUDED.cost_usd, embedding = EXCLUDED.embedding,"
    " expires_at = EXCLUDED.expires_at, created_at = now(), put_count = c.put_count + 1"
    " RETURNING {cols}"
)


def store(
    ctx: Ctx,
    key: RequestKey,
    response: Any,
    *,
    stream: bool = False,
    namespace: str = "",
    usage: Mapping[str, Any] | None = None,
    cost_usd: Any = None,
    ttl: Any = None,
    embedding: Sequence[float] | None = None,
    keep_request: bool = True,
) -> Plan[CacheEntry]:
    """Store (or replace) the entry of a request."""
    tid = ctx.scope.require_tenant()
    ns = namespace_of(namespace)
    secs = ttl_seconds(ttl)
    body = response_json(response)
    use = usage_of(usage)
    cost = cost_of(cost_usd)
    vec = vector_text(embedding) if embedding is not None else None
    req = json.dumps(clean_json(key.request), ensure_ascii=False) if keep_request else None
    if req is not None and len(req) > MAX_ENTRY_BYTES:
        req = None  # the key is what matters; a huge prompt is not kept twice
    if vec is None:
        emb: sql.Composable = sql.SQL("NULL")
    else:
        vs = yield Query("SELECT llmbase.vector_schema()::text", fetch="one", tuples=True)
        emb = sql.SQL("%s::{vs}.vector").format(vs=sql.Identifier(vs[0]))
    # A cache entry can be recomputed: a crash losing the last ones is cheaper than a WAL
    # flush per store.
    yield _ASYNC_COMMIT
    params: list[Any] = [tid, ns, key.key_hash, bool(stream), key.params_hash, key.provider]
    params += [key.model, key.request_type, req, body, use, cost]
    if vec is not None:
        params.append(vec)
    params.append(secs)
    row = yield Query(sql.SQL(_PUT).format(emb=emb, cols=_C), params, fetch="one")
    return _row(row)


def invalidate(
    ctx: Ctx,
    key: RequestKey | None = None,
    *,
    namespace: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    everything: bool = False,
) -> Plan[int]:
    """Delete entries: one request's (both shapes), or by namespace / provider / model, or
    all of the tenant's with everything=True. Returns the count."""
    tid = ctx.scope.require_tenant()
    if ctx.scope.user_id is not None:
        raise PermissionDenied("invalidating the tenant's shared cache needs a tenant-wide client")
    conds = [sql.SQL("tenant_id = %s")]
    params: list[Any] = [tid]
    if key is not None:
        conds.append(sql.SQL("key_hash = %s"))
        params.append(key.key_hash)
    if namespace is not None:
        conds.append(sql.SQL("namespace = %s"))
        params.append(namespace_of(namespace))
    if provider is not None:
        conds.append(sql.SQL("provider = %s"))
        params.append(_bounded(provider, "provider", 100))
    if model is not None:
        conds.append(sql.SQL("model = %s"))
        params.append(_bounded(model, "model", 200))
    if len(conds) == 1 and not everything:
        raise ValidationError(
            "say what to invalidate (a request, namespace, provider, model or everything=True)"
        )
    q = sql.SQL("DELETE FROM llmbase.cache_entries WHERE {}").format(sql.SQL(" AND ").join(conds))
    n: int = yield Query(q, params, fetch="rowcount")
    return n


def _bounded(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        raise ValidationError(f"must be a string of at most {limit} characters", field=field)
    return value


def clean(ctx: Ctx, limit: int | None = None) -> Plan[int]:
    """Delete expired entries (llmbase.clean_expired_cache); returns the count."""
    if not ctx.scope.admin:
        ctx.scope.require_tenant()
        if ctx.scope.user_id is not None:
            raise PermissionDenied("cleaning the tenant's shared cache needs a tenant-wide client")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError("must be a positive integer", field="limit")
    row = yield Query("SELECT llmbase.clean_expired_cache(%s)", (limit,), fetch="one", tuples=True)
    return int(row[0])


_STATS = sql.SQL(
    "SELECT count(*) FILTER (WHERE {live}) AS entries,"
    " count(*) FILTER (WHERE NOT {live}) AS expired,"
    " coalesce(sum(hit_count), 0)::bigint AS hits, coalesce(sum(put_count), 0)::bigint AS stores,"
    " coalesce(sum(hit_count * coalesce(cost_usd, 0)), 0) AS cost_saved_usd,"
    " coalesce(sum(pg_column_size(response)), 0)::bigint AS bytes, max(last_hit_at) AS last_hit_at"
    " FROM llmbase.cache_entries"
).format(live=_LIVE)


def stats(ctx: Ctx) -> Plan[CacheStats]:
    """Entries, hits, hit rate and cost saved of the scope's tenant (every tenant's in
    operator scope)."""
    if not ctx.scope.admin:
        ctx.scope.require_tenant()
    r = yield Query(_STATS, fetch="one")
    hits, stores = int(r["hits"]), int(r["stores"])
    return CacheStats(
        entries=int(r["entries"]),
        expired=int(r["expired"]),
        hits=hits,
        stores=stores,
        hit_rate=hits / (hits + stores) if hits + stores else None,
        cost_saved_usd=Decimal(r["cost_saved_usd"]),
        bytes=int(r["bytes"]),
        last_hit_at=r["last_hit_at"],
    )
