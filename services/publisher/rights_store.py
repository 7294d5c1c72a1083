"""The publisher's tables for the subject's rights: token parties, contacts, the query log,
notifications with their delivery log, and the subject's requests (migration 080)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from shared import clock
from shared.contract import RequestChanged, SubjectNotified
from shared.db import Json

# --- parties (who a subject's token names) -------------------------------------------------


async def save_parties(conn: asyncpg.Connection, rows: Sequence[tuple[str, str]],
                       key_id: str) -> None:
    """(party, subject key) pairs; a party made with another key is made again."""
    if rows:
        await conn.execute(
            "INSERT INTO subject_parties (party, subject_key, key_id)"
            " SELECT p, k, $3 FROM unnest($1::text[], $2::text[]) AS u(p, k)"
            " ON CONFLICT (party) DO UPDATE SET subject_key = EXCLUDED.subject_key,"
            " key_id = EXCLUDED.key_id WHERE subject_parties.key_id <> EXCLUDED.key_id",
            [r[0] for r in rows], [r[1] for r in rows], key_id)


async def subjects_without_party(conn: asyncpg.Connection, key_id: str,
                                 limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT s.subject_key FROM subjects s WHERE NOT EXISTS (SELECT 1 FROM subject_parties p"
        " WHERE p.subject_key = s.subject_key AND p.key_id = $1) LIMIT $2", key_id, limit)
    return [r["subject_key"] for r in rows]


async def forget_other_keys(conn: asyncpg.Connection, key_id: str) -> int:
    status = await conn.execute("DELETE FROM subject_parties WHERE key_id <> $1", key_id)
    return int(status.split()[-1])


async def subject_of_party(conn: asyncpg.Connection, party: str) -> str | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT subject_key FROM subject_parties WHERE party = $1", party)


# --- contacts ----------------------------------------------------------------------------


async def set_contact(conn: asyncpg.Connection, party: str, subject_key: str | None,
                      contact: str) -> None:
    await conn.execute(
        "INSERT INTO subject_contacts (party, subject_key, contact, set_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (party) DO UPDATE SET"
        " subject_key = EXCLUDED.subject_key, contact = EXCLUDED.contact,"
        " set_at = EXCLUDED.set_at", party, subject_key, contact, clock.now())


async def remove_contact(conn: asyncpg.Connection, party: str) -> bool:
    return bool(await conn.fetchval(
        "DELETE FROM subject_contacts WHERE party = $1 RETURNING true", party))


async def own_contact(conn: asyncpg.Connection, party: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT contact, set_at FROM subject_contacts WHERE party = $1", party)


async def contact_of_subject(conn: asyncpg.Connection, subject_key: str) -> str | None:
    """The contact the subject set itself (through any of its tokens), the latest."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT c.contact FROM subject_contacts c WHERE c.subject_key = $1"
        " OR c.party IN (SELECT party FROM subject_parties WHERE subject_key = $1)"
        " ORDER BY c.set_at DESC LIMIT 1", subject_key)


# --- the query log -------------------------------------------------------------------------


async def log_view(conn: asyncpg.Connection, subject_key: str, at: datetime, channel: str,
                   purpose: str | None, address: str | None) -> None:
    await conn.execute(
        "INSERT INTO query_log (subject_key, at, channel, purpose, address)"
        " VALUES ($1, $2, $3, $4, $5)", subject_key, at, channel, purpose, address)


async def views(conn: asyncpg.Connection, subject_key: str, before_id: int | None,
                limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT id, at, channel, purpose, address FROM query_log WHERE subject_key = $1"
        " AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        subject_key, before_id, limit)


# --- notifications -------------------------------------------------------------------------


async def create_notifications(conn: asyncpg.Connection,
                               rows: Sequence[tuple[str, str, str, str]]) -> None:
    """(notification id, entry id, subject key, list): to deliver at once."""
    if rows:
        await conn.execute(
            "INSERT INTO notifications (notification_id, entry_id, subject_key, list, status,"
            " created_at, next_attempt_at) SELECT n, e, s, l, 'to_deliver', $5, $5"
            " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS r(n, e, s, l)"
            " ON CONFLICT (notification_id) DO NOTHING",
            *(list(column) for column in zip(*rows, strict=True)), clock.now())


async def cancel_notifications(conn: asyncpg.Connection, entry_ids: Sequence[str]) -> None:
    """An entry cancelled before its notification was made: nothing more to deliver."""
    if entry_ids:
        await conn.execute(
            "UPDATE notifications SET status = 'cancelled', next_attempt_at = NULL"
            " WHERE entry_id = ANY($1::uuid[]) AND status = 'to_deliver'", list(entry_ids))


async def lock_due_notifications(conn: asyncpg.Connection, now: datetime,
                                 limit: int = 100) -> list[asyncpg.Record]:
    """Due notifications with their entries, both locked; one whose notification or entry a
    stream batch holds is left for the next round. The batch locks an entry and then its
    notifications; locking only the notification here and the entry later (mark_notified)
    took them in the other order, and PostgreSQL broke the deadlocks by aborting one side,
    often a whole batch (seen in its log under `bench generate`)."""
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT n.notification_id::text, n.entry_id::text, n.subject_key, n.list, n.attempts,"
        " n.created_at, e.basis, e.status AS entry_status FROM notifications n"
        " JOIN list_entries e USING (entry_id)"
        " WHERE n.status = 'to_deliver' AND n.next_attempt_at <= $1"
        " ORDER BY n.next_attempt_at LIMIT $2 FOR UPDATE OF n, e SKIP LOCKED", now, limit)


async def log_delivery(conn: asyncpg.Connection, notification_id: str, subject_key: str,
                       channel: str | None, contact_masked: str | None, outcome: str,
                       error: str | None) -> None:
    await conn.execute(
        "INSERT INTO notification_deliveries (notification_id, subject_key, at, channel,"
        " contact_masked, outcome, error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        notification_id, subject_key, clock.now(), channel, contact_masked, outcome, error)


async def retry_later(conn: asyncpg.Connection, notification_id: str,
                      next_attempt_at: datetime) -> None:
    await conn.execute(
        "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $2"
        " WHERE notification_id = $1::uuid", notification_id, next_attempt_at)


async def mark_notified(conn: asyncpg.Connection, notified: SubjectNotified,
                        publish_at: datetime) -> None:
    """The notification is made: the notice period runs from now, and the entry waits for
    its publication date."""
    status = "delivered" if notified.channel == "contact" else "announced"
    await conn.execute(
        "UPDATE notifications SET status = $2, attempts = attempts + 1, next_attempt_at = NULL,"
        " notified_at = $3, channel = $4, planned_publication = $5, object_by = $6, body = $7"
        " WHERE notification_id = $1::uuid",
        notified.notification_id, status, notified.notified_at, notified.channel,
        notified.planned_publication, notified.object_by, Json(notified.model_dump_json()))
    await conn.execute(
        "UPDATE list_entries SET publish_at = $2, updated_at = now()"
        " WHERE entry_id = $1::uuid AND status = 'pending'", notified.entry_id, publish_at)


async def announcements(conn: asyncpg.Connection, list_name: str | None, today_start: datetime,
                        limit: int, offset: int) -> list[asyncpg.Record]:
    """Notifications made by public announcement whose entry still waits for publication."""
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT n.body FROM notifications n JOIN list_entries e USING (entry_id)"
        " WHERE n.status = 'announced' AND e.status = 'pending'"
        " AND ($1::text IS NULL OR n.list = $1) ORDER BY n.notified_at DESC, n.notification_id"
        " LIMIT $2 OFFSET $3", list_name, limit, offset)


async def notifications_of(conn: asyncpg.Connection, subject_key: str,
                           notification_id: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT notification_id::text, entry_id::text, list, status, created_at, attempts,"
        " notified_at, channel, planned_publication, object_by FROM notifications"
        " WHERE subject_key = $1 AND ($2::uuid IS NULL OR notification_id = $2::uuid)"
        " ORDER BY created_at", subject_key, notification_id)
    out = [dict(r) for r in rows]
    if out:
        deliveries = await conn.fetch(
            "SELECT notification_id::text, at, channel, contact_masked, outcome, error"
            " FROM notification_deliveries WHERE notification_id = ANY($1::uuid[]) ORDER BY id",
            [r["notification_id"] for r in out])
        for n in out:
            n["deliveries"] = [{k: v for k, v in dict(d).items() if k != "notification_id"}
                               for d in deliveries
                               if d["notification_id"] == n["notification_id"]]
    return out


async def set_holds(conn: asyncpg.Connection, held: Sequence[str],
                    released: Sequence[str]) -> None:
    """Pending entries whose basis is disputed are held; others released."""
    if held:
        await conn.execute("UPDATE list_entries SET held = true WHERE entry_id = ANY($1::uuid[])"
                           " AND status = 'pending' AND NOT held", list(held))
    if released:
        await conn.execute("UPDATE list_entries SET held = false WHERE entry_id = ANY($1::uuid[])"
                           " AND held", list(released))


async def release_holds(conn: asyncpg.Connection, subject_keys: Sequence[str]) -> None:
    await conn.execute("UPDATE list_entries SET held = false WHERE subject_key = ANY($1::text[])"
                       " AND held", list(subject_keys))


async def entries_of(conn: asyncpg.Connection, subject_key: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT entry_id::text, list, status, basis, publish_at, since, until, exit_reason, held"
        " FROM list_entries WHERE subject_key = $1 ORDER BY created_at", subject_key)
    return [dict(r) for r in rows]


# --- the subject's requests (credit.requests.changed) --------------------------------------


async def save_requests(conn: asyncpg.Connection, requests: Sequence[RequestChanged]) -> None:
    latest: dict[str, RequestChanged] = {}
    for r in requests:
        if r.request_id not in latest or latest[r.request_id].version < r.version:
            latest[r.request_id] = r
    if latest:
        rows = latest.values()
        await conn.execute(
            "INSERT INTO subject_requests (request_id, subject_key, kind, version, body)"
            " SELECT i, s, k, v, b::json"
            " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[])"
            "  AS r(i, s, k, v, b)"
            " ON CONFLICT (request_id) DO UPDATE SET"
            " subject_key = EXCLUDED.subject_key, version = EXCLUDED.version,"
            " body = EXCLUDED.body, updated_at = now()"
            " WHERE subject_requests.version < EXCLUDED.version",
            [r.request_id for r in rows], [r.subject.key for r in rows],
            [r.kind for r in rows], [r.version for r in rows],
            [r.model_dump_json() for r in rows])


async def requests_of(conn: asyncpg.Connection, subject_key: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT body FROM subject_requests WHERE subject_key = $1 ORDER BY updated_at",
        subject_key)
    return [r["body"] for r in rows]
