"""What the limits API returns: definitions, per-call results, usage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from ..errors import BudgetExceeded, RateLimited

__all__ = [
    "Budget",
    "BudgetState",
    "BudgetUsage",
    "LimitResult",
    "LimitState",
    "RateLimit",
    "Reservation",
]

Subject = Literal["tenant", "user", "api_key"]
Metric = Literal["requests", "tokens"]
Window = Literal["minute", "hour", "day"]
Mode = Literal["soft", "hard"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A rate limit: `limit` `metric` per `window` for its subject. A tenant limit with
    `per_user` gives each user of the tenant that many separately."""

    id: UUID
    subject: Subject
    user_id: UUID | None
    api_key_id: UUID | None
    per_user: bool
    metric: Metric
    window: Window
    limit: int
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return f"{self.metric}/{self.window}"


@dataclass(frozen=True, slots=True)
class LimitState:
    """One limit as a call found it. `used` is the window's use before the call; `remaining`
    what the window admits after this call (admitted) or now (refused)."""

    limit_id: UUID
    subject: Subject
    per_user: bool
    metric: Metric
    window: Window
    limit: int
    subject_key: UUID
    window_start: datetime
    reset_at: datetime
    used: int
    amount: int
    allowed: bool
    remaining: int
    retry_after: float

    @property
    def name(self) -> str:
        return f"{self.metric}/{self.window}"


@dataclass(frozen=True, slots=True)
class LimitResult:
    """The answer of `check` / `consume`. With no applicable limit: allowed, and `limit`,
    `remaining` are None. Otherwise they describe the governing limit: the refusing limit
    that frees up last when refused, else the one with the least room left."""

    allowed: bool
    remaining: int | None
    retry_after: float
    limit: int | None
    name: str | None
    limits: tuple[LimitState, ...]

    def __bool__(self) -> bool:
        return self.allowed

    def raise_for_limit(self) -> None:
        """Raise `RateLimited` when the call was refused."""
        if not self.allowed:
            raise RateLimited(
                f"rate limit {self.name} ({self.limit}) reached; retry in {self.retry_after:.1f} s",
                limit=self.name or "",
                retry_after=self.retry_after,
                remaining=self.remaining or 0,
                limit_value=self.limit or 0,
            )


@dataclass(frozen=True, slots=True)
class Budget:
    """A monthly cost cap (USD, UTC calendar month) for the tenant, a user (`user_id`), or
    each user separately (`per_user`). `unpriced_call_usd`: what a call of a model without
    a known price reserves (None: a hard budget refuses such calls)."""

    id: UUID
    user_id: UUID | None
    per_user: bool
    cap_usd: Decimal
    mode: Mode
    unpriced_call_usd: Decimal | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One budget as a reservation found it (spent and reserved before this call)."""

    budget_id: UUID
    user_id: UUID | None
    per_user: bool
    mode: Mode
    cap_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    amount_usd: Decimal | None
    allowed: bool
    over_cap: bool
    unpriced: bool
    reset_at: datetime
    retry_after: float

    @property
    def remaining_usd(self) -> Decimal:
        return max(self.cap_usd - self.spent_usd - self.reserved_usd, Decimal(0))

    @property
    def scope(self) -> str:
        return "user" if self.user_id is not None or self.per_user else "tenant"


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer of `budgets.reserve`: `id` to settle or release; `flagged` when a soft
    budget is exceeded (admitted, logged)."""

    id: UUID
    allowed: bool
    estimate_usd: Decimal | None
    budgets: tuple[BudgetState, ...]

    @property
    def flagged(self) -> bool:
        return any(b.over_cap and b.mode == "soft" for b in self.budgets)

    @property
    def refusing(self) -> BudgetState | None:
        return next((b for b in self.budgets if not b.allowed), None)

    def raise_for_budget(self) -> None:
        """Raise `BudgetExceeded` when the reservation was refused."""
        b = self.refusing
        if b is None:
            return
        why = (
            "the model has no known price and the budget sets no unpriced_call_usd"
            if b.amount_usd is None
            else f"spent {b.spent_usd:.6f} + reserved {b.reserved_usd:.6f} + this call's estimate"
            f" {b.amount_usd:.6f} USD would exceed the cap of {b.cap_usd} USD"
        )
        raise BudgetExceeded(
            f"{b.scope} budget {b.budget_id} refused the call: {why}",
            budget=b.cap_usd,
            remaining=b.remaining_usd,
            retry_after=b.retry_after,
            scope=b.scope,
        )


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """A budget's spend in one month for one subject (subject_key: the user, or zeros)."""

    budget_id: UUID
    subject_key: UUID
    period_start: date
    mode: Mode
    cap_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal

    @property
    def remaining_usd(self) -> Decimal:
        return max(self.cap_usd - self.spent_usd - self.reserved_usd, Decimal(0))
