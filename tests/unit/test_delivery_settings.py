"""Nothing given up for speed (issue 9, "Nothing given up"): every producer the services,
the command line and the benchmark make is idempotent and waits for every in-sync replica.
The database side (synchronous_commit, fsync) is checked on the real server:
tests/integration/test_durability_settings.py."""

from __future__ import annotations

import ast
from pathlib import Path

from shared.kafka import make_producer
from shared.settings import REPO_ROOT, Settings


async def test_the_one_producer_factory_is_idempotent_with_acks_all() -> None:
    producer = make_producer(Settings(), username="u", password="p")  # never started
    assert producer._txn_manager is not None  # idempotence: a producer id and sequences
    assert producer._sender._acks == -1  # acks=all


def test_no_shipped_code_makes_a_producer_of_its_own() -> None:
    """Services, deploy and bench get their producers from `make_producer` alone."""
    makers = []
    for folder in ("shared", "services", "deploy", "bench"):
        for path in sorted(Path(REPO_ROOT, folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id == "AIOKafkaProducer"):
                    makers.append(str(path.relative_to(REPO_ROOT)))
    assert makers == ["shared/kafka.py"]
