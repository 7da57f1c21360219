"""request log (partitioned), rollups, agent runs, price overrides, dead letters

Revision ID: 0003
Revises: 0002
"""

from llmbase.migrations import _sqlfile

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0003_requests.up.sql")


def downgrade() -> None:
    _sqlfile.run("0003_requests.down.sql")
