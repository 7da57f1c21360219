"""llmbase: the PostgreSQL backend every LLM application hand-writes, done once.

import llmbase
db = llmbase.connect()                  # embedded PostgreSQL 18 + pgvector, migrated
alice = db.tenant("acme").user("alice")
conv = alice.conversations.create(title="Hello")
"""

from . import errors
from .client import AsyncLLMBase, LLMBase, connect, connect_async
from .config import Settings
from .db import Scope
from .documents.embedders import Embedder, LocalEmbedder, OpenAIEmbedder
from .documents.rows import (
    Chunk,
    ChunkInput,
    Collection,
    CollectionStats,
    Document,
    DocumentInput,
    Hit,
    ReindexResult,
    SearchResult,
    WriteResult,
)
from .documents.store import AsyncCollectionHandle, CollectionHandle
from .errors import (
    BudgetExceeded,
    ConflictError,
    DatabaseUnavailable,
    LLMBaseError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    TenantMissing,
    ValidationError,
)
from .integrations import instrument
from .settings import TenantSettings
from .stores._common import Page
from .stores.conversations import Conversation, Message
from .stores.feedback import ConversationFeedback, Feedback, FeedbackSummary
from .stores.keys import ApiKey, CreatedKey
from .stores.tenants import Tenant
from .stores.users import Profile, User

__version__ = "0.1.0"

__all__ = [
    "ApiKey",
    "AsyncCollectionHandle",
    "AsyncLLMBase",
    "BudgetExceeded",
    "Chunk",
    "ChunkInput",
    "Collection",
    "CollectionHandle",
    "CollectionStats",
    "ConflictError",
    "Conversation",
    "ConversationFeedback",
    "CreatedKey",
    "DatabaseUnavailable",
    "Document",
    "DocumentInput",
    "Embedder",
    "Feedback",
    "FeedbackSummary",
    "Hit",
    "LLMBase",
    "LLMBaseError",
    "LocalEmbedder",
    "Message",
    "NotFound",
    "OpenAIEmbedder",
    "Page",
    "PayloadTooLarge",
    "PermissionDenied",
    "Profile",
    "RateLimited",
    "ReindexResult",
    "Scope",
    "SearchResult",
    "Settings",
    "Tenant",
    "TenantMissing",
    "TenantSettings",
    "User",
    "ValidationError",
    "WriteResult",
    "connect",
    "connect_async",
    "errors",
    "instrument",
]
