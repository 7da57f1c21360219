"""operations: conversation archive timestamps, the tenant-table catalog, deletion tombstones

Revision ID: 0009
Revises: 0008
"""

from llmbase.migrations import _sqlfile

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _sqlfile.run("0009_operations.up.sql")


def downgrade() -> None:
    _sqlfile.run("0009_operations.down.sql")
