"""A stream worker's admin client given up on (a failed position check, a new cluster) is
kept until its requests have timed out: librdkafka can abort the process when an answer is
parsed just as its client is destroyed (shared/worker.py, `_retire_admin`)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from shared import worker as worker_module
from shared.kafka import ADMIN_TIMEOUT_S, make_consumer
from shared.settings import Settings
from shared.worker import StreamWorker


class FakeAdmin:
    """Stands for librdkafka's client: only its lifetime is observed."""


async def test_an_admin_given_up_on_lives_until_its_requests_have_timed_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(worker_module, "make_admin", lambda settings: FakeAdmin())
    settings = Settings()
    consumer = make_consumer(settings, "g", [])  # never started
    worker = StreamWorker(settings, "ingest", pool=None,  # type: ignore[arg-type]
                          consumer=consumer, topics=[], handler=None)  # type: ignore[arg-type]

    first = weakref.ref(worker.admin())
    worker._retire_admin()
    gc.collect()
    assert first() is not None  # given up on, still alive
    now[0] += ADMIN_TIMEOUT_S
    replacement: Any = worker.admin()
    assert replacement is not first()
    gc.collect()
    assert first() is not None  # its requests may not have timed out yet
    now[0] += ADMIN_TIMEOUT_S + 1
    assert worker.admin() is replacement
    gc.collect()
    assert first() is None  # released once nothing of it can be in flight
