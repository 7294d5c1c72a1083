"""Entry point: `python -m services.ingest`."""

from pathlib import Path

from services.ingest import api, contracts, handlers, sweeps
from shared import purge
from shared import sweeps as shared_sweeps
from shared.service import ServiceSpec
from shared.service import main as run

SPEC = ServiceSpec(
    name="ingest",
    migrations=Path(__file__).with_name("migrations"),
    consumes=contracts.consumed_topics,
    handler=handlers.make_handler,
    api=api.create_app,
    timers=(shared_sweeps.timer(purge.sweep(sweeps.PLAN)),),
)


def main() -> None:
    run(SPEC)
