"""Bearer credentials of departments and agencies (CONTRACT.md: "a bearer token that an
operator issues and can revoke").

A token is `xyt_<token id>.<secret>`. The operator's command line publishes the token's id,
party and the SHA-256 of its secret (never the secret) on `credit.credentials`; every
service that authenticates a kind of party keeps its own copy from that topic, so a
revocation reaches all of them within a batch. In production only the operators' principal
may write to that topic.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import asyncpg
from fastapi import Header

from shared import clock, inbox
from shared.contract import CredentialChanged, PartyKind
from shared.http import Problem, bearer_token
from shared.messages import InboundMessage, OutboundEvent, read_event
from shared.topics import CREDENTIALS

_PREFIX = "xyt_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(party_kind: PartyKind, party: str) -> tuple[str, CredentialChanged]:
    """(the token, shown once; the event that makes services accept it)."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    event = CredentialChanged(token_id=token_id, status="issued", party_kind=party_kind,
                              party=party, secret_hash=_hash(secret), at=clock.now())
    return f"{_PREFIX}{token_id}.{secret}", event


def revocation(token_id: str) -> CredentialChanged:
    return CredentialChanged(token_id=token_id, status="revoked", at=clock.now())


def event_of(change: CredentialChanged) -> OutboundEvent:
    return OutboundEvent.of(CREDENTIALS, "xinyong/operator", change.token_id, change)


async def apply(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
    """Keep this service's copy of the credentials; a revocation is never undone."""
    changes = [read_event(m, CREDENTIALS) for m in messages]
    for event in await inbox.only_first_seen(conn, changes, lambda e: e):
        c = event.data
        if c.status == "issued":
            await conn.execute(
                "INSERT INTO credentials (token_id, party_kind, party, secret_hash, issued_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_id) DO NOTHING",
                c.token_id, c.party_kind, c.party, c.secret_hash, c.at)
        else:
            await conn.execute(
                "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $2)"
                " WHERE token_id = $1", c.token_id, c.at)


def bearer(pool: asyncpg.Pool,
           party_kind: PartyKind) -> Callable[..., Awaitable[str]]:
    """A FastAPI dependency: the department or agency code the request's token names."""

    async def authenticate(
            authorization: Annotated[str | None, Header()] = None) -> str:
        token = bearer_token(authorization)
        token_id, _, secret = token.removeprefix(_PREFIX).partition(".")
        row = None
        if token.startswith(_PREFIX) and secret:
            async with pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT party_kind, party, secret_hash, revoked_at FROM credentials"
                    " WHERE token_id = $1", token_id)
        if (row is None or row["revoked_at"] is not None or row["party_kind"] != party_kind
                or not hmac.compare_digest(_hash(secret), row["secret_hash"])):
            raise Problem(401, "unauthenticated",
                          f"A valid {party_kind} bearer token is required",
                          headers={"WWW-Authenticate": "Bearer"})
        return str(row["party"])

    return authenticate
