"""Prometheus metrics shared by all services (labelled by service)."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("xinyong_messages_total", "Messages applied by stream workers",
                   ["service", "topic"])
BATCH_SECONDS = Histogram("xinyong_batch_seconds", "Time to apply one batch in one transaction",
                          ["service"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
DEAD_LETTERS = Counter("xinyong_dead_letters_total", "Messages sent to the dead-letter topic",
                       ["service"])
MESSAGES_SKIPPED = Counter("xinyong_messages_skipped_total",
                           "Messages passed over because not even their dead letter could be "
                           "written (logged with their position)", ["service"])
OUTBOX_SENT = Counter("xinyong_outbox_sent_total", "Events relayed from the outbox",
                      ["service"])
OUTBOX_SET_ASIDE = Counter("xinyong_outbox_set_aside_total",
                           "Outbox events the broker refused, moved to outbox_set_aside",
                           ["service"])
OUTBOX_PENDING = Gauge("xinyong_outbox_pending", "Events written but not yet relayed",
                       ["service"])
ASSIGNED_PARTITIONS = Gauge("xinyong_assigned_partitions", "Partitions assigned to this worker",
                            ["service"])
POSITION_MISMATCHES = Counter(
    "xinyong_position_mismatch_total",
    "Stored positions that disagreed with their log (shared/positions.py), by what was found",
    ["service", "topic", "reason"])
PARTITIONS_PAUSED = Gauge(
    "xinyong_partitions_paused",
    "Partitions not consumed until an operator resolves a position mismatch", ["service"])
