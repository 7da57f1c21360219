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
from .errors import (
    ConflictError,
    DatabaseUnavailable,
    LLMBaseError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
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
    "AsyncLLMBase",
    "ConflictError",
    "Conversation",
    "ConversationFeedback",
    "CreatedKey",
    "DatabaseUnavailable",
    "Feedback",
    "FeedbackSummary",
    "LLMBase",
    "LLMBaseError",
    "Message",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PermissionDenied",
    "Profile",
    "Scope",
    "Settings",
    "Tenant",
    "TenantMissing",
    "TenantSettings",
    "User",
    "ValidationError",
    "connect",
    "connect_async",
    "errors",
    "instrument",
]
