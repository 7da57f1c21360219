"""Run a revision's .sql file: executed online, emitted verbatim offline (`llmbase migrate sql`).

Migrations import nothing from the application; this helper depends on Alembic alone.
"""

from __future__ import annotations

from pathlib import Path

from alembic import context, op

VERSIONS = Path(__file__).parent / "versions"


def run(name: str) -> None:
    text = (VERSIONS / name).read_text(encoding="utf-8")
    if context.is_offline_mode():
        context.get_context().impl.static_output(f"-- {name}\n{text.rstrip()}\n")
        return
    # The driver connection runs the file as one simple-protocol batch in the migration's
    # transaction: no parameter parsing, so '%' and ':' in SQL bodies are left alone.
    raw = op.get_bind().connection.driver_connection
    assert raw is not None
    raw.execute(text)
