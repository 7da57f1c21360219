"""Typed tenant settings (the seeds' server_configs): the schema every document must match."""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from .errors import ValidationError

__all__ = ["RetrievalSettings", "TenantSettings", "validate_settings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class RetrievalSettings(_Strict):
    enabled: bool = True
    top_k: int = Field(5, ge=1, le=100)
    match_threshold: float = Field(0.5, ge=-1.0, le=1.0)
    collection: str | None = Field(None, max_length=200)


class RateLimitSettings(_Strict):
    requests_per_minute: int | None = Field(None, ge=1)
    requests_per_day: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)


class TenantSettings(_Strict):
    """One tenant's settings. Unknown keys are rejected; free-form data goes in `custom`."""

    default_model: str | None = Field(None, max_length=200)
    embedding_model: str | None = Field(None, max_length=200)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    system_prompt: str | None = Field(None, max_length=100_000)
    language: str | None = Field(None, max_length=35)
    prefix: str | None = Field(None, max_length=20)
    retrieval: RetrievalSettings = Field(default_factory=lambda: RetrievalSettings())
    rate_limits: RateLimitSettings = Field(default_factory=lambda: RateLimitSettings())
    monthly_budget_usd: float | None = Field(None, ge=0)
    allowed_channels: list[str] = Field(default_factory=list, max_length=10_000)
    admin_roles: list[str] = Field(default_factory=list, max_length=1000)
    features: dict[str, bool] = Field(default_factory=dict)
    custom: dict[str, Any] = Field(default_factory=dict)


def validate_settings(data: Any) -> TenantSettings:
    """Validate a settings document; the error names the first offending field path."""
    if not isinstance(data, dict):
        raise ValidationError("settings must be a JSON object", field="settings")
    try:
        return TenantSettings.model_validate(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"]) or "settings"
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        raise ValidationError(msg, field=path) from None
