"""foundation: schema, roles, context functions, tenants, users, profiles, settings, API keys

Revision ID: 0001
Revises:
"""

from llmbase.migrations import _sqlfile

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0001_foundation.up.sql")


def downgrade() -> None:
    _sqlfile.run("0001_foundation.down.sql")
