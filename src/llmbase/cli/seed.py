"""`llmbase seed`: load realistic demo data."""

from __future__ import annotations

from typing import Annotated

import typer

from ..seed import seed_demo
from ._common import DatabaseUrlOpt, DataDirOpt, console, database


def seed(
    users: Annotated[int, typer.Option("--users", min=1, max=10, help="Users per tenant.")] = 5,
    conversations: Annotated[int, typer.Option("--conversations", min=1, help="Conversations per user.")] = 4,
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 7,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Load demo tenants (acme, globex, initech) with users, conversations, messages and feedback."""
    with database(database_url, data_dir) as db:
        db.ensure_schema()
        result = seed_demo(
            db.url, users_per_tenant=users, conversations_per_user=conversations, seed=random_seed
        )
        console.print(f"seeded {result.summary()}")
