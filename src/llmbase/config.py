"""Settings from arguments, then environment variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

__all__ = ["Settings"]

#: Role every application transaction switches to: owns nothing, cannot bypass RLS.
APP_ROLE = "llmbase_app"
#: Role the schema owner belongs to; only its members may enter admin scope.
ADMIN_ROLE = "llmbase_admin"
#: Schema that holds every llmbase object, so it never collides with an app's own tables.
SCHEMA = "llmbase"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("llmbase", appauthor=False)) / "pgdata"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    """Connection and limit settings.

    `database_url` None means the embedded server in `data_dir`.
    """

    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    pool_min_size: int = 1
    pool_max_size: int = 10
    #: Largest message content / comment accepted, in characters (UTF-8 text).
    max_content_chars: int = 1_000_000
    #: Largest metadata JSON accepted, in bytes once serialised.
    max_metadata_bytes: int = 256 * 1024
    #: Migrate to head on connect when the schema is behind (embedded default: yes).
    auto_migrate: bool = True

    @classmethod
    def from_env(
        cls,
        database_url: str | None = None,
        data_dir: str | Path | None = None,
        **overrides: object,
    ) -> Settings:
        url = database_url or os.environ.get("LLMBASE_DATABASE_URL") or None
        ddir = data_dir or os.environ.get("LLMBASE_DATA_DIR") or default_data_dir()
        base = cls(
            database_url=url,
            data_dir=Path(ddir).expanduser(),
            pool_min_size=_env_int("LLMBASE_POOL_MIN", 1),
            pool_max_size=_env_int("LLMBASE_POOL_MAX", 10),
        )
        if overrides:
            from dataclasses import replace

            base = replace(base, **overrides)  # type: ignore[arg-type]
        return base

    @property
    def embedded(self) -> bool:
        return self.database_url is None
