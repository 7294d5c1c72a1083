"""Timers of a service that runs in several processes (`up --replicas 2`, two pods): each
takes the rows it acts on `FOR UPDATE SKIP LOCKED`, or updates only rows not yet marked,
so two processes running the same timer at the same moment never act on one row twice.
Two connections play the two processes, on committed rows (removed after)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta

import asyncpg
import pytest

from services.objection import store as objection_store
from services.publisher import store as publisher_store
from shared import clock

pytestmark = pytest.mark.db


async def test_two_list_timers_never_take_the_same_entry(
        pools: dict[str, asyncpg.Pool]) -> None:
    pool = pools["publisher"]
    keys = [f"enterprise:TIMERS{uuid.uuid4().hex[:10].upper()}" for _ in range(6)]
    async with pool.acquire() as conn:
        for key in keys:
            await conn.execute(
                "INSERT INTO subjects (subject_key, type, id, version, snapshot, discoverable)"
                " VALUES ($1, 'enterprise', $2, 1, '{}', true)", key, key.split(":")[1])
            await conn.execute(
                "INSERT INTO list_entries (entry_id, list, subject_key, status, basis,"
                " publish_at) VALUES ($1, 'amr.abnormal_operation', $2, 'pending', $3,"
                " now() - interval '1 hour')", uuid.uuid4(), key, [])
    first, second = await pool.acquire(), await pool.acquire()
    a, b = first.transaction(), second.transaction()
    try:
        await a.start()
        await b.start()
        # Without SKIP LOCKED the second would wait for the first: it would fail here.
        await second.execute("SET LOCAL lock_timeout = '2s'")
        due_a, _ = await publisher_store.lock_due_entries(first, clock.now(), clock.today())
        due_b, _ = await publisher_store.lock_due_entries(second, clock.now(), clock.today())
        assert {e.subject_key for e in due_a} & set(keys) == set(keys), \
            "the first timer takes every due entry"
        assert not {e.subject_key for e in due_b} & set(keys), \
            "the second skips what the first holds"
        await a.rollback()  # nothing carried out: the entries stay due
        await b.rollback()
    finally:
        await pool.release(first)
        await pool.release(second)
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM list_entries WHERE subject_key = ANY($1)", keys)
            await conn.execute("DELETE FROM subjects WHERE subject_key = ANY($1)", keys)


async def test_two_deadline_timers_mark_an_objection_overdue_once(
        pools: dict[str, asyncpg.Pool]) -> None:
    pool = pools["objection"]
    async with pool.acquire() as conn:
        columns = {r["column_name"]: r for r in await conn.fetch(
            "SELECT column_name, is_nullable, column_default, data_type"
            " FROM information_schema.columns WHERE table_name = 'objections'")}
    required = [c for c, r in columns.items()
                if r["is_nullable"] == "NO" and r["column_default"] is None]
    objection_id = uuid.uuid4()
    values: dict[str, object] = {"objection_id": objection_id, "status": "routed",
                                 "due_by": date.today() - timedelta(days=1)}
    for column in required:
        if column in values:
            continue
        kind = columns[column]["data_type"]
        values[column] = {"uuid": uuid.uuid4(), "date": date.today(), "integer": 1,
                          "bigint": 1, "boolean": False, "jsonb": "{}", "json": "{}",
                          "timestamp with time zone": clock.now()}.get(kind, "timers-test")
    if "kind" in values:
        values["kind"] = "objection"
    names = list(values)
    async with pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO objections ({', '.join(names)}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(names)))})", *values.values())
    first, second = await pool.acquire(), await pool.acquire()
    try:
        a = first.transaction()
        await a.start()
        marked_a = await objection_store.mark_overdue(first, date.today())
        # The second process's timer waits on the row the first holds ...
        b = second.transaction()
        await b.start()
        waiting = asyncio.create_task(objection_store.mark_overdue(second, date.today()))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await a.commit()
        # ... and, once the first commits, finds it marked already.
        marked_b = await asyncio.wait_for(waiting, 10)
        await b.commit()
        assert str(objection_id) in marked_a and str(objection_id) not in marked_b
        async with pool.acquire() as conn:
            overdue = await conn.fetchval(
                "SELECT count(*) FROM objection_events WHERE objection_id = $1"
                " AND status = 'overdue'", objection_id)
        assert overdue == 1
    finally:
        await pool.release(first)
        await pool.release(second)
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM objection_events WHERE objection_id = $1",
                               objection_id)
            await conn.execute("DELETE FROM objections WHERE objection_id = $1", objection_id)
