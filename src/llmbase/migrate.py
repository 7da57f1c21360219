"""Migration commands over Alembic: up, down, status, and the offline SQL script."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool, text

from .errors import MigrationError

__all__ = ["MigrationStatus", "downgrade", "head", "sql_script", "status", "upgrade"]

SCRIPT_LOCATION = Path(__file__).parent / "migrations"
# Alembic keeps its `context` and `op` proxies in process-wide globals: one command at a time
# per process. Across processes (two deploys) the advisory lock in env.py serialises them.
_ALEMBIC = threading.Lock()
VERSION_SCHEMA = "llmbase"


def sqlalchemy_url(url: str) -> str:
    """A libpq URL as SQLAlchemy's psycopg 3 dialect wants it."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise MigrationError(f"not a PostgreSQL URL: {url.split('@')[-1]}")


def _config(url: str | None, buffer: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=buffer) if buffer is not None else Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option(
        "sqlalchemy.url",
        (sqlalchemy_url(url) if url else "postgresql+psycopg://").replace("%", "%%"),
    )
    return cfg


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(None))


def head() -> str:
    h = _script().get_current_head()
    assert h is not None
    return h


def revisions() -> list[str]:
    """Every revision id, base first."""
    return [r.revision for r in reversed(list(_script().walk_revisions()))]


def upgrade(url: str, to: str = "head") -> None:
    try:
        with _ALEMBIC:
            command.upgrade(_config(url), to)
    except Exception as exc:
        raise MigrationError(f"migrate up to {to} failed: {exc}") from exc


def downgrade(url: str, to: str = "base") -> None:
    try:
        with _ALEMBIC:
            command.downgrade(_config(url), to)
    except Exception as exc:
        raise MigrationError(f"migrate down to {to} failed: {exc}") from exc


@dataclass(frozen=True)
class MigrationStatus:
    current: str | None
    head: str
    pending: list[str]

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def current(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT to_regclass(:t) IS NOT NULL"),
                {"t": f"{VERSION_SCHEMA}.alembic_version"},
            ).scalar()
            if not exists:
                return None
            ctx = MigrationContext.configure(conn, opts={"version_table_schema": VERSION_SCHEMA})
            return ctx.get_current_revision()
    finally:
        engine.dispose()


def status(url: str) -> MigrationStatus:
    cur = current(url)
    all_revs = revisions()
    done = all_revs.index(cur) + 1 if cur in all_revs else 0
    return MigrationStatus(current=cur, head=head(), pending=all_revs[done:])


def sql_script(to: str = "head", from_: str | None = None) -> str:
    """The complete up-SQL, for psql or Supabase's SQL editor."""
    buf = io.StringIO()
    rng = f"{from_}:{to}" if from_ else to
    with _ALEMBIC:
        command.upgrade(_config(None, buf), rng, sql=True)
    return buf.getvalue()
