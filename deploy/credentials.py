"""Issuing, revoking and expiring credentials: the operators' side (CONTRACT.md,
"Connecting").

A credential is one bearer token for HTTP and, for departments, agencies and operators, one
Kafka user of its own with its party's ACLs, so that two credentials of one party can
overlap while it rotates them. `credit.credentials` (compacted, kept for ever) is the record
of every credential: this module reads it back for `list`, `revoke` and the expiry sweep.

Order matters for a revocation: the Kafka user's ACLs and the user go first, confirmed by the
broker (an open connection loses access at its next request), then the token's revocation is
published (services refuse it within a batch of their credentials consumer).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy import secrets
from deploy.kafka_admin import KafkaAdmin
from shared import clock, credentials
from shared.access import Principal, username
from shared.contract import CredentialChanged, PartyKind
from shared.envelope import typed
from shared.kafka import client_options, make_producer
from shared.settings import Settings
from shared.topics import CREDENTIALS

log = logging.getLogger(__name__)

KAFKA_KINDS: tuple[PartyKind, ...] = ("department", "agency", "operator")


@dataclass(frozen=True)
class Issued:
    credential_id: str
    token: str
    kind: PartyKind
    party: str
    expires_at: datetime
    kafka_user: str | None = None
    kafka_password: str | None = None

    def env_lines(self) -> list[str]:
        """Exactly CONTRACT.md's lines, the Kafka ones only where they apply."""
        lines = [f"XINYONG_TOKEN={self.token}"]
        if self.kafka_user:
            lines += [f"KAFKA_SASL_USERNAME={self.kafka_user}",
                      f"KAFKA_SASL_PASSWORD={self.kafka_password}"]
        return [*lines, f"CREDENTIAL_ID={self.credential_id}"]


@dataclass(frozen=True)
class Credential:
    """What credit.credentials says of one credential."""

    issued: CredentialChanged | None
    revoked: CredentialChanged | None

    @property
    def token_id(self) -> str:
        return (self.issued or self.revoked).token_id  # type: ignore[union-attr]

    def live(self, now: datetime) -> bool:
        return (self.issued is not None and self.revoked is None
                and (self.issued.expires_at is None or self.issued.expires_at > now))


def admin(settings: Settings) -> KafkaAdmin:
    return KafkaAdmin(settings, settings.kafka_admin_username, secrets.admin_password(settings))


def default_lifetime(settings: Settings, kind: PartyKind) -> timedelta:
    return timedelta(days=int(getattr(settings, f"credential_days_{kind}")))


async def issue(settings: Settings, kind: PartyKind, party: str,
                lifetime: timedelta | None = None) -> Issued:
    """A new credential; `party` is a department or agency code, a subject key
    (`<type>:<id>`), or the operator's name."""
    expires_at = clock.now() + (lifetime or default_lifetime(settings, kind))
    topic_party = (credentials.subject_party(secrets.subject_key_secret(settings), party)
                   if kind == "subject" else party)
    token, change = credentials.new_token(kind, topic_party, expires_at)
    kafka_user = kafka_password = None
    if kind in KAFKA_KINDS:
        kafka_user = username(kind, party if kind != "operator" else "", settings.topic_namespace,
                              change.token_id)
        kafka_password = secrets.new_password()
        principal = Principal(kind, party, kafka_user)  # type: ignore[arg-type]
        await asyncio.to_thread(admin(settings).create_principal, principal, kafka_password)
        change = change.model_copy(update={"kafka_user": kafka_user})
    await _publish(settings, change)
    return Issued(change.token_id, token, kind, party, expires_at, kafka_user, kafka_password)


async def revoke(settings: Settings, token_id: str, reason: str = "revoked") -> Credential:
    """Revoke a credential: its Kafka user and ACLs removed (the broker confirms), then its
    token. Raises LookupError for a credential never issued."""
    found = (await read_all(settings)).get(token_id)
    if found is None or found.issued is None:
        raise LookupError(f"no credential {token_id}")
    if found.issued.kafka_user:
        await asyncio.to_thread(admin(settings).remove_principal, found.issued.kafka_user)
    if found.revoked is None:
        await _publish(settings, credentials.revocation(token_id, reason))
    return found


async def sweep(settings: Settings) -> list[str]:
    """The expiry job: every credential past its `expires_at` is revoked like any other
    (reason `expired`), and a Kafka user left behind by an interrupted revocation is
    removed. Returns the ids revoked now. Idempotent; run by `xinyong up` in the background
    (deploy/stack.py) and, in production, by a timer (docs/decisions.md)."""
    now = clock.now()
    known = await read_all(settings)
    users = await asyncio.to_thread(admin(settings).users)
    done = []
    for c in known.values():
        if c.issued is None:
            continue
        if c.revoked is None and not c.live(now):
            await revoke(settings, c.token_id, "expired")
            done.append(c.token_id)
        elif c.revoked is not None and c.issued.kafka_user in users:
            await asyncio.to_thread(admin(settings).remove_principal, c.issued.kafka_user)
    return done


async def read_all(settings: Settings) -> dict[str, Credential]:
    """Every credential on credit.credentials, read from its beginning to its end."""
    consumer = AIOKafkaConsumer(**client_options(settings, settings.kafka_admin_username,
                                                 secrets.admin_password(settings)),
                                enable_auto_commit=False)
    await consumer.start()
    found: dict[str, Credential] = {}
    try:
        tp = TopicPartition(settings.topic(CREDENTIALS.name), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=1000)).values():
                for r in records:
                    if r.value is None:
                        continue
                    change = _change_of(r.value)
                    if change is None:
                        continue
                    before = found.get(change.token_id, Credential(None, None))
                    found[change.token_id] = (
                        Credential(change, before.revoked) if change.status == "issued"
                        else Credential(before.issued, before.revoked or change))
    finally:
        await consumer.stop()
    return found


def _change_of(value: bytes) -> CredentialChanged | None:
    try:
        event = typed(CredentialChanged).model_validate_json(value)
    except ValueError:
        log.warning("unreadable event on %s", CREDENTIALS.name)
        return None
    return event.data if event.source == CREDENTIALS.writer else None


async def _publish(settings: Settings, change: CredentialChanged) -> None:
    event = credentials.event_of(change)
    producer = make_producer(settings, username=settings.kafka_admin_username,
                             password=secrets.admin_password(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(event.topic), event.value,
                                     key=event.key.encode() if event.key else None)
    finally:
        await producer.stop()
