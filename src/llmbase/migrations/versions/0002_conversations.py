"""conversations, messages, feedback and the feedback summary

Revision ID: 0002
Revises: 0001
"""

from llmbase.migrations import _sqlfile

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0002_conversations.up.sql")


def downgrade() -> None:
    _sqlfile.run("0002_conversations.down.sql")
