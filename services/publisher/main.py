"""Entry point: `python -m services.publisher`."""

from pathlib import Path

from services.publisher import agencies, api, contracts, follow, gauges, handlers, sweeps
from shared import sweeps as shared_sweeps
from shared.service import ServiceSpec
from shared.service import main as run

SPEC = ServiceSpec(
    name="publisher",
    migrations=Path(__file__).with_name("migrations"),
    consumes=contracts.consumed_topics,
    handler=handlers.make_handler,
    api=api.create_app,
    gauges=(gauges.notice_feedback,),
    timers=(handlers.list_timer, agencies.sequencer, follow.catalogue_follower,
            shared_sweeps.timer(sweeps.all_sweeps)),
)


def main() -> None:
    run(SPEC)
