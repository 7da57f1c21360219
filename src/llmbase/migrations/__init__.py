"""Schema migrations: Alembic revisions, each running the SQL files kept beside it.

Public entry points live in `llmbase.migrate`; this package holds only revisions, the
Alembic environment and the generated schema snapshot (schema.sql).
"""
