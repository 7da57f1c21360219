"""Rate limits and budgets of the key's tenant (docs/limits.md).

- `POST /v1/limits/check` (read: counts nothing), `POST /v1/limits/consume` (write);
- `GET|POST /v1/limits`, `DELETE /v1/limits/{id}`: definitions (admin);
- `GET /v1/budgets/usage` (read), `POST /v1/budgets/check` (read);
- `GET|POST /v1/budgets`, `DELETE /v1/budgets/{id}`: definitions (admin)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from ...limits._types import Budget, BudgetUsage, LimitResult, RateLimit, Reservation
from ..auth import Principal, require
from ..schemas import BudgetCheck, BudgetIn, LimitCall, LimitIn, Page
from ._common import ERRORS, Cursor, Limit, paginate

router = APIRouter(prefix="/v1", tags=["limits"], responses=ERRORS)


def _money(v: float | None) -> Decimal | None:
    return None if v is None else Decimal(repr(v))


@router.post("/limits/check", response_model=LimitResult)
def check_limits(body: LimitCall, principal: Principal = require("read")) -> LimitResult:
    """Would a call of `requests` and `tokens` be admitted now? Counts nothing."""
    return principal.client.limits.check(requests=body.requests, tokens=body.tokens, user=body.user)


@router.post("/limits/consume", response_model=LimitResult)
def consume_limits(body: LimitCall, principal: Principal = require("write")) -> LimitResult:
    """Admit and count a call against every applicable limit (all or none); `allowed`
    false when refused (nothing counted)."""
    return principal.client.limits.consume(requests=body.requests, tokens=body.tokens, user=body.user)


@router.get("/limits", response_model=Page[RateLimit])
def list_limits(
    limit: Limit = 100, cursor: Cursor = None, principal: Principal = require("admin")
) -> dict[str, Any]:
    return paginate(principal.client.limits.list(), limit, cursor)


@router.post("/limits", response_model=RateLimit)
def set_limit(body: LimitIn, principal: Principal = require("admin")) -> RateLimit:
    """Create or change a limit: `limit` `metric` per `window`, for the tenant, a `user`,
    an `api_key`, or each user (`per_user`)."""
    return principal.client.limits.set(
        body.limit,
        metric=body.metric,
        window=body.window,
        user=body.user,
        api_key=body.api_key,
        per_user=body.per_user,
    )


@router.delete("/limits/{limit_id}", status_code=204, response_class=Response)
def delete_limit(limit_id: UUID, principal: Principal = require("admin")) -> Response:
    principal.client.limits.delete(limit_id)
    return Response(status_code=204)


@router.get("/budgets/usage", response_model=list[BudgetUsage])
def budget_usage(
    all_months: bool = Query(False), principal: Principal = require("read")
) -> list[BudgetUsage]:
    """Spent and reserved USD per budget and subject this month (or every month kept)."""
    return principal.client.budgets.usage(all_months=all_months)


@router.post("/budgets/check", response_model=Reservation)
def check_budget(body: BudgetCheck, principal: Principal = require("read")) -> Reservation:
    """Would a call of this estimated cost be admitted now? Reserves nothing."""
    return principal.client.budgets.check(_money(body.estimate_usd), user=body.user)


@router.get("/budgets", response_model=Page[Budget])
def list_budgets(
    limit: Limit = 100, cursor: Cursor = None, principal: Principal = require("admin")
) -> dict[str, Any]:
    return paginate(principal.client.budgets.list(), limit, cursor)


@router.post("/budgets", response_model=Budget)
def set_budget(body: BudgetIn, principal: Principal = require("admin")) -> Budget:
    """Create or change the monthly cap (USD) of the tenant, a `user`, or each user."""
    return principal.client.budgets.set(
        Decimal(repr(body.cap_usd)),
        user=body.user,
        per_user=body.per_user,
        mode=body.mode,
        unpriced_call_usd=_money(body.unpriced_call_usd),
    )


@router.delete("/budgets/{budget_id}", status_code=204, response_class=Response)
def delete_budget(budget_id: UUID, principal: Principal = require("admin")) -> Response:
    principal.client.budgets.delete(budget_id)
    return Response(status_code=204)
