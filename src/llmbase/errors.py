"""The one exception tree of llmbase: every error the SDK raises derives from LLMBaseError."""

from __future__ import annotations

__all__ = [
    "BudgetExceeded",
    "ConfigurationError",
    "ConflictError",
    "DatabaseUnavailable",
    "LLMBaseError",
    "MigrationError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "TenantMissing",
    "ValidationError",
]


class LLMBaseError(Exception):
    """Base of every llmbase error. `code` is stable and used by the HTTP API."""

    code = "llmbase_error"
    http_status = 500


class ConfigurationError(LLMBaseError):
    """Settings or environment are unusable (bad URL, data dir, missing extension)."""

    code = "configuration_error"
    http_status = 500


class DatabaseUnavailable(LLMBaseError):
    """The database could not be reached or started."""

    code = "database_unavailable"
    http_status = 503


class MigrationError(LLMBaseError):
    """The schema is missing, behind head, or a migration step failed."""

    code = "migration_error"
    http_status = 500


class ValidationError(LLMBaseError, ValueError):
    """Input was rejected before it reached the database. `field` names the culprit."""

    code = "validation_error"
    http_status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class PayloadTooLarge(ValidationError):
    """A value is larger than the documented limit."""

    code = "payload_too_large"
    http_status = 413


class NotFound(LLMBaseError, LookupError):
    """No such object in the current scope. Another tenant's object looks exactly like a missing one."""

    code = "not_found"
    http_status = 404

    def __init__(self, kind: str, ident: object) -> None:
        super().__init__(f"{kind} {ident} not found")
        self.kind = kind
        self.ident = ident


class ConflictError(LLMBaseError):
    """The write collides with an existing object (a unique key, a concurrent change)."""

    code = "conflict"
    http_status = 409


class TenantMissing(LLMBaseError):
    """An operation needs a tenant (or user) scope and none is set."""

    code = "tenant_missing"
    http_status = 400


class PermissionDenied(LLMBaseError):
    """The current scope may not perform the operation."""

    code = "permission_denied"
    http_status = 403


class RateLimited(LLMBaseError):
    """A rate limit refused the request. `retry_after` is in seconds; `remaining` is what the
    window still admits (of the limit named by `limit`, e.g. "requests/minute")."""

    code = "rate_limited"
    http_status = 429

    def __init__(
        self, message: str, *, limit: str, retry_after: float, remaining: int = 0, limit_value: int = 0
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after
        self.remaining = remaining
        self.limit_value = limit_value


class BudgetExceeded(LLMBaseError):
    """A hard cost budget refused the request. `remaining` is the USD left in the period,
    `retry_after` the seconds until the period resets, `budget` the cap in USD."""

    code = "budget_exceeded"
    http_status = 402

    def __init__(
        self,
        message: str,
        *,
        budget: object = None,
        remaining: object = None,
        retry_after: float = 0.0,
        scope: str = "tenant",
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.remaining = remaining
        self.retry_after = retry_after
        self.scope = scope
