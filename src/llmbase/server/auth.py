"""Who calls: an API key (`Authorization: Bearer llmb_...` or `X-API-Key`) names its tenant,
optionally its user, and its scopes; the tenant comes only from the key. `llmbase up` on
localhost may also run in local admin mode: requests from the loopback interface without a
key act as the root client (the default tenant, tenant-wide; any tenant with `?tenant=`).

Scopes: `ingest` (write request logs, runs, OTLP), `read` (GET), `write` (create, change,
delete data), `admin` (settings, keys, limits, budgets, audit). `admin` implies the others.
A failed authentication is 401; a scope the key lacks is 403."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from fastapi import Depends, HTTPException, Request

from ..client import LLMBase
from ..errors import PermissionDenied

__all__ = ["Principal", "authenticate", "require"]

SCOPES = ("ingest", "read", "write", "admin")
_LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


@dataclass(frozen=True)
class Principal:
    """The caller: an llmbase client scoped to the key's tenant (and user), named
    `api_key:<id>` in the audit log."""

    client: LLMBase
    scopes: frozenset[str]
    tenant_id: UUID | None
    user_id: UUID | None = None
    key_id: UUID | None = None
    local_admin: bool = False

    def allows(self, scope: str) -> bool:
        return self.local_admin or "admin" in self.scopes or scope in self.scopes


@dataclass
class _KeyCache:
    """Authenticated keys for a few seconds, so a busy client does not cost a lookup (and a
    last_used_at write) per request. A revoked key stops working within `ttl` seconds."""

    ttl: float = 10.0
    entries: dict[str, tuple[float, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> Any:
        with self.lock:
            hit = self.entries.get(key)
            if hit is None or hit[0] < time.monotonic():
                return None
            return hit[1]

    def put(self, key: str, value: Any) -> None:
        with self.lock:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[key] = (time.monotonic() + self.ttl, value)


def _presented(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        kind, _, token = auth.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "use Authorization: Bearer <API key>", {"WWW-Authenticate": "Bearer"})
        return token.strip()
    return request.headers.get("x-api-key")


def authenticate(request: Request) -> Principal:
    """The request's Principal, or 401."""
    state = request.app.state
    root: LLMBase = state.client
    key = _presented(request)
    if key is None:
        host = request.client.host if request.client else ""
        if state.local_admin and host in _LOOPBACK:
            tenant = request.query_params.get("tenant")
            client = root.tenant(tenant) if tenant else root
            return Principal(client.as_actor("local-admin"), frozenset(SCOPES), None, local_admin=True)
        raise HTTPException(401, "an API key is required", {"WWW-Authenticate": "Bearer"})
    cache: _KeyCache = state.key_cache
    found = cache.get(key)
    if found is None:
        try:
            found = root.keys.authenticate(key)
        except PermissionDenied:
            raise HTTPException(
                401, "invalid, revoked or expired API key", {"WWW-Authenticate": "Bearer"}
            ) from None
        cache.put(key, found)
    client = root.tenant(found.tenant_id)
    if found.user_id is not None:
        client = client.user(found.user_id)
    return Principal(
        client.as_actor(f"api_key:{found.key_id}"),
        frozenset(found.scopes),
        found.tenant_id,
        found.user_id,
        found.key_id,
    )


def require(scope: str) -> Any:
    """A dependency: the Principal, if it holds `scope` (else 403)."""
    if scope not in SCOPES:
        raise ValueError(scope)

    def check(principal: Principal = Depends(authenticate)) -> Principal:
        if not principal.allows(scope):
            raise HTTPException(403, f"this API key lacks the {scope!r} scope")
        return principal

    return Depends(check)
