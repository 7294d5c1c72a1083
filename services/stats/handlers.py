"""The stats service's stream handler: facts from every stage, idempotent; the deltas the
early warning counts, through the outbox; and the sink of the early warning's windows and
warnings. Plus the reconciler that checks closed windows against SQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from services.stats import domain, store
from services.stats.domain import Counted
from shared import clock, metrics, outbox
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import (
    AcceptedRecord,
    ListChanged,
    ObjectionClosed,
    ObjectionRouted,
    RecordFeedback,
    StatsWarning,
    StatsWindow,
)
from shared.db import TRANSIENT
from shared.messages import InboundMessage, OutboundEvent, event_type_of, read_event
from shared.topics import (
    COMPLAINTS,
    FEEDBACK,
    LISTS_CHANGED,
    OBJECTIONS,
    OBJECTIONS_CLOSED,
    RECORDS_ACCEPTED,
    STATS_DELTAS,
    STATS_WARNINGS,
    STATS_WINDOWS,
)
from shared.worker import BatchHandler

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 60.0


def make_handler(ctx: ServiceContext) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        await apply(conn, ctx.catalogue, messages)

    return handle


async def apply(conn: asyncpg.Connection, catalogue: Catalogue,
                messages: Sequence[InboundMessage]) -> None:
    feedback: list[tuple[str, str, RecordFeedback, object]] = []
    records: list[tuple[str, AcceptedRecord]] = []
    changes: list[tuple[str, str, ListChanged]] = []
    routed: list[ObjectionRouted] = []
    closed: list[ObjectionClosed] = []
    windows: list[StatsWindow] = []
    warnings: list[StatsWarning] = []
    dead: list[OutboundEvent] = []
    # A window's snapshot that a later one of the same window follows in the batch is not
    # read: credit.stats.windows is compacted (the latest value per key wins) and each delta
    # sends a snapshot of every window it falls in, so most are overwritten at once.
    latest: dict[tuple[int, bytes | None], int] = {
        (m.partition, m.raw_key): i for i, m in enumerate(messages)
        if m.topic == STATS_WINDOWS.name and m.raw_key is not None}
    for i, m in enumerate(messages):
        if m.topic == STATS_WINDOWS.name and latest.get((m.partition, m.raw_key), i) != i:
            continue
        try:
            department = FEEDBACK.code_of(m.topic)
            routed_to = OBJECTIONS.code_of(m.topic)
            if m.topic == RECORDS_ACCEPTED.name:
                e = read_event(m, RECORDS_ACCEPTED)
                records.append((e.id, e.data))
            elif m.topic == LISTS_CHANGED.name:
                c = read_event(m, LISTS_CHANGED)
                lst = catalogue.lists.get(c.data.list)
                changes.append((c.id, lst.kind if lst else "unknown", c.data))
            elif m.topic == OBJECTIONS_CLOSED.name:
                closed.append(read_event(m, OBJECTIONS_CLOSED).data)
            elif m.topic == STATS_WINDOWS.name:
                windows.append(read_event(m, STATS_WINDOWS).data)
            elif m.topic == STATS_WARNINGS.name:
                warnings.append(read_event(m, STATS_WARNINGS).data)
            elif department is not None:
                f = read_event(m, FEEDBACK.of(department))
                at = f.time or clock.now()
                feedback.append((f.id, department, f.data, at))
            elif routed_to is not None:
                try:
                    routed.append(read_event(m, OBJECTIONS.of(routed_to)).data)
                except ValueError:
                    # Complaints share the departments' objections topics (CONTRACT.md) and
                    # are not the statistics' business; neither is what they say. Only what
                    # fails as an objection is read again for its type.
                    if event_type_of(m) != COMPLAINTS.event_type:
                        raise
            else:
                raise ValueError(f"no handler for {m.topic}")
        except ValueError as exc:
            dead.append(outbox.dead_letter("stats", m, f"unreadable event: {exc}"))
    await store.save_feedback(conn, feedback)  # type: ignore[arg-type]
    fresh = await store.save_records(conn, records)
    await count_for_warnings(conn, catalogue, fresh)
    await store.save_list_changes(conn, changes)
    await store.save_objections(conn, routed)
    await store.save_closed(conn, closed)
    await store.save_windows(conn, windows)
    await store.save_warnings(conn, warnings)
    await outbox.enqueue(conn, dead)


async def count_for_warnings(conn: asyncpg.Connection, catalogue: Catalogue,
                             accepted: Sequence[AcceptedRecord]) -> None:
    """SQL decides what counts: each new revision moves its record's place in the early
    warning's counts, and the difference goes to credit.stats.deltas (faust sums)."""
    if not accepted or not catalogue.early_warnings:
        return
    ordered = sorted(accepted, key=lambda a: (a.department, a.submission.record_id,
                                              a.submission.revision))
    counted = await store.lock_counted(conn, sorted({(a.department, a.submission.record_id)
                                                     for a in ordered}))
    deltas = []
    moved: dict[tuple[str, str], dict[str, Counted]] = {}
    for a in ordered:
        key = (a.department, a.submission.record_id)
        before = counted.get(key, {})
        if any(c.revision > a.submission.revision for c in before.values()):
            continue  # a later revision already decided
        after = domain.counts_for(catalogue, a)
        deltas += domain.warning_deltas(a.department, a.submission.record_id,
                                        a.submission.revision, before, after)
        counted[key] = after
        if before or after:  # a record that never counted has no rows to replace
            moved[key] = after
    # The last revision of each record in the batch decides its rows: written once.
    await store.set_counted(conn, moved)
    # Each case's +1 or -1 is stored once (its own fact id: a batch delivered again adds
    # nothing); stats-windows gets their sums per district, rule and day, in the same
    # transaction.
    fresh = await store.save_deltas(conn, deltas)
    await outbox.enqueue(conn, [OutboundEvent.of(STATS_DELTAS, domain.SOURCE, d.district, d,
                                                 event_id=d.fact_id)
                                for d in domain.batch_deltas(fresh)])


async def reconciler(ctx: ServiceContext) -> None:
    """Every minute: closed windows recomputed in SQL from the deltas, against the counts
    stats-windows reported (`xinyong_stats_window_drift`; a double count after a crash of
    the worker shows here, the official figures are the SQL ones)."""
    shape = domain.window_shape(ctx.catalogue)
    while True:
        try:
            if shape is not None:
                async with ctx.pool.acquire() as conn:
                    drift = await store.window_drift(
                        conn, clock.now(), clock.now() - domain.EXPIRES - shape[0])
                for rule in ctx.catalogue.early_warnings:
                    metrics.STATS_WINDOW_DRIFT.labels(ctx.name, rule).set(drift.get(rule, 0))
        except TRANSIENT as exc:
            log.warning("reconciler: database unavailable (%s)", exc)
        await asyncio.sleep(RECONCILE_SECONDS)
