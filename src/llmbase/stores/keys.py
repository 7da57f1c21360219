"""API keys: created with a secret shown once, stored as a SHA-256 hash, listed, revoked.

Key format: ``llmb_<key id, 32 hex>_<secret, 43 url-safe chars>``. The id makes
authentication one primary-key lookup; the secret has 256 bits of entropy, so a fast hash
is the right one (a slow password hash buys nothing against random secrets).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg import sql

from .._ids import uuid7
from .._sanitize import bounded_text
from ..errors import NotFound, PermissionDenied, ValidationError
from ._common import Ctx, parse_id
from ._plan import Plan, Query

__all__ = ["SCOPES", "ApiKey", "AuthenticatedKey", "CreatedKey"]

SCOPES = ("ingest", "read", "write", "admin")
PREFIX = "llmb_"


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    tenant_id: UUID
    user_id: UUID | None
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    """A new key. `secret` is the only copy of the full key: show it once, store it safely."""

    key: ApiKey
    secret: str


@dataclass(frozen=True)
class AuthenticatedKey:
    key_id: UUID
    tenant_id: UUID
    user_id: UUID | None
    scopes: list[str]


_COLS = sql.SQL(
    "id, tenant_id, user_id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at"
)


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _scopes(scopes: Sequence[str]) -> list[str]:
    out = sorted(set(scopes))
    if not out or any(s not in SCOPES for s in out):
        raise ValidationError(f"each scope must be one of {', '.join(SCOPES)}", field="scopes")
    return out


def create(
    ctx: Ctx,
    name: str,
    *,
    scopes: Sequence[str] = ("read",),
    user_id: UUID | str | None = None,
    expires_at: datetime | None = None,
) -> Plan[CreatedKey]:
    ctx.scope.require_tenant()
    kid = uuid7()
    secret = secrets.token_urlsafe(32)
    full = f"{PREFIX}{kid.hex}_{secret}"
    uid = parse_id(user_id, field="user_id") if user_id else None
    row = yield Query(
        sql.SQL(
            "INSERT INTO llmbase.api_keys (id, user_id, name, prefix, secret_hash, scopes, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {}"
        ).format(_COLS),
        (
            kid,
            uid,
            bounded_text(name, field="name", max_chars=200),
            full[:13],
            _hash(secret),
            _scopes(scopes),
            expires_at,
        ),
        fetch="one",
        row=ApiKey,
        fk_not_found=NotFound("user", uid),
    )
    return CreatedKey(row, full)


def list_(ctx: Ctx, *, include_revoked: bool = False) -> Plan[list[ApiKey]]:
    ctx.scope.require_tenant()
    rows: list[ApiKey] = yield Query(
        sql.SQL("SELECT {} FROM llmbase.api_keys WHERE %s OR revoked_at IS NULL ORDER BY created_at").format(
            _COLS
        ),
        (include_revoked,),
        row=ApiKey,
    )
    return rows


def revoke(ctx: Ctx, key_id: UUID | str) -> Plan[ApiKey]:
    kid = parse_id(key_id, field="key_id")
    row = yield Query(
        sql.SQL(
            "UPDATE llmbase.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING {}"
        ).format(_COLS),
        (kid,),
        fetch="one",
        row=ApiKey,
        not_found=NotFound("api key", kid),
    )
    return row  # type: ignore[no-any-return]


def parse_key(full: str) -> tuple[UUID, str]:
    if not isinstance(full, str) or not full.startswith(PREFIX) or len(full) < len(PREFIX) + 34:
        raise PermissionDenied("malformed API key")
    body = full[len(PREFIX) :]
    try:
        kid = UUID(hex=body[:32])
    except ValueError:
        raise PermissionDenied("malformed API key") from None
    if body[32:33] != "_":
        raise PermissionDenied("malformed API key")
    return kid, body[33:]


def authenticate(ctx: Ctx, full: str) -> Plan[AuthenticatedKey]:
    """Check a presented key; revoked, expired and unknown keys are all refused alike."""
    kid, secret = parse_key(full)
    row = yield Query(
        "SELECT key_id, tenant_id, user_id, scopes FROM llmbase.authenticate_api_key(%s, %s)",
        (kid, _hash(secret)),
        fetch="optional",
        row=AuthenticatedKey,
    )
    if row is None:
        raise PermissionDenied("invalid, revoked or expired API key")
    return row  # type: ignore[no-any-return]
