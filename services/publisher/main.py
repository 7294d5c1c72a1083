"""Entry point: `python -m services.publisher`."""

from pathlib import Path

from services.publisher import api, contracts, gauges, handlers, rights_api
from shared.service import ServiceSpec
from shared.service import main as run

SPEC = ServiceSpec(
    name="publisher",
    migrations=Path(__file__).with_name("migrations"),
    consumes=contracts.consumed_topics,
    handler=handlers.make_handler,
    api=api.create_app,
    gauges=(gauges.notice_feedback,),
    timers=(handlers.list_timer, handlers.notification_timer, handlers.subject_party_filler,
            rights_api.query_log_writer),
)


def main() -> None:
    run(SPEC)
