"""Entry point: `python -m services.ingest`."""

from pathlib import Path

from services.ingest import api, contracts, handlers
from shared.service import ServiceSpec
from shared.service import main as run

SPEC = ServiceSpec(
    name="ingest",
    migrations=Path(__file__).with_name("migrations"),
    consumes=contracts.consumed_topics,
    handler=handlers.make_handler,
    api=api.create_app,
)


def main() -> None:
    run(SPEC)
