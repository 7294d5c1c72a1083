"""Prometheus metrics of every service: what the alert rules (deploy/prometheus/) and the
dashboards (deploy/grafana/) read.

Every metric is labelled by `service`; some also by topic, route, agency: sets the catalogue
or the code bounds. Never by subject, record or request id: one series per subject would
be a second archive in the monitoring system, and unbounded.

Gauges computed from a service's database (backlog, lag, overdue counts) are the same in
every process of one service: sum them across processes only where a process reports its
own share (consumer lag: the partitions assigned to it), take the max otherwise.
"""

from prometheus_client import Counter, Gauge, Histogram

# --- stream workers (shared/worker.py) ---------------------------------------------------
MESSAGES = Counter("xinyong_messages_total", "Messages applied by stream workers",
                   ["service", "topic"])
BATCH_SECONDS = Histogram("xinyong_batch_seconds", "Time to apply one batch in one transaction",
                          ["service"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
ASSIGNED_PARTITIONS = Gauge("xinyong_assigned_partitions", "Partitions assigned to this worker",
                            ["service"])
CONSUMER_LAG = Gauge(
    "xinyong_consumer_lag",
    "Messages not yet applied: log end offset minus the position stored in the service's "
    "database, summed over the partitions assigned to this process",
    ["service", "topic"])

POSITION_MISMATCHES = Counter(
    "xinyong_position_mismatch_total",
    "Stored positions that disagreed with their log (shared/positions.py), by what was found",
    ["service", "topic", "reason"])
PARTITIONS_PAUSED = Gauge(
    "xinyong_partitions_paused",
    "Partitions not consumed until an operator resolves a position mismatch", ["service"])

# --- outbox and dead letters (shared/outbox.py) ------------------------------------------
CONSUMERS_REPLACED = Counter(
    "xinyong_consumers_replaced_total",
    "Stream consumers closed and made again after too long out of their group "
    "(shared/worker.py, StreamWorker._mind_group)", ["service", "group"])
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
# Per hop: how long an event waited in the outbox (written in its transaction -> handed to
# the producer and acknowledged by the broker), and how old an event is when a worker
# consumes it (the producer's timestamp -> the fetch).
_HOP_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
OUTBOX_AGE_AT_SEND = Histogram(
    "xinyong_outbox_age_at_send_seconds",
    "From an event's write to the outbox to the broker's acknowledgement of it", ["service"],
    buckets=_HOP_BUCKETS)
EVENT_AGE_AT_CONSUME = Histogram(
    "xinyong_event_age_at_consume_seconds",
    "From an event's timestamp (set by its producer) to its fetch by this worker",
    ["service", "topic"], buckets=_HOP_BUCKETS)
OUTBOX_PENDING = Gauge("xinyong_outbox_pending", "Events written but not yet relayed",
                       ["service"])
OUTBOX_OLDEST_AGE = Gauge("xinyong_outbox_oldest_age_seconds",
                          "Age of the oldest event not yet relayed (0 when none waits)",
                          ["service"])

# --- reachability and restarts (shared/probes.py, shared/service.py) ---------------------
DATABASE_UP = Gauge("xinyong_database_up",
                    "1 when the last probe of the service's own database answered", ["service"])
KAFKA_UP = Gauge("xinyong_kafka_up", "1 when the last probe of the Kafka cluster answered",
                 ["service"])
# Kept in the service's database (shared/migrations/020_service_starts.sql), so the count
# goes on across restarts: a crash loop shows as a rising counter even when no process lives
# long enough between two scrapes. `process_start_time_seconds` (prometheus_client's process
# collector) dates the current process.
SERVICE_STARTS = Counter("xinyong_service_starts",
                         "Times this service has started on its database, ever", ["service"])

# --- HTTP (shared/http.py::RequestMetrics) -----------------------------------------------
HTTP_REQUESTS = Counter("xinyong_http_requests_total", "HTTP requests answered",
                        ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("xinyong_http_request_seconds", "Time to answer an HTTP request",
                         ["service", "method", "route"],
                         buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))

# --- closed loops: objections and notices ------------------------------------------------
OBJECTIONS_OVERDUE = Gauge("xinyong_objections_overdue",
                           "Objections past their statutory deadline, still undecided",
                           ["service"])
OBJECTIONS_OPEN = Gauge("xinyong_objections_open",
                        "Objections and repair requests routed, not yet decided", ["service"])
NOTICES_AWAITING_FEEDBACK = Gauge(
    "xinyong_notices_awaiting_feedback",
    "Notices without `applied` or `not_applicable` feedback from their agency",
    ["service", "agency"])
NOTICES_OVERDUE = Gauge(
    "xinyong_notices_overdue",
    "Notices without `applied` or `not_applicable` feedback past their measure's deadline "
    "(`feedback_within` working days of the catalogue's measure)",
    ["service", "agency", "measure"])

# --- the working-day calendar (shared/clock.py) ------------------------------------------
CALENDAR_COVERED_UNTIL = Gauge(
    "xinyong_calendar_covered_until",
    "The last day (Unix time, midnight CST) the published holiday schedule covers: past it, "
    "working days are Monday to Friday and deadlines are provisional")
CALENDAR_PROVISIONAL = Counter(
    "xinyong_calendar_provisional_total",
    "Dates counted in working days past the published holiday schedule (provisional)")

# --- statistics and early warning (services/stats) ---------------------------------------
STATS_WINDOW_DRIFT = Gauge(
    "xinyong_stats_window_drift",
    "Closed early-warning windows: the sum of |count stats-windows reported - count of the "
    "window's deltas in SQL|, per rule", ["service", "measure"])
STATS_DELTAS = Counter("xinyong_stats_deltas_total",
                       "Deltas stats-windows added to its windows", ["service"])
STATS_WINDOWS_COMMITTED = Gauge(
    "xinyong_stats_windows_committed_offset",
    "The offset stats-windows last committed on each partition of credit.stats.deltas (a "
    "partition whose offset stands still while deltas arrive is counted again at the next "
    "rebalance)", ["service", "partition"])
STATS_WINDOWS_REREAD = Counter(
    "xinyong_stats_windows_reread_total",
    "Times stats-windows found a delta missing on its way to the agent and read the "
    "partition again from it", ["service", "partition"])
STATS_DELTAS_SKIPPED = Counter(
    "xinyong_stats_deltas_skipped_total",
    "Deltas older than stats-windows' horizon (its windows' `expires`), not counted",
    ["service"])

# --- the lifecycle of credit information (shared/sweeps.py, shared/purge.py) --------------
SWEEP_ITEMS = Counter(
    "xinyong_sweep_items_total",
    "Items the daily sweeps handled, by sweep and outcome (done, deferred, failed)",
    ["service", "sweep", "outcome"])
ERASED_DROPPED = Counter(
    "xinyong_erased_dropped_total",
    "Events about erased records (a replay, a redelivery) dropped against the erasure ledger",
    ["service"])
