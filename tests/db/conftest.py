"""The database tier: use cases on a real PostgreSQL, without Kafka.

Each service gets a database of its own for the session (migrated as the service would
migrate it); each test works inside a transaction that is rolled back at its end, so tests
see only what they wrote and leave nothing behind.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest
import pytest_asyncio

from deploy import stack
from shared.catalogue import Catalogue, load_catalogue
from shared.context import ServiceContext
from shared.db import SHARED_MIGRATIONS, create_pool, drop_database, ensure_database, migrate
from shared.settings import Settings
from shared.topics import SERVICES

SETTINGS = Settings(db_prefix=f"xinyong_dbt{uuid.uuid4().hex[:8]}_")

OpenTransaction = Callable[[str], Awaitable[asyncpg.Connection]]


@pytest.fixture(scope="session")
def db_settings() -> Iterator[Settings]:
    stack.run_script("postgres.sh", "start", SETTINGS)
    yield SETTINGS


@pytest.fixture(scope="session")
def kafka(db_settings: Settings) -> Iterator[None]:
    """The broker, for the few tests of this tier that need one (deploy/kafka.sh, started
    as the integration tier starts it), with the administrator able to log in."""
    stack.run_script("kafka.sh", "start", db_settings)
    stack.ensure_kafka_admin(db_settings)
    yield


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest_asyncio.fixture(scope="session")
async def pools(db_settings: Settings) -> AsyncIterator[dict[str, asyncpg.Pool]]:
    pools: dict[str, asyncpg.Pool] = {}
    try:
        for service in SERVICES:
            await ensure_database(db_settings, service)
            spec = importlib.import_module(f"services.{service}.main").SPEC
            pools[service] = await create_pool(db_settings, service)
            async with pools[service].acquire() as conn:
                await migrate(conn, SHARED_MIGRATIONS, spec.migrations)
        yield pools
    finally:
        for pool in pools.values():
            await pool.close()
        for service in SERVICES:
            await drop_database(db_settings, service)


@pytest_asyncio.fixture
async def tx(pools: dict[str, asyncpg.Pool]) -> AsyncIterator[OpenTransaction]:
    """`await tx("registry")`: a connection to that service's database inside a transaction
    that is rolled back when the test ends."""
    opened: list[tuple[asyncpg.Pool, asyncpg.Connection, asyncpg.transaction.Transaction]] = []

    async def open_transaction(service: str) -> asyncpg.Connection:
        conn = await pools[service].acquire()
        transaction = conn.transaction()
        await transaction.start()
        opened.append((pools[service], conn, transaction))
        return conn

    yield open_transaction
    for pool, conn, transaction in reversed(opened):
        await transaction.rollback()
        await pool.release(conn)


@pytest.fixture
def context_of(pools: dict[str, asyncpg.Pool], db_settings: Settings,
               catalogue: Catalogue) -> Callable[[str], ServiceContext]:
    """A service's context on its test database (for use cases that take one)."""
    return lambda service: ServiceContext(service, db_settings, catalogue, pools[service])
