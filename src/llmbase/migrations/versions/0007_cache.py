"""response cache: exact key per tenant, optional semantic match, TTL and hit counts

Revision ID: 0007
Revises: 0006
"""

from llmbase.migrations import _sqlfile

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0007_cache.up.sql")


def downgrade() -> None:
    _sqlfile.run("0007_cache.down.sql")
