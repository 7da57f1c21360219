"""Tenant data, discovered from the catalog: every table and partition with a tenant_id
column in the schemas `llmbase` and `llmbase_archive` (llmbase.tenant_tables()), so a table
added by a later migration is covered without code changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["TenantTable", "tenant_tables"]

#: Tables whose rows are removed only through their own erasure function, never by DELETE.
ERASED_BY_FUNCTION = {"llmbase.audit_log"}


@dataclass(frozen=True)
class TenantTable:
    schema: str
    name: str
    kind: str  # 'table', 'partitioned' or 'partition'
    #: the column naming a row's user: "user_id", "subject_key" (limit and budget usage), or None
    user_column: str | None
    parent: str | None  # schema.name of the partitioned parent, for a partition

    @property
    def has_user_id(self) -> bool:
        return self.user_column is not None

    def user_where(self) -> sql.Composable:
        """`tenant_id = %s AND <user column> = %s`."""
        assert self.user_column is not None
        return sql.SQL("tenant_id = %s AND {} = %s").format(sql.Identifier(self.user_column))

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def root(self) -> bool:
        """Not a partition: deleting through it reaches every partition below it."""
        return self.kind != "partition"


def tenant_tables(conn: psycopg.Connection[Any]) -> list[TenantTable]:
    """Every table, partitioned table and partition holding tenant data, by schema and name."""
    rows = conn.execute(
        "SELECT table_schema, table_name, kind, user_column, parent FROM llmbase.tenant_tables()"
    ).fetchall()
    return [TenantTable(*r) for r in rows]
