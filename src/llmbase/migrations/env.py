"""Alembic environment: one transaction per revision, one deploy at a time.

Two deploys migrating at once serialise on an advisory lock; the second then finds the
schema at head and does nothing. The version table lives in schema llmbase.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

LOCK_KEY = 7_236_711_251_117  # pg_advisory_lock key shared by every llmbase deploy
VERSION_SCHEMA = "llmbase"

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or "postgresql://",
        literal_binds=True,
        version_table_schema=VERSION_SCHEMA,
        transaction_per_migration=True,
        output_buffer=config.output_buffer,
    )
    context.get_context().impl.static_output(f"CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA};\n")
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA}"))
        conn.commit()
        try:
            context.configure(
                connection=conn,
                version_table_schema=VERSION_SCHEMA,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.commit()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
