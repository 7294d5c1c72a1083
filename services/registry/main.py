"""Entry point: `python -m services.registry`."""

from pathlib import Path

from services.registry import api, contracts, handlers, sweeps
from shared import sweeps as shared_sweeps
from shared.service import ServiceSpec
from shared.service import main as run

SPEC = ServiceSpec(
    name="registry",
    migrations=Path(__file__).with_name("migrations"),
    consumes=contracts.consumed_topics,
    handler=handlers.make_handler,
    api=api.create_app,
    timers=(shared_sweeps.timer(*sweeps.SWEEPS),),
)


def main() -> None:
    run(SPEC)
