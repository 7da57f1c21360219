"""Settings from arguments, then environment variables, then defaults."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    return default if not raw else raw.strip().lower() not in ("0", "false", "no", "off")


#: A redaction hook: called with the record kind ("request", "run", "iteration",
#: "tool_call") and the payload dict, in the writer, before anything is written or spooled.
#: Return the payload to store (or None after changing it in place).
Redactor = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]


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

    # -- the request log's write path (docs/ingest.md) ---------------------------------
    #: Records per COPY batch; a batch is also cut every `ingest_flush_interval` seconds.
    ingest_batch_size: int = 5000
    ingest_flush_interval: float = 0.2
    #: Records held in memory; past this, `log()` writes straight to the disk spool.
    ingest_queue_max: int = 20_000
    #: Directory of the disk spool; None: `spool_dir()` picks one (see there).
    ingest_spool_dir: Path | None = None
    #: Upper bound of the spool on disk (all segment files in the directory); past it new
    #: records are dropped and counted in `stats()["dropped"]`.
    ingest_spool_max_bytes: int = 2 << 30
    #: Largest request / response body kept, each, in UTF-8 bytes of its JSON; larger
    #: bodies are cut and marked (`bodies_truncated` = true).
    ingest_body_max_bytes: int = 256 * 1024
    #: Times the database may reject a record (alone, after bisecting its batch) before it
    #: goes to llmbase.ingest_dead_letters.
    ingest_max_attempts: int = 3
    #: Seconds `close()` (and the exit hook) waits for the log to drain.
    ingest_close_timeout: float = 10.0
    #: Your redaction hook (see `Redactor`), run before the built-in one.
    redact: Redactor | None = None
    #: The built-in redaction of API keys, bearer tokens, passwords and other secrets in
    #: bodies, metadata and error messages (llmbase.redact.scrub_text).
    redact_secrets: bool = True
    #: Who this process acts as in the audit log (e.g. "billing-service", "ops:alice");
    #: None: the audit log names the scope (operator, user or service) and the login role.
    actor: str | None = None

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
            ingest_batch_size=_env_int("LLMBASE_INGEST_BATCH_SIZE", 5000),
            ingest_flush_interval=_env_float("LLMBASE_INGEST_FLUSH_INTERVAL", 0.2),
            ingest_queue_max=_env_int("LLMBASE_INGEST_QUEUE_MAX", 20_000),
            ingest_spool_dir=Path(spool).expanduser()
            if (spool := os.environ.get("LLMBASE_SPOOL_DIR"))
            else None,
            ingest_spool_max_bytes=_env_int("LLMBASE_SPOOL_MAX_BYTES", 2 << 30),
            ingest_body_max_bytes=_env_int("LLMBASE_BODY_MAX_BYTES", 256 * 1024),
            redact_secrets=_env_bool("LLMBASE_REDACT_SECRETS", True),
            actor=os.environ.get("LLMBASE_ACTOR") or None,
        )
        if overrides:
            from dataclasses import replace

            base = replace(base, **overrides)  # type: ignore[arg-type]
        return base

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def spool_dir(self) -> Path:
        """Where the request log spools while the database is away: `ingest_spool_dir`, else
        `spool/` beside the embedded data directory, else (a database URL) a directory per
        database under the user cache dir, so records are replayed into the database they
        were meant for."""
        if self.ingest_spool_dir is not None:
            return Path(self.ingest_spool_dir).expanduser()
        if self.database_url is None:
            return Path(self.data_dir).expanduser().parent / "spool"
        parts = urlsplit(self.database_url)
        host = parts.hostname or ""
        bare = urlunsplit(parts._replace(netloc=f"{parts.username or ''}@{host}:{parts.port or ''}"))
        key = hashlib.sha256(bare.encode()).hexdigest()[:16]
        return Path(platformdirs.user_cache_dir("llmbase", appauthor=False)) / "spool" / key
