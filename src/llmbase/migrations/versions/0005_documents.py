"""document store: collections, documents, chunks (partitioned per collection), retrieval log, match_documents

Revision ID: 0005
Revises: 0004
"""

from llmbase.migrations import _sqlfile

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0005_documents.up.sql")


def downgrade() -> None:
    _sqlfile.run("0005_documents.down.sql")
