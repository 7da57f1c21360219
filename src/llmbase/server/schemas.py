"""Request and response models of the REST API (docs/http.md). Responses reuse the SDK's
row dataclasses; these are the envelopes and the request bodies. Bodies forbid unknown
fields, so a typo is a 422 naming the field instead of a silently ignored value."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

__all__ = [
    "AddDocuments",
    "AddMessage",
    "BatchResult",
    "BudgetIn",
    "CacheKeyIn",
    "CachePutIn",
    "CollectionIn",
    "ConversationIn",
    "ConversationPatch",
    "Count",
    "DeleteDocuments",
    "FeedbackIn",
    "KeyIn",
    "LimitCall",
    "LimitIn",
    "Page",
    "RecordError",
    "RequestBatch",
    "RunBatch",
    "SearchIn",
    "SettingsPut",
    "UserIn",
    "UserPatch",
]

Json = dict[str, Any]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """A page of a list: pass `next_cursor` as `?cursor=` for the next one (null: the end)."""

    items: list[T]
    next_cursor: str | None


class Count(BaseModel):
    """How many rows an operation touched."""

    count: int


# -- ingest ---------------------------------------------------------------------------------


class RequestBatch(_In):
    """Request-log records: each an object of llmbase.requests' columns (docs/ingest.md)."""

    records: list[Json] = Field(min_length=1, max_length=10_000)


class RunBatch(_In):
    """Run, iteration and tool-call records; `kind` names which (docs/ingest.md)."""

    records: list[Json] = Field(min_length=1, max_length=10_000)


class RecordError(BaseModel):
    index: int
    field: str | None
    message: str


class BatchResult(BaseModel):
    """Ids of the accepted records (in order) and the refused ones with their reason."""

    accepted: int
    ids: list[UUID]
    errors: list[RecordError]
    flushed: bool | None = None


# -- conversations, feedback, users ---------------------------------------------------------


class ConversationIn(_In):
    title: str | None = Field(None, max_length=10_000)
    model: str | None = Field(None, max_length=200)
    metadata: Json | None = None
    user_id: UUID | None = None
    shared: bool = False
    id: UUID | None = None


class ConversationPatch(_In):
    title: str | None = Field(None, max_length=10_000)
    model: str | None = Field(None, max_length=200)
    metadata: Json | None = None
    archived: bool | None = None


class AddMessage(_In):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    user_id: UUID | None = None
    model: str | None = Field(None, max_length=200)
    token_count: int | None = Field(None, ge=0, le=2**31 - 1)
    cost_usd: float | None = Field(None, ge=0, le=1e9)
    latency_ms: int | None = Field(None, ge=0, le=2**31 - 1)
    provider_response_ms: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: Json | None = None
    id: UUID | None = None


class FeedbackIn(_In):
    rating: Literal["up", "down"] | None = None
    score: float | None = Field(None, ge=0, le=1)
    comment: str | None = Field(None, max_length=10_000)
    user_id: UUID | None = None
    metadata: Json | None = None


class UserIn(_In):
    external_id: str = Field(min_length=1, max_length=200)
    auth_id: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    display_name: str | None = Field(None, max_length=200)
    metadata: Json | None = None


class UserPatch(_In):
    auth_id: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    display_name: str | None = Field(None, max_length=200)
    metadata: Json | None = None


# -- documents ------------------------------------------------------------------------------


class CollectionIn(_In):
    name: str = Field(min_length=1, max_length=100)
    dimension: int = Field(ge=1, le=16_000)
    distance: Literal["cosine", "l2", "inner_product"] = "cosine"
    storage: Literal["vector", "halfvec"] = "vector"
    index: Literal["hnsw", "ivfflat", "none"] = "hnsw"
    language: str = Field("english", min_length=1, max_length=63)
    embedding_model: str | None = Field(None, max_length=200)
    metadata: Json | None = None


class AddDocuments(_In):
    """Documents as the SDK takes them: `content` (or `chunks` with embeddings),
    `external_id`, `title`, `source`, `metadata`, `user`, `is_public`."""

    documents: list[Json] = Field(min_length=1, max_length=10_000)
    chunk_size: int | None = Field(None, ge=1, le=100_000)
    overlap: int | None = Field(None, ge=0, le=100_000)


class SearchIn(_In):
    query: str | None = Field(None, max_length=100_000)
    vector: list[float] | None = Field(None, max_length=16_000)
    k: int = Field(10, ge=1, le=1000)
    threshold: float | None = None
    filter: Json | None = None
    mode: Literal["vector", "text", "hybrid"] = "vector"
    exact: bool | None = None


class DeleteDocuments(_In):
    ids: list[UUID] | None = Field(None, max_length=10_000)
    filter: Json | None = None


# -- cache, limits, budgets, keys, settings -------------------------------------------------


class CacheKeyIn(_In):
    request: Json
    provider: str | None = Field(None, max_length=100)
    model: str | None = Field(None, max_length=200)
    request_type: str = Field("chat", min_length=1, max_length=50)
    stream: bool = False
    namespace: str = Field("", max_length=200)


class CachePutIn(CacheKeyIn):
    response: Any
    ttl: float | None = Field(None, gt=0, le=10 * 365 * 86400)
    usage: Json | None = None
    cost_usd: float | None = Field(None, ge=0, le=1e9)


class CacheInvalidateIn(_In):
    request: Json | None = None
    provider: str | None = Field(None, max_length=100)
    model: str | None = Field(None, max_length=200)
    request_type: str = Field("chat", min_length=1, max_length=50)
    namespace: str | None = Field(None, max_length=200)
    everything: bool = False


class LimitCall(_In):
    requests: int = Field(1, ge=0, le=2**31 - 1)
    tokens: int = Field(0, ge=0, le=2**31 - 1)
    user: str | None = Field(None, min_length=1, max_length=200)


class LimitIn(_In):
    limit: int = Field(ge=1, le=2**62)
    metric: Literal["requests", "tokens"] = "requests"
    window: Literal["minute", "hour", "day"] = "minute"
    user: str | None = Field(None, min_length=1, max_length=200)
    api_key: UUID | None = None
    per_user: bool = False


class BudgetIn(_In):
    cap_usd: float = Field(ge=0, le=1e12)
    user: str | None = Field(None, min_length=1, max_length=200)
    per_user: bool = False
    mode: Literal["hard", "soft"] = "hard"
    unpriced_call_usd: float | None = Field(None, ge=0, le=1e9)


class BudgetCheck(_In):
    estimate_usd: float | None = Field(None, ge=0, le=1e12)
    user: str | None = Field(None, min_length=1, max_length=200)


Scope = Literal["ingest", "read", "write", "admin"]


def _read_scope() -> list[Scope]:
    return ["read"]


class KeyIn(_In):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(default_factory=_read_scope, min_length=1, max_length=4)
    user_id: UUID | None = None
    expires_at: datetime | None = None


class SettingsPut(_In):
    settings: Json
    expected_version: int | None = Field(None, ge=0)


# -- records (validated one by one, so one bad record does not refuse the batch) ------------

_Int4 = Field(None, ge=0, le=2**31 - 1)


class RequestRecord(_In):
    """One request-log record: llmbase.requests' columns (docs/ingest.md). The tenant comes
    from the API key; `user` is an external id (created on first use) or `user_id`."""

    id: UUID | None = None
    created_at: datetime | None = None
    request_type: str | None = Field(None, max_length=50)
    provider: str | None = Field(None, max_length=100)
    model: str | None = Field(None, max_length=200)
    user: str | None = Field(None, min_length=1, max_length=200)
    user_id: UUID | None = None
    conversation_id: UUID | None = None
    message_id: UUID | None = None
    run_id: UUID | None = None
    iteration: int | None = _Int4
    status: str | None = Field(None, max_length=50)
    success: bool | None = None
    error_kind: str | None = Field(None, max_length=200)
    error_message: str | None = Field(None, max_length=10_000)
    http_status: int | None = Field(None, ge=0, le=999)
    tokens_prompt: int | None = _Int4
    tokens_completion: int | None = _Int4
    tokens_total: int | None = _Int4
    tokens_cached: int | None = _Int4
    tokens_reasoning: int | None = _Int4
    cost_usd: float | None = Field(None, ge=0, le=1e9)
    cost_source: str | None = Field(None, max_length=200)
    cost_unknown: bool | None = None
    latency_ms: float | None = Field(None, ge=0, le=1e10)
    ttft_ms: float | None = Field(None, ge=0, le=1e10)
    stream: bool | None = None
    cache_hit: bool | None = None
    cost_saved_usd: float | None = Field(None, ge=-1e9, le=1e9)
    audio_duration_s: float | None = Field(None, ge=0, le=1e9)
    audio_format: str | None = Field(None, max_length=50)
    audio_bytes: int | None = Field(None, ge=0, le=2**62)
    request_body: Any = None
    response_body: Any = None
    tags: list[str] | None = Field(None, max_length=100)
    metadata: Json | None = None


class RunRecord(_In):
    kind: Literal["run"]
    id: UUID
    user: str | None = Field(None, min_length=1, max_length=200)
    user_id: UUID | None = None
    conversation_id: UUID | None = None
    name: str | None = Field(None, max_length=200)
    status: Literal["running", "success", "error", "cancelled"] | None = None
    error: str | None = Field(None, max_length=10_000)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    total_ms: float | None = Field(None, ge=0, le=1e12)
    iteration_count: int | None = _Int4
    api_ms: float | None = Field(None, ge=0, le=1e12)
    tool_ms: float | None = Field(None, ge=0, le=1e12)
    metadata: Json | None = None


class IterationRecord(_In):
    kind: Literal["iteration"]
    run_id: UUID
    iteration: int = Field(ge=1, le=2**31 - 1)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    total_ms: float | None = Field(None, ge=0, le=1e12)
    api_ms: float | None = Field(None, ge=0, le=1e12)
    tool_ms: float | None = Field(None, ge=0, le=1e12)
    api_calls: int | None = _Int4
    tool_calls: int | None = _Int4
    message_id: UUID | None = None


class ToolCallRecord(_In):
    kind: Literal["tool_call"]
    id: UUID | None = None
    run_id: UUID
    iteration: int | None = _Int4
    name: str | None = Field(None, max_length=200)
    started_at: datetime | None = None
    duration_ms: float | None = Field(None, ge=0, le=1e12)
    status: Literal["success", "error"] | None = None
    error: str | None = Field(None, max_length=10_000)


class CacheEntryOut(BaseModel):
    """A cache entry (`key`: the hex request key)."""

    id: UUID
    key: str
    namespace: str
    stream: bool
    provider: str
    model: str
    request_type: str
    response: Any
    usage: Json
    cost_usd: Decimal | None
    hit_count: int
    put_count: int
    last_hit_at: datetime | None
    created_at: datetime
    expires_at: datetime | None
    similarity: float | None = None

    @classmethod
    def of(cls, e: Any) -> CacheEntryOut:
        return cls(
            id=e.id,
            key=e.key,
            namespace=e.namespace,
            stream=e.stream,
            provider=e.provider,
            model=e.model,
            request_type=e.request_type,
            response=e.response,
            usage=e.usage,
            cost_usd=e.cost_usd,
            hit_count=e.hit_count,
            put_count=e.put_count,
            last_hit_at=e.last_hit_at,
            created_at=e.created_at,
            expires_at=e.expires_at,
            similarity=e.similarity,
        )
