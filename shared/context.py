"""What a service's handlers and HTTP API are given: its configuration and its own database.

Kept apart from the bootstrap (`shared/service.py`), so that use cases and their tests
(the database tier) need no Kafka client, HTTP server or signal handling to build one.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.catalogue import Catalogue
from shared.settings import Settings


@dataclass(frozen=True)
class ServiceContext:
    name: str
    settings: Settings
    catalogue: Catalogue
    pool: asyncpg.Pool
