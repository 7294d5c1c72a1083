"""Credentials of departments, agencies, subjects and operators (CONTRACT.md, "Connecting"
and "A subject's own access").

A bearer token is `xyt_<token id>.<secret>`. The operators' command line publishes the token's
id, party, expiry and the SHA-256 of its secret (never the secret) on `credit.credentials`, a
compacted topic kept for ever; every service keeps its own copy from that topic through a
consumer of its own (so a backlog of other work cannot delay a revocation, and a service
rebuilt from nothing learns every token). Only the operators' principal may write that
topic. The Kafka user of a credential is created and removed by the command line
(deploy/credentials.py); here is what the services need.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Header

from shared import clock, inbox
from shared.contract import CredentialChanged, PartyKind
from shared.http import Problem, bearer_token
from shared.messages import InboundMessage, OutboundEvent, read_event
from shared.settings import Settings
from shared.topics import CREDENTIALS

_PREFIX = "xyt_"


def secret_hash(secret: str) -> str:
    """How every secret a caller shows (bearer tokens, follow-up tokens) is kept: its SHA-256
    (the secrets are long random strings, so a plain hash is enough)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)


def subject_party(key_secret: str, subject_key: str) -> str:
    """A subject's party on credit.credentials: a keyed hash of its subject key, so the topic
    names no identity number (which a plain hash would not hide: they are guessable)."""
    return hmac.new(key_secret.encode(), subject_key.encode(), hashlib.sha256).hexdigest()


def subject_key_secret(settings: Settings) -> str:
    """The key of `subject_party`: the setting, or the local stack's secret file (made by the
    command line; a service never makes it). Empty when there is none: no subject's token
    can then be mapped to its archive."""
    if settings.subject_key_secret:
        return settings.subject_key_secret
    path = settings.secrets_dir / "subject-key.secret"
    return path.read_text().strip() if path.exists() else ""


def key_id(key_secret: str) -> str:
    """Names a subject key secret without revealing it (rows made with another are stale)."""
    return hashlib.sha256(b"subject-key|" + key_secret.encode()).hexdigest()[:16]


def new_token(party_kind: PartyKind, party: str, expires_at: datetime,
              kafka_user: str | None = None) -> tuple[str, CredentialChanged]:
    """(the token, shown once; the event that makes services accept it)."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    event = CredentialChanged(token_id=token_id, status="issued", party_kind=party_kind,
                              party=party, secret_hash=secret_hash(secret),
                              expires_at=expires_at, kafka_user=kafka_user, at=clock.now())
    return f"{_PREFIX}{token_id}.{secret}", event


def token_id_of(token: str) -> str:
    return token.removeprefix(_PREFIX).partition(".")[0]


def revocation(token_id: str, reason: str = "revoked") -> CredentialChanged:
    return CredentialChanged(token_id=token_id, status="revoked", reason=reason, at=clock.now())


def event_of(change: CredentialChanged) -> OutboundEvent:
    return OutboundEvent.of(CREDENTIALS, CREDENTIALS.writer, change.token_id, change)


async def apply(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
    """Keep this service's copy of the credentials; a revocation is never undone, and may
    come for a token never seen issued (the topic is compacted)."""
    changes = [read_event(m, CREDENTIALS) for m in messages]
    for event in await inbox.only_first_seen(conn, changes, lambda e: e):
        c = event.data
        if c.status == "issued":
            await conn.execute(
                "INSERT INTO credentials (token_id, party_kind, party, secret_hash, issued_at,"
                " expires_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_id) DO UPDATE"
                " SET party_kind = EXCLUDED.party_kind, party = EXCLUDED.party,"
                " secret_hash = EXCLUDED.secret_hash, issued_at = EXCLUDED.issued_at,"
                " expires_at = EXCLUDED.expires_at",
                c.token_id, c.party_kind, c.party, c.secret_hash, c.at, c.expires_at)
        else:
            await conn.execute(
                "INSERT INTO credentials (token_id, revoked_at) VALUES ($1, $2)"
                " ON CONFLICT (token_id) DO UPDATE"
                " SET revoked_at = COALESCE(credentials.revoked_at, EXCLUDED.revoked_at)",
                c.token_id, c.at)


@dataclass(frozen=True)
class Caller:
    """Who a request's bearer token names."""

    kind: PartyKind
    party: str


def caller(pool: asyncpg.Pool, *kinds: PartyKind) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency: the party a valid, live token of one of these kinds names; 401
    for a missing, unknown, revoked, expired or other-kind token."""

    async def authenticate(authorization: Annotated[str | None, Header()] = None) -> Caller:
        token = bearer_token(authorization)
        token_id, _, secret = token.removeprefix(_PREFIX).partition(".")
        row = None
        if token.startswith(_PREFIX) and secret and token_id.isalnum():
            async with pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT party_kind, party, secret_hash, revoked_at, expires_at"
                    " FROM credentials WHERE token_id = $1", token_id)
        if (row is None or row["revoked_at"] is not None or row["party_kind"] not in kinds
                or row["secret_hash"] is None
                or (row["expires_at"] is not None and row["expires_at"] <= clock.now())
                or not secret_matches(secret, row["secret_hash"])):
            wanted = " or ".join(kinds)
            raise Problem(401, "unauthenticated", f"A valid {wanted} bearer token is required",
                          headers={"WWW-Authenticate": "Bearer"})
        return Caller(row["party_kind"], str(row["party"]))

    return authenticate


def bearer(pool: asyncpg.Pool, party_kind: PartyKind) -> Callable[..., Awaitable[str]]:
    """A FastAPI dependency: the code of the one kind of party the token must name."""
    authenticate = caller(pool, party_kind)

    async def party(authorization: Annotated[str | None, Header()] = None) -> str:
        return (await authenticate(authorization)).party

    return party
