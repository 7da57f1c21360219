"""rate limits (requests and tokens per window) and cost budgets with reservations

Revision ID: 0006
Revises: 0005
"""

from llmbase.migrations import _sqlfile

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0006_limits.up.sql")


def downgrade() -> None:
    _sqlfile.run("0006_limits.down.sql")
