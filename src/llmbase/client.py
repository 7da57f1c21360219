"""The SDK's clients: `LLMBase` (sync) and `AsyncLLMBase` (async), scoped by tenant and user.

Both run the same plans from `llmbase.stores`; a client is cheap to scope
(`client.tenant("acme").user("alice")` shares the pool) and resolves slugs and external
ids on first use, caching the result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar
from uuid import UUID

from .config import Settings
from .db import DEFAULT_TENANT, Database, Scope
from .errors import NotFound, PermissionDenied
from .stores import conversations, feedback, keys, prices, settings, tenants, users
from .stores._bind import AsyncStore, Store, aop, op
from .stores._common import Ctx, parse_id
from .stores._plan import Plan, arun, run

if TYPE_CHECKING:
    from .audit import AsyncAudit, Audit
    from .cache import AsyncCache, Cache
    from .documents.embedders import Embedder
    from .documents.rows import Collection
    from .documents.store import AsyncCollectionHandle, AsyncCollections, CollectionHandle, Collections
    from .ingest.api import AsyncRequests, Requests
    from .limits import AsyncBudgets, AsyncLimits, Budgets, Limits
    from .ops import DeleteResult
    from .reports import AsyncReports, Reports
    from .runs import Run

__all__ = ["AsyncLLMBase", "LLMBase"]

P = ParamSpec("P")
T = TypeVar("T")


class _Core:
    """Database handle + scope references; resolves slugs/external ids once."""

    def __init__(
        self,
        db: Database,
        tenant: UUID | str | None,
        user: UUID | str | None,
        *,
        admin: bool = False,
        root: bool = False,
        actor: str | None = None,
    ) -> None:
        self.db = db
        self.tenant_ref = tenant
        self.user_ref = user
        self.is_admin = admin
        self.root = root
        self.actor = actor
        self._scope: Scope | None = Scope(admin=True, actor=actor) if admin else None
        if not admin and isinstance(tenant, UUID) and (user is None or isinstance(user, UUID)):
            self._scope = Scope(tenant, user, actor=actor)
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self.db.settings

    def scoped(self, tenant: UUID | str | None, user: UUID | str | None, *, admin: bool = False) -> _Core:
        return _Core(self.db, tenant, user, admin=admin, actor=self.actor)

    def with_actor(self, actor: str | None) -> _Core:
        core = _Core(
            self.db, self.tenant_ref, self.user_ref, admin=self.is_admin, root=self.root, actor=actor
        )
        if self._scope is not None:  # already resolved: keep the ids, name the actor
            core._scope = Scope(self._scope.tenant_id, self._scope.user_id, self._scope.admin, actor=actor)
        return core

    def operator(self) -> _Core:
        """The operator scope, for the root client only: a client scoped to one tenant (or
        user) must not reach across tenants through `.tenants`."""
        if self.is_admin:
            return self
        if not self.root:
            raise PermissionDenied(
                "tenant management needs the root client (llmbase.connect()) or client.admin()"
            )
        return self.scoped(None, None, admin=True)

    # -- resolution --------------------------------------------------------------------
    def _tenant_plan(self) -> Plan[UUID]:
        assert self.tenant_ref is not None
        return tenants.resolve(Ctx(Scope(), self.settings), self.tenant_ref)

    def _user_plan(self, tid: UUID) -> Plan[UUID]:
        ref = self.user_ref
        if isinstance(ref, UUID):
            return ref
        assert ref is not None
        user = yield from users.ensure(Ctx(Scope(tid), self.settings), ref)
        return user.id

    def scope(self) -> Scope:
        if self._scope is None:
            with self._lock:
                if self._scope is None:
                    tid = run(self.db, Scope(), self._tenant_plan())
                    uid = (
                        run(self.db, Scope(tid), self._user_plan(tid)) if self.user_ref is not None else None
                    )
                    self._scope = Scope(tid, uid, actor=self.actor)
        return self._scope

    async def ascope(self) -> Scope:
        if self._scope is None:
            tid = await arun(self.db, Scope(), self._tenant_plan())
            uid = await arun(self.db, Scope(tid), self._user_plan(tid)) if self.user_ref is not None else None
            self._scope = Scope(tid, uid, actor=self.actor)
        return self._scope

    # -- execution ---------------------------------------------------------------------
    def run(self, fn: Callable[Concatenate[Ctx, P], Plan[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        scope = self.scope()
        return run(self.db, scope, fn(Ctx(scope, self.settings), *args, **kwargs))

    async def arun(self, fn: Callable[Concatenate[Ctx, P], Plan[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        scope = await self.ascope()
        return await arun(self.db, scope, fn(Ctx(scope, self.settings), *args, **kwargs))


def _delete_user(core: _Core, user_id: UUID | str) -> DeleteResult:
    """A user's deletion in every table, for a tenant-wide (or operator) client only: a user
    scope cannot delete users (NotFound, as the row policy answers)."""
    from .ops import delete_user

    uid = parse_id(user_id, field="user_id")
    scope = core.scope()
    if scope.admin:
        return delete_user(core.db, uid)
    if scope.user_id is not None:
        raise NotFound("user", uid)
    return delete_user(core.db, uid, tenant=scope.require_tenant())


# -- stores (sync) ----------------------------------------------------------------------
class Conversations(Store):
    """Conversations and messages of the current scope."""

    create = op(conversations.create)
    get = op(conversations.get)
    list = op(conversations.list_)
    update = op(conversations.update)
    rename = op(conversations.rename)
    archive = op(conversations.archive)
    unarchive = op(conversations.unarchive)
    complete = op(conversations.complete)
    delete = op(conversations.delete)
    add_message = op(conversations.add_message)
    history = op(conversations.history)
    get_message = op(conversations.get_message)


class Feedback(Store):
    """Ratings of messages and their summaries."""

    rate = op(feedback.rate)
    get = op(feedback.get)
    remove = op(feedback.remove)
    summary = op(feedback.summary)
    conversation_summary = op(feedback.conversation_summary)


class Users(Store):
    """Users of the current tenant and their profiles."""

    create = op(users.create)
    ensure = op(users.ensure)
    get = op(users.get)
    list = op(users.list_)
    update = op(users.update)
    profile = op(users.profile)
    set_preferences = op(users.set_preferences)

    def delete(self, user_id: UUID | str) -> DeleteResult:
        """Delete a user and their rows in every table (conversations, feedback, keys, the
        request log, runs, limits usage, ...): `llmbase.ops.delete_user`, audited."""
        return _delete_user(self._client, user_id)


class Tenants(Store):
    """Tenants (operator scope: crosses tenants)."""

    create = op(tenants.create)
    get = op(tenants.get)
    list = op(tenants.list_)
    update = op(tenants.update)

    def delete(self, tenant_id: UUID | str) -> DeleteResult:
        """Delete a tenant and every row it owns in every table, chunk partitions dropped:
        `llmbase.ops.delete_tenant`, audited."""
        from .ops import delete_tenant

        return delete_tenant(self._client.db, parse_id(tenant_id, field="tenant_id"))


class TenantSettingsStore(Store):
    """The current tenant's typed settings."""

    get = op(settings.get)
    put = op(settings.put)
    patch = op(settings.patch)


class Keys(Store):
    """API keys of the current tenant."""

    create = op(keys.create)
    list = op(keys.list_)
    revoke = op(keys.revoke)
    authenticate = op(keys.authenticate)


class Prices(Store):
    """The current tenant's model price overrides (USD per million tokens)."""

    set = op(prices.set_)
    get = op(prices.get)
    list = op(prices.list_)
    delete = op(prices.delete)


# -- stores (async): the same plans, awaited ----------------------------------------------
class AsyncConversations(AsyncStore):
    create = aop(conversations.create)
    get = aop(conversations.get)
    list = aop(conversations.list_)
    update = aop(conversations.update)
    rename = aop(conversations.rename)
    archive = aop(conversations.archive)
    unarchive = aop(conversations.unarchive)
    complete = aop(conversations.complete)
    delete = aop(conversations.delete)
    add_message = aop(conversations.add_message)
    history = aop(conversations.history)
    get_message = aop(conversations.get_message)


class AsyncFeedback(AsyncStore):
    rate = aop(feedback.rate)
    get = aop(feedback.get)
    remove = aop(feedback.remove)
    summary = aop(feedback.summary)
    conversation_summary = aop(feedback.conversation_summary)


class AsyncUsers(AsyncStore):
    create = aop(users.create)
    ensure = aop(users.ensure)
    get = aop(users.get)
    list = aop(users.list_)
    update = aop(users.update)

    async def delete(self, user_id: UUID | str) -> DeleteResult:
        import asyncio

        await self._client.ascope()
        return await asyncio.to_thread(_delete_user, self._client, user_id)

    profile = aop(users.profile)
    set_preferences = aop(users.set_preferences)


class AsyncTenants(AsyncStore):
    create = aop(tenants.create)
    get = aop(tenants.get)
    list = aop(tenants.list_)
    update = aop(tenants.update)

    async def delete(self, tenant_id: UUID | str) -> DeleteResult:
        import asyncio

        from .ops import delete_tenant

        tid = parse_id(tenant_id, field="tenant_id")
        return await asyncio.to_thread(delete_tenant, self._client.db, tid)


class AsyncTenantSettingsStore(AsyncStore):
    get = aop(settings.get)
    put = aop(settings.put)
    patch = aop(settings.patch)


class AsyncKeys(AsyncStore):
    create = aop(keys.create)
    list = aop(keys.list_)
    revoke = aop(keys.revoke)
    authenticate = aop(keys.authenticate)


class AsyncPrices(AsyncStore):
    set = aop(prices.set_)
    get = aop(prices.get)
    list = aop(prices.list_)
    delete = aop(prices.delete)


# -- clients -----------------------------------------------------------------------------
class _ClientBase:
    def __init__(self, core: _Core) -> None:
        self._core = core

    @property
    def database(self) -> Database:
        return self._core.db

    @property
    def url(self) -> str:
        """The owner's connection URL (for psql and migrations; keep it private)."""
        return self._core.db.url

    def __repr__(self) -> str:
        c = self._core
        who = "admin" if c.is_admin else f"tenant={c.tenant_ref} user={c.user_ref}"
        return f"<{type(self).__name__} {who}>"


class LLMBase(_ClientBase):
    """Synchronous client. Unscoped, it acts for the default tenant, tenant-wide."""

    def tenant(self, tenant: UUID | str) -> LLMBase:
        """The same client acting for one tenant (id or slug), tenant-wide."""
        return LLMBase(self._core.scoped(tenant, None))

    def user(self, user: UUID | str) -> LLMBase:
        """Acting for one user of this tenant (id, or external id: created on first use)."""
        return LLMBase(self._core.scoped(self._core.tenant_ref or DEFAULT_TENANT, user))

    def admin(self) -> LLMBase:
        """Operator scope across tenants (needs the schema owner's connection)."""
        return LLMBase(self._core.scoped(None, None, admin=True))

    def as_actor(self, actor: str) -> LLMBase:
        """The same client, named `actor` in the audit log (an API key, a service, a person)."""
        return LLMBase(self._core.with_actor(actor))

    def scope(self) -> Scope:
        """The resolved tenant and user ids this client acts for."""
        return self._core.scope()

    @property
    def conversations(self) -> Conversations:
        return Conversations(self._core)

    @property
    def feedback(self) -> Feedback:
        return Feedback(self._core)

    @property
    def users(self) -> Users:
        return Users(self._core)

    @property
    def settings(self) -> TenantSettingsStore:
        return TenantSettingsStore(self._core)

    @property
    def keys(self) -> Keys:
        return Keys(self._core)

    @property
    def prices(self) -> Prices:
        """Model price overrides of this tenant; they win over the genai-prices catalog."""
        return Prices(self._core)

    @property
    def tenants(self) -> Tenants:
        """Tenant management: on the client `connect()` returned, or on `admin()`."""
        return Tenants(self._core.operator())

    # -- request log, runs, reports (modules: ingest/, runs.py, _context.py, reports.py) --
    @property
    def requests(self) -> Requests:
        """The request log: `log()` only enqueues; `flush()`, `stats()`, queries."""
        from .ingest.api import Requests

        return Requests(self._core)

    def context(self, **ids: Any) -> ContextManager[None]:
        """Attach ids (user=, conversation=, message=, run=, iteration=, tags=, metadata=) to
        every call logged inside the block, across threads' and asyncio tasks' contexts."""
        from ._context import context

        return context(self, **ids)

    def run(self, name: str | None = None, **fields: Any) -> Run:
        """Start an agent run: `with client.run("answer") as run: with run.iteration(): ...`."""
        from .runs import Run

        return Run(self, name, **fields)

    @property
    def reports(self) -> Reports:
        """Analytics from the maintained rollups (every example query of the seeds)."""
        from .reports import Reports

        return Reports(self._core)

    # -- document store (documents/) -------------------------------------------------------
    @property
    def collections(self) -> Collections:
        """Document collections: create (tenant-wide client), get, list, drop, stats, reindex."""
        from .documents.store import Collections

        return Collections(self._core)

    def collection(
        self, collection: str | UUID | Collection, embedder: Embedder | None = None, *, log: bool = True
    ) -> CollectionHandle:
        """One collection (name or id) for add / search / delete; `embedder` embeds texts and
        queries; `log=False` leaves searches out of the retrieval log."""
        from .documents.store import CollectionHandle

        return CollectionHandle(self._core, collection, embedder, log=log)

    # -- limits, budgets, cache, audit (limits/, cache/, audit.py) --------------------------
    @property
    def limits(self) -> Limits:
        """Rate limits: define per user / tenant / API key; atomic `check` and `consume`."""
        from .limits import Limits

        return Limits(self._core)

    @property
    def budgets(self) -> Budgets:
        """Cost budgets per tenant or user per month: reserve before a call, settle after."""
        from .limits import Budgets

        return Budgets(self._core)

    @property
    def cache(self) -> Cache:
        """The response cache: exact (and optional semantic) match, TTL, hit counts."""
        from .cache import Cache

        return Cache(self._core)

    @property
    def audit(self) -> Audit:
        """The append-only audit log: who changed what, when, before and after."""
        from .audit import Audit

        return Audit(self._core)

    def close(self) -> None:
        """Close the pool and release the embedded server (when this client opened it)."""
        if self._core.root:
            self._core.db.close()
            _clear_default(self)

    def __enter__(self) -> LLMBase:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncLLMBase(_ClientBase):
    """Asynchronous client: the same stores, awaited."""

    def tenant(self, tenant: UUID | str) -> AsyncLLMBase:
        return AsyncLLMBase(self._core.scoped(tenant, None))

    def user(self, user: UUID | str) -> AsyncLLMBase:
        return AsyncLLMBase(self._core.scoped(self._core.tenant_ref or DEFAULT_TENANT, user))

    def admin(self) -> AsyncLLMBase:
        return AsyncLLMBase(self._core.scoped(None, None, admin=True))

    def as_actor(self, actor: str) -> AsyncLLMBase:
        return AsyncLLMBase(self._core.with_actor(actor))

    async def scope(self) -> Scope:
        return await self._core.ascope()

    @property
    def conversations(self) -> AsyncConversations:
        return AsyncConversations(self._core)

    @property
    def feedback(self) -> AsyncFeedback:
        return AsyncFeedback(self._core)

    @property
    def users(self) -> AsyncUsers:
        return AsyncUsers(self._core)

    @property
    def settings(self) -> AsyncTenantSettingsStore:
        return AsyncTenantSettingsStore(self._core)

    @property
    def keys(self) -> AsyncKeys:
        return AsyncKeys(self._core)

    @property
    def prices(self) -> AsyncPrices:
        return AsyncPrices(self._core)

    @property
    def tenants(self) -> AsyncTenants:
        return AsyncTenants(self._core.operator())

    @property
    def requests(self) -> AsyncRequests:
        from .ingest.api import AsyncRequests

        return AsyncRequests(self._core)

    def context(self, **ids: Any) -> ContextManager[None]:
        from ._context import context

        return context(self, **ids)

    def run(self, name: str | None = None, **fields: Any) -> Run:
        from .runs import Run

        return Run(self, name, **fields)

    @property
    def reports(self) -> AsyncReports:
        from .reports import AsyncReports

        return AsyncReports(self._core)

    @property
    def collections(self) -> AsyncCollections:
        from .documents.store import AsyncCollections

        return AsyncCollections(self._core)

    def collection(
        self, collection: str | UUID | Collection, embedder: Embedder | None = None, *, log: bool = True
    ) -> AsyncCollectionHandle:
        from .documents.store import AsyncCollectionHandle

        return AsyncCollectionHandle(self._core, collection, embedder, log=log)

    @property
    def limits(self) -> AsyncLimits:
        from .limits import AsyncLimits

        return AsyncLimits(self._core)

    @property
    def budgets(self) -> AsyncBudgets:
        from .limits import AsyncBudgets

        return AsyncBudgets(self._core)

    @property
    def cache(self) -> AsyncCache:
        from .cache import AsyncCache

        return AsyncCache(self._core)

    @property
    def audit(self) -> AsyncAudit:
        from .audit import AsyncAudit

        return AsyncAudit(self._core)

    async def aclose(self) -> None:
        if self._core.root:
            await self._core.db.aclose()
            _clear_default(self)

    async def __aenter__(self) -> AsyncLLMBase:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _open(url: str | None, data_dir: Any, migrate: bool, overrides: dict[str, Any]) -> _Core:
    cfg = Settings.from_env(database_url=url, data_dir=data_dir, **overrides)
    db = Database(cfg)
    if migrate:
        db.ensure_schema()
    return _Core(db, DEFAULT_TENANT, None, root=True)


def _clear_default(client: LLMBase | AsyncLLMBase) -> None:
    """A closed client stops being the default `instrument()` target."""
    from .integrations import get_default_client, set_default_client

    if get_default_client() is client:
        set_default_client(None)


def _set_default(client: LLMBase | AsyncLLMBase) -> None:
    """The first connected client is the one `llmbase.instrument()` logs through by default."""
    from .integrations import set_default_client

    set_default_client(client, replace=False)


def connect(
    url: str | None = None, *, data_dir: Any = None, migrate: bool = True, **settings: Any
) -> LLMBase:
    """Open llmbase: the embedded server unless `url` or LLMBASE_DATABASE_URL is given.

    `migrate=True` brings the schema to head first (safe when several processes start at
    once: migrations serialise on an advisory lock).
    """
    client = LLMBase(_open(url, data_dir, migrate, settings))
    _set_default(client)
    return client


def connect_async(
    url: str | None = None, *, data_dir: Any = None, migrate: bool = True, **settings: Any
) -> AsyncLLMBase:
    """Like `connect`, returning the async client (the server start and migration run now)."""
    client = AsyncLLMBase(_open(url, data_dir, migrate, settings))
    _set_default(client)
    return client
