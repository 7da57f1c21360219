"""Bind a plan function to a client as a method: synchronous (`op`) or awaitable (`aop`).

Store classes list their operations once as `create = op(conversations.create)`; the plan
holds all the logic and the SQL, the binding holds none, and the sync and async clients
share every plan unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from ._common import Ctx
from ._plan import Plan

if TYPE_CHECKING:
    from ..client import _Core

__all__ = ["AsyncStore", "Store", "aop", "op"]

P = ParamSpec("P")
T = TypeVar("T")


class Store:
    """A sync store: a view of one client scope onto one concept."""

    def __init__(self, client: _Core) -> None:
        self._client = client


class AsyncStore:
    def __init__(self, client: _Core) -> None:
        self._client = client


class _Op(Generic[P, T]):
    def __init__(self, fn: Callable[Concatenate[Ctx, P], Plan[T]]) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @overload
    def __get__(self, obj: None, owner: type) -> _Op[P, T]: ...
    @overload
    def __get__(self, obj: Store, owner: type) -> Callable[P, T]: ...
    def __get__(self, obj: Store | None, owner: type) -> Any:
        if obj is None:
            return self
        client = obj._client
        fn = self.fn

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return client.run(fn, *args, **kwargs)

        return call


class _AOp(Generic[P, T]):
    def __init__(self, fn: Callable[Concatenate[Ctx, P], Plan[T]]) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @overload
    def __get__(self, obj: None, owner: type) -> _AOp[P, T]: ...
    @overload
    def __get__(self, obj: AsyncStore, owner: type) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: AsyncStore | None, owner: type) -> Any:
        if obj is None:
            return self
        client = obj._client
        fn = self.fn

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return await client.arun(fn, *args, **kwargs)

        return call


def op(fn: Callable[Concatenate[Ctx, P], Plan[T]]) -> _Op[P, T]:
    return _Op(fn)


def aop(fn: Callable[Concatenate[Ctx, P], Plan[T]]) -> _AOp[P, T]:
    return _AOp(fn)
