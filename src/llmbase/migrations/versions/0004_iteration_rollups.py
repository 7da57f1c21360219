"""per-iteration-number rollups of agent runs (hour and day), kept by triggers

Revision ID: 0004
Revises: 0003
"""

from llmbase.migrations import _sqlfile

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0004_iteration_rollups.up.sql")


def downgrade() -> None:
    _sqlfile.run("0004_iteration_rollups.down.sql")
