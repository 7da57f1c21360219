"""append-only audit log of administrative changes; tenant deletion across every table

Revision ID: 0008
Revises: 0007
"""

from llmbase.migrations import _sqlfile

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0008_audit.up.sql")


def downgrade() -> None:
    _sqlfile.run("0008_audit.down.sql")
