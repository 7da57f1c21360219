"""Operations: `llmbase stats`, `maintain`, `archive conversations`, `delete user|tenant`.

Every function takes a target (a URL, an open psycopg connection, a Database or a client)
and works as the schema owner in operator scope (docs/operations.md).
"""

from __future__ import annotations

from .archive import ConversationArchive, archive_conversations, unarchive_conversations
from .catalog import TenantTable, tenant_tables
from .delete import DeleteResult, delete_tenant, delete_user
from .maintain import Action, MaintainResult, Thresholds, maintain
from .stats import Stats, stats

__all__ = [
    "Action",
    "ConversationArchive",
    "DeleteResult",
    "MaintainResult",
    "Stats",
    "TenantTable",
    "Thresholds",
    "archive_conversations",
    "delete_tenant",
    "delete_user",
    "maintain",
    "stats",
    "tenant_tables",
    "unarchive_conversations",
]
