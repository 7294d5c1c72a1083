"""Entry point: `python -m services.stats`."""

from pathlib import Path

from services.stats import api, contracts, handlers, sweeps
from shared.service import ServiceSpec
from shared.service import main as run

SPEC = ServiceSpec(
    name="stats",
    migrations=Path(__file__).with_name("migrations"),
    consumes=contracts.consumed_topics,
    handler=handlers.make_handler,
    api=api.create_app,
    timers=(handlers.reconciler, sweeps.TIMER),
)


def main() -> None:
    run(SPEC)
