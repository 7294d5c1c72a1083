"""Database helpers: per-service database and role, migrations, connection pool.

Migrations are numbered SQL files in each service's `migrations/` folder, applied in order
under an advisory lock and recorded in `schema_migrations`, so several workers of one
service can start at once. (A migration library would bring a second, synchronous driver
only for this; the runner below is the whole of what is needed.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import asyncpg

from shared.settings import Settings

# Failures of the database, not of the message: wait and apply the same batch again.
TRANSIENT = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, restart, not yet accepting
    # A pooled connection left mid-operation when the database went away ("cannot switch to
    # state 15; another operation is in progress"): seen in a clean-clone run, where it ended
    # the publisher's notice sequencer during an outage test. Not an InterfaceError.
    asyncpg.InternalClientError,
)

_MIGRATION_LOCK = 727_001
SHARED_MIGRATIONS = Path(__file__).with_name("migrations")


class Json(str):
    """Text that is already JSON (from pydantic's `model_dump_json`): written to json and
    jsonb columns as it is, without a second serialization."""


def _json_bytes(value: Any) -> bytes:
    if isinstance(value, Json):
        return value.encode()
    return json.dumps(value, ensure_ascii=False).encode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs, so that COPY (used for batch inserts) can write JSON columns too. The
    # binary form of jsonb is a version byte (1) followed by the JSON text.
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary",
        encoder=lambda v: b"\x01" + _json_bytes(v),
        decoder=lambda b: json.loads(b[1:]))
    await conn.set_type_codec(
        "json", schema="pg_catalog", format="binary",
        encoder=_json_bytes, decoder=json.loads)


async def ensure_database(settings: Settings, service: str) -> None:
    """Create the service's role and database if missing (idempotent; needs the admin role)."""
    name = settings.db_name(service)
    admin = await asyncpg.connect(settings.admin_dsn())
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
            await admin.execute(
                f"CREATE ROLE {_ident(name)} LOGIN PASSWORD {_literal(settings.pg_password)}")
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            # UTF-8 locale: bigram search over Chinese names depends on it (DOMAIN.md).
            await admin.execute(
                f"CREATE DATABASE {_ident(name)} OWNER {_ident(name)} ENCODING 'UTF8' "
                "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0")
    finally:
        await admin.close()


async def drop_database(settings: Settings, service: str) -> None:
    name = settings.db_name(service)
    admin = await asyncpg.connect(settings.admin_dsn())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
    finally:
        await admin.close()


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe identifier {name!r}")
    return f'"{name}"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def migrate(conn: asyncpg.Connection, *migration_dirs: Path) -> list[str]:
    """Apply pending migrations from the folders, ordered by file name across them (the
    shared messaging tables are 000_*, each service's own start at 001_); returns the names
    applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r["name"]: r["checksum"]
                for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
        paths = sorted((p for d in migration_dirs for p in d.glob("*.sql")), key=lambda p: p.name)
        for path in paths:
            sql = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != checksum:
                    raise RuntimeError(
                        f"migration {path.name} was edited after it was applied; applied "
                        "migrations are never edited, a change is a new file (a local "
                        "database from an older checkout: `./xinyong reset --yes`)")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    path.name, checksum)
            applied_now.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def create_pool(settings: Settings, service: str, **kwargs: Any) -> asyncpg.Pool:
    options = {"min_size": 1, "max_size": settings.pg_pool_max, "reset": _keep_session,
               **kwargs}
    return await asyncpg.create_pool(settings.dsn(service), init=_init_connection, **options)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to its pool: the services set no session
    state on pooled connections (no SET, LISTEN, cursors; the one session advisory lock, the
    migrations', is released in a `finally`), and asyncpg itself rolls back a transaction
    left open before calling this. Its default reset is one more round trip per batch and
    per request (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL)."""


async def create_http_pool(settings: Settings, service: str) -> asyncpg.Pool:
    """The pool of a service's HTTP API, apart from its stream worker's: every statement is
    cancelled past `http_statement_timeout_ms` (asyncpg.QueryCanceledError, answered 503 by
    shared.http), and the application name tells its connections apart in pg_stat_activity."""
    return await create_pool(
        settings, service, max_size=settings.http_pool_max,
        server_settings={"statement_timeout": str(settings.http_statement_timeout_ms),
                         "application_name": f"xinyong-{service}-http"})
