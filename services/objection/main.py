"""Entry point: `python -m services.objection`."""

from pathlib import Path

from services.objection import api, contracts, gauges, handlers, sweeps
from shared import sweeps as shared_sweeps
from shared.service import ServiceSpec
from shared.service import main as run

SPEC = ServiceSpec(
    name="objection",
    migrations=Path(__file__).with_name("migrations"),
    consumes=contracts.consumed_topics,
    handler=handlers.make_handler,
    api=api.create_app,
    gauges=(gauges.open_objections,),
    timers=(handlers.deadline_timer, handlers.rate_window_cleaner,
            shared_sweeps.timer(sweeps.all_sweeps)),
)


def main() -> None:
    run(SPEC)
