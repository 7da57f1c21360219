"""Realistic demo data: several tenants, their users, conversations with messages and feedback.

Deterministic for a given `seed`, so a dashboard screenshot or a report is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .client import LLMBase, connect
from .errors import ConflictError

__all__ = ["SeedResult", "seed_demo"]

TENANTS = [
    ("acme", "Acme Support", "gpt-4o-mini", "You are Acme's friendly support assistant."),
    ("globex", "Globex Research", "claude-sonnet-4-5", "You help Globex researchers find papers."),
    ("initech", "Initech Helpdesk", "gpt-4.1", "You answer IT questions for Initech staff."),
]
FIRST = [
    "ada",
    "grace",
    "linus",
    "margaret",
    "ken",
    "barbara",
    "dennis",
    "frances",
    "alan",
    "radia",
]
TOPICS = [
    (
        "How do I reset my password?",
        "Open Settings > Security, choose 'Reset password' and follow the email link.",
    ),
    (
        "Summarise the Q3 report",
        "Revenue grew 12% quarter on quarter, driven by the new subscription tier.",
    ),
    ("Which plan includes SSO?", "Single sign-on is part of the Business and Enterprise plans."),
    ("Translate 'good morning' to German", "'Guten Morgen'."),
    (
        "Why is my build failing?",
        "The log shows a missing dependency: add it to requirements.txt and rebuild.",
    ),
    (
        "Find papers on retrieval-augmented generation",
        "Start with Lewis et al. (2020) and the RETRO paper (2022).",
    ),
    (
        "What is the refund policy?",
        "Refunds are available within 30 days of purchase for annual plans.",
    ),
    (
        "Write a SQL query for daily active users",
        "SELECT date_trunc('day', created_at), count(DISTINCT user_id) ...",
    ),
    (
        "Explain vector indexes",
        "HNSW builds a layered proximity graph; queries walk it greedily from the top.",
    ),
    ("Is the API down?", "All systems are operational; the last incident was resolved yesterday."),
]
COMMENTS = [
    "Exactly what I needed",
    "Too vague",
    "Wrong answer",
    "Thanks!",
    "Could be shorter",
    None,
    None,
    None,
]


@dataclass(frozen=True)
class SeedResult:
    tenants: int
    users: int
    conversations: int
    messages: int
    feedback: int
    requests: int = 0
    skipped: bool = False

    def summary(self) -> str:
        if self.skipped:
            return "database already has data; demo data not loaded"
        return (
            f"{self.tenants} tenants, {self.users} users, {self.conversations} conversations, "
            f"{self.messages} messages, {self.feedback} ratings, {self.requests} logged calls"
        )


def _provider(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


def _has_data(client: LLMBase) -> bool:
    return any(t.slug != "default" for t in client.tenants.list(limit=10))


def seed_demo(
    url: str | None = None,
    *,
    users_per_tenant: int = 5,
    conversations_per_user: int = 4,
    seed: int = 7,
    only_if_empty: bool = False,
    client: LLMBase | None = None,
) -> SeedResult:
    """Load demo data (idempotent per tenant slug: existing demo tenants are left alone)."""
    own = client is None
    db = client or connect(url)
    rng = random.Random(seed)
    try:
        if only_if_empty and _has_data(db):
            return SeedResult(0, 0, 0, 0, 0, skipped=True)
        n_t = n_u = n_c = n_m = n_f = n_r = 0
        for slug, name, model, prompt in TENANTS:
            try:
                db.tenants.create(slug, name=name, metadata={"demo": True})
            except ConflictError:
                continue
            n_t += 1
            tenant = db.tenant(slug)
            tenant.settings.put({"default_model": model, "system_prompt": prompt, "temperature": 0.3})
            for who in rng.sample(FIRST, users_per_tenant):
                user = tenant.user(f"{who}@{slug}.example")
                tenant.users.update(
                    user.scope().user_id, email=f"{who}@{slug}.example", display_name=who.title()
                )
                n_u += 1
                for _ in range(conversations_per_user):
                    q, a = rng.choice(TOPICS)
                    conv = user.conversations.create(
                        title=q[:60],
                        model=model,
                        metadata={"channel": rng.choice(["web", "slack", "discord"])},
                    )
                    n_c += 1
                    user.conversations.add_message(conv.id, role="system", content=prompt)
                    for turn in range(rng.randint(1, 3)):
                        user.conversations.add_message(
                            conv.id,
                            role="user",
                            content=q if turn == 0 else "Can you say more?",
                            token_count=rng.randint(8, 40),
                        )
                        latency = rng.randint(300, 4000)
                        reply = user.conversations.add_message(
                            conv.id,
                            role="assistant",
                            content=a,
                            model=model,
                            token_count=rng.randint(40, 400),
                            cost_usd=round(rng.uniform(0.0001, 0.02), 6),
                            latency_ms=latency,
                            provider_response_ms=int(latency * 0.9),
                        )
                        n_m += 3 if turn == 0 else 2
                        # the model call behind the reply, spread over the last two weeks
                        user.requests.log(
                            request_type="chat",
                            provider=_provider(model),
                            model=model,
                            conversation_id=conv.id,
                            message_id=reply.id,
                            tokens_prompt=rng.randint(200, 2000),
                            tokens_completion=reply.token_count,
                            latency_ms=float(latency),
                            ttft_ms=float(rng.randint(150, 900)),
                            status="success" if rng.random() > 0.04 else "rate_limited",
                            created_at=datetime.now(UTC) - timedelta(minutes=rng.randint(0, 14 * 24 * 60)),
                        )
                        n_r += 1
                        if rng.random() < 0.6:
                            user.feedback.rate(
                                reply.id,
                                rating=rng.choice(["up", "up", "up", "down"]),
                                comment=rng.choice(COMMENTS),
                            )
                            n_f += 1
                    if rng.random() < 0.5:
                        user.conversations.complete(conv.id, total_iterations=rng.randint(1, 6))
        db.requests.flush(timeout=30)
        return SeedResult(n_t, n_u, n_c, n_m, n_f, requests=n_r)
    finally:
        if own:
            db.close()
