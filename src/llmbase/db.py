"""Connection pools and scoped transactions: the only place that opens transactions.

Every unit of work is one transaction that first switches to the application role and sets
the tenant and user with set_config(..., true), so nothing outlives the transaction and a
pooled connection never carries one caller's tenant to the next.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .config import APP_ROLE, Settings
from .embedded import EmbeddedServer
from .errors import DatabaseUnavailable, MigrationError, TenantMissing

if TYPE_CHECKING:
    from .ingest.writer import Writer

__all__ = ["Database", "Scope", "operator_connection", "url_with_database"]

_log = logging.getLogger("llmbase.db")

DEFAULT_TENANT = UUID("00000000-0000-0000-0000-000000000001")
DEFAULT_USER = UUID("00000000-0000-0000-0000-000000000001")

# One round trip sets role, tenant and user for the transaction.
_SET_APP_SCOPE = (
    "SELECT set_config('role', %s, true), set_config('llmbase.tenant_id', %s, true),"
    " set_config('llmbase.user_id', %s, true), set_config('llmbase.admin', '', true),"
    " set_config('llmbase.actor', %s, true)"
)
_SET_ADMIN_SCOPE = "SELECT set_config('llmbase.admin', 'on', true), set_config('llmbase.actor', %s, true)"


@contextlib.contextmanager
def operator_connection(
    url_or_conn: str | psycopg.Connection[Any],
) -> Iterator[psycopg.Connection[Any]]:
    """A connection for operator tools (rollup rebuilds, retention): opened from a URL and
    closed afterwards, or the caller's own connection, left open."""
    if isinstance(url_or_conn, str):
        with psycopg.connect(url_or_conn) as conn:
            yield conn
    else:
        yield url_or_conn


def url_with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


@dataclass(frozen=True)
class Scope:
    """Who a transaction acts for. `admin` crosses tenants and is for operators only."""

    tenant_id: UUID | None = None
    user_id: UUID | None = None
    admin: bool = False
    #: Who acts, for the audit log (an API key, a service name); None: Settings.actor.
    actor: str | None = field(default=None, compare=False)

    def require_tenant(self) -> UUID:
        if self.tenant_id is None:
            raise TenantMissing("this operation needs a tenant: use client.tenant(...)")
        return self.tenant_id

    def require_user(self) -> UUID:
        if self.user_id is None:
            raise TenantMissing("this operation needs a user: use client.user(...)")
        return self.user_id


ADMIN = Scope(admin=True)


class Database:
    """The server (embedded or URL), its schema state, and the sync/async pools."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedServer | None = None
        self._url: str | None = settings.database_url
        self._pool: ConnectionPool | None = None
        self._apool: AsyncConnectionPool | None = None
        self._lock = threading.Lock()
        self._ingest: Writer | None = None
        _DATABASES.add(self)

    # -- server -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The owner's connection URL (starts the embedded server when needed)."""
        if self._url is None:
            self.embedded = EmbeddedServer(self.settings.data_dir)
            self._url = self.embedded.start()
        return self._url

    def ensure_schema(self) -> None:
        """Migrate to head when allowed, else fail clearly if the schema is behind."""
        from . import migrate

        st = migrate.status(self.url)
        if st.up_to_date:
            return
        if not self.settings.auto_migrate:
            raise MigrationError(
                f"schema at {st.current or 'base'}, code expects {st.head}: run `llmbase migrate up`"
            )
        migrate.upgrade(self.url)

    # -- pools ------------------------------------------------------------------------
    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    min_size=self.settings.pool_min_size,
                    max_size=self.settings.pool_max_size,
                    kwargs={"autocommit": False, "application_name": "llmbase"},
                    open=False,
                    name="llmbase",
                )
                try:
                    self._pool.open(wait=True, timeout=30)
                except psycopg.OperationalError as exc:
                    raise DatabaseUnavailable(str(exc)) from exc
                except Exception as exc:  # psycopg_pool.PoolTimeout
                    raise DatabaseUnavailable(f"could not connect: {exc}") from exc
            return self._pool

    async def apool(self) -> AsyncConnectionPool:
        if self._apool is None:
            pool = AsyncConnectionPool(
                self.url,
                min_size=self.settings.pool_min_size,
                max_size=self.settings.pool_max_size,
                kwargs={"autocommit": False, "application_name": "llmbase"},
                open=False,
                name="llmbase-async",
            )
            try:
                await pool.open(wait=True, timeout=30)
            except Exception as exc:
                raise DatabaseUnavailable(f"could not connect: {exc}") from exc
            self._apool = pool
        return self._apool

    def _scope_sql(self, scope: Scope) -> tuple[str, tuple[str, ...]]:
        actor = scope.actor or self.settings.actor or ""
        if scope.admin:
            return _SET_ADMIN_SCOPE, (actor,)
        return _SET_APP_SCOPE, (
            APP_ROLE,
            str(scope.tenant_id) if scope.tenant_id else "",
            str(scope.user_id) if scope.user_id else "",
            actor,
        )

    @contextlib.contextmanager
    def transaction(self, scope: Scope) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """One transaction acting as `scope`."""
        q, params = self._scope_sql(scope)
        try:
            with self.pool().connection() as conn, conn.transaction():
                conn.execute(q, params)
                yield conn
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def atransaction(self, scope: Scope) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
        q, params = self._scope_sql(scope)
        pool = await self.apool()
        try:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(q, params)
                yield conn
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(str(exc)) from exc

    # -- the request log's writer -------------------------------------------------------------
    def ingest(self) -> Writer:
        """The background writer of the request log (one per Database and process)."""
        w = self._ingest
        if w is None:
            with self._lock:
                w = self._ingest
                if w is None:
                    from .ingest.writer import Writer

                    w = self._ingest = Writer(self.settings, lambda: self.url)
        return w

    def _close_ingest(self) -> None:
        with self._lock:
            w, self._ingest = self._ingest, None
        if w is not None:
            w.close(self.settings.ingest_close_timeout)

    def _after_fork(self) -> None:
        """In a forked child: new pools (the parent's connections stay the parent's)."""
        for pool in (self._pool, self._apool):
            if pool is not None:
                _ABANDONED.append(pool)
        self._pool = None
        self._apool = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._close_ingest()  # first: it flushes while the server is still up
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        if self.embedded is not None:
            self.embedded.release()
            self.embedded = None
            if self.settings.database_url is None:
                self._url = None

    async def aclose(self) -> None:
        import asyncio

        await asyncio.to_thread(self._close_ingest)
        if self._apool is not None:
            await self._apool.close()
            self._apool = None
        self.close()


#: Pools inherited across fork, kept referenced so the child never closes the parent's
#: connections (closing would end the parent's sessions).
_ABANDONED: list[Any] = []
_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for db in list(_DATABASES):
        db._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
