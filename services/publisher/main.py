"""Entry point: `python -m services.publisher`."""

from pathlib import Path

from services.publisher import (
    agencies,
    api,
    contracts,
    follow,
    gauges,
    handlers,
    rights_api,
    sweeps,
)
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
            shared_sweeps.timer(sweeps.all_sweeps), handlers.notification_timer,
            handlers.subject_party_filler, rights_api.query_log_writer),
)


def main() -> None:
    run(SPEC)
