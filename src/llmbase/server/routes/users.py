"""Users of the key's tenant: `/v1/users` (list, create), `/v1/users/{id or external id}`
(get, change, delete with all their rows), `/v1/users/{user}/profile`."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path

from ...ops.delete import DeleteResult
from ...stores.users import Profile, User
from ..auth import Principal, require
from ..schemas import Page, UserIn, UserPatch
from ._common import ERRORS, Cursor, Limit, page

router = APIRouter(prefix="/v1/users", tags=["users"], responses=ERRORS)

UserRef = Annotated[str, Path(min_length=1, max_length=200, description="User id or external id.")]


def _ref(user: str) -> UUID | str:
    try:
        return UUID(user)
    except ValueError:
        return user


def _id(principal: Principal, user: str) -> UUID:
    ref = _ref(user)
    return ref if isinstance(ref, UUID) else principal.client.users.get(ref).id


@router.get("", response_model=Page[User])
def list_users(
    limit: Limit = 100, cursor: Cursor = None, principal: Principal = require("read")
) -> dict[str, Any]:
    """The tenant's users by external id."""
    return page(principal.client.users.list(limit=limit, after=cursor))


@router.post("", response_model=User, status_code=201)
def create_user(body: UserIn, principal: Principal = require("write")) -> User:
    """A new user (409 when the external id exists)."""
    return principal.client.users.create(**body.model_dump(exclude_none=True))


@router.get("/{user}", response_model=User)
def get_user(user: UserRef, principal: Principal = require("read")) -> User:
    return principal.client.users.get(_ref(user))


@router.patch("/{user}", response_model=User)
def update_user(user: UserRef, body: UserPatch, principal: Principal = require("write")) -> User:
    return principal.client.users.update(_id(principal, user), **body.model_dump(exclude_none=True))


@router.delete("/{user}", response_model=DeleteResult)
def delete_user(user: UserRef, principal: Principal = require("write")) -> DeleteResult:
    """Delete the user and their rows in every table (conversations, feedback, keys, the
    request log, runs, ...). Returns the rows removed per table."""
    return principal.client.users.delete(_id(principal, user))


@router.get("/{user}/profile", response_model=Profile)
def user_profile(user: UserRef, principal: Principal = require("read")) -> Profile:
    """Activity statistics: conversations, messages, requests, tokens, cost, feedback."""
    return principal.client.users.profile(_id(principal, user))
