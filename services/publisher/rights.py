"""The subject's rights on the publisher's side (信用信息主体的权益保护): telling a subject
before it is listed (国办发〔2020〕49号; 征信业管理条例 art. 15), the subject's own view of its
archive (征信业管理条例 art. 17), and the log of who looked at its public profile. Pure
functions, kept beside `domain.py` (the lists and the public site)."""

from __future__ import annotations

import base64
import ipaddress
import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from shared import clock, disclosure
from shared.catalogue import Catalogue, ListType
from shared.contract import (
    ArchivedRecord,
    BasisRecord,
    NotifiedReason,
    SubjectChanged,
    SubjectNotified,
)
from shared.identifiers import mask_resident_id, uuid5_text

_NS = uuid.UUID("7b1e0f3c-54a2-4d6e-9a41-0c2f8e5d7a19")

# --- telling the subject before it is listed ----------------------------------------------

# Where the notice period's fallback comes from: a subject that cannot be reached is told by
# public announcement, as a decision that cannot be served otherwise is served by
# announcement (公告送达: 《中华人民共和国民事诉讼法》第九十五条; 《税收征收管理法实施细则》
# 第一百零六条). docs/decisions.md, "The subject is told before listing".
ANNOUNCEMENT_BASIS = ("国办发〔2020〕49号：认定失信主体前应告知当事人；无法直接告知的，"
                      "参照公告送达（民事诉讼法第九十五条、税收征收管理法实施细则第一百零六条）公告告知")


def notification_id_for(entry_id: str) -> str:
    """One notification per entry: a replay finds the same."""
    return uuid5_text(_NS, f"notification|{entry_id}")


def notified_by_xinyong(catalogue: Catalogue, list_name: str) -> bool:
    return catalogue.lists[list_name].notified_by == "xinyong"


def served_on(records: Iterable[ArchivedRecord], basis: Sequence[BasisRecord]) -> date | None:
    """The day the deciding department served its decision (`attributes.served_on`), the
    latest of the basis records'; a record without one counts as served on its decision
    date (docs/decisions.md)."""
    wanted = {(b.department, b.record_id) for b in basis}
    found = []
    for r in records:
        if (r.department, r.record_id) not in wanted:
            continue
        raw = r.attributes.get("served_on")
        try:
            found.append(date.fromisoformat(raw) if isinstance(raw, str) else r.decided_on)
        except ValueError:
            found.append(r.decided_on)
    return max(found, default=None)


def first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def planned_publication(lst: ListType, notified_at: datetime,
                        service: date | None) -> tuple[datetime, date]:
    """(when the entry is published, the last day to object): the notice period (公示期)
    runs from the notification; 重大税收违法失信主体 are published no earlier than the month
    after the decision was served (国家税务总局令第54号)."""
    publish_at = notified_at + timedelta(days=lst.notice_period_days)
    object_by = publish_at.astimezone(clock.ZHUHAI).date()
    if lst.publish_month_after_service and service is not None:
        month = datetime.combine(first_of_next_month(service), time(), clock.ZHUHAI)
        publish_at = max(publish_at, month)
    return publish_at, object_by


def reasons(catalogue: Catalogue, snapshot: SubjectChanged,
            basis: Sequence[BasisRecord]) -> list[NotifiedReason]:
    wanted = {(b.department, b.record_id) for b in basis}
    return [NotifiedReason(department=r.department, record_id=r.record_id, revision=r.revision,
                           catalogue_item=r.catalogue_item,
                           item_name=catalogue.items[r.catalogue_item].name,
                           document_no=r.document_no, decided_on=r.decided_on)
            for r in snapshot.records if (r.department, r.record_id) in wanted]


def notified(catalogue: Catalogue, notification_id: str, entry_id: str, list_name: str,
             snapshot: SubjectChanged, basis: Sequence[BasisRecord],
             channel: Literal["contact", "announcement"], notified_at: datetime,
             objection_url: str) -> tuple[SubjectNotified, datetime]:
    """The notification as made now, and when the entry is then published."""
    lst = catalogue.lists[list_name]
    publish_at, object_by = planned_publication(
        lst, notified_at, served_on(snapshot.records, basis))
    return SubjectNotified(
        notification_id=notification_id, entry_id=entry_id, list=list_name, list_name=lst.name,
        subject=snapshot.subject, reasons=reasons(catalogue, snapshot, basis), channel=channel,
        notified_at=notified_at,
        planned_publication=publish_at.astimezone(clock.ZHUHAI).date(), object_by=object_by,
        how_to_object=f"{objection_url}/objections/new", basis=lst.basis), publish_at


def message_text(n: SubjectNotified) -> str:
    """What the subject reads (zh-CN)."""
    lines = [f"{n.subject.name or ''}：",
             f"根据{n.basis}，您（{n.subject.type}:{mask(n.subject.type, n.subject.id)}）"
             f"拟被列入“{n.list_name}”，计划于{n.planned_publication}起公开。列入依据："]
    lines += [f"  {r.item_name}（{r.department} {r.record_id}，{r.document_no or '无文号'}，"
              f"{r.decided_on}）" for r in n.reasons]
    lines.append(f"如有异议，请于{n.object_by}前通过 {n.how_to_object} 提出；"
                 "异议处理期间暂缓公开。通知编号：" + n.notification_id)
    return "\n".join(lines)


_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{5,22}[0-9]$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def channel_of(contact: str) -> Literal["sms", "email"] | None:
    """How a contact is reached: a phone number by SMS, an address by e-mail; None when it is
    neither (a delivery to it fails)."""
    text = contact.strip()
    if _EMAIL.match(text):
        return "email"
    if _PHONE.match(text) and sum(ch.isdigit() for ch in text) >= 7:
        return "sms"
    return None


def mask_contact(contact: str) -> str:
    """A contact as logs and answers show it: enough to recognize, not to use."""
    text = contact.strip()
    if "@" in text:
        local, _, host = text.partition("@")
        return f"{local[:1]}***@{host}"
    return text[:3] + "****" + text[-2:] if len(text) > 6 else "****"


def delivery_backoff(attempts: int) -> timedelta:
    """After the n-th failed attempt: 1, 5, 30 minutes, then every hour."""
    return timedelta(minutes=(1, 5, 30)[attempts - 1] if attempts <= 3 else 60)


# --- the log of public views (/api/v1/me/queries) ---------------------------------------------

Channel = Literal["web", "api", "report"]
PURPOSE_MAX_CHARS = 200


def mask_address(address: str | None) -> str | None:
    """The caller's network, not its address: IPv4 to its /24, IPv6 to its /48 (enough to
    tell a city's network or a provider, not a household: docs/decisions.md)."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


_CURSOR = "q1"
_CURSOR_MAX_CHARS = 64
MAX_ID = 2**63 - 1


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id a page ended at (None: from the newest); ValueError for anything this API did
    not give."""
    if not cursor:
        return None
    if len(cursor) > _CURSOR_MAX_CHARS:
        raise ValueError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor") from exc
    version, _, last = raw.partition(":")
    if version != _CURSOR or not (last.isascii() and last.isdigit()) or int(last) > MAX_ID:
        raise ValueError("not a cursor")
    return int(last)


# --- the subject's own view (/api/v1/me) -------------------------------------------------

# 征信业管理条例 art. 16: an individual's negative information is deleted 5 years after the
# act ended. The purge itself is issue 7 item 4's; this date is what /me shows until that
# lands (docs/decisions.md).
PURGE_YEARS = 5


def purge_on(catalogue: Catalogue, subject_type: str, record: ArchivedRecord) -> date | None:
    item = catalogue.items.get(record.catalogue_item)
    if item is not None and item.commitment is not None:
        # A person's breached commitment: 5 years after the breach (shared/disclosure.py).
        return disclosure.purge_on(catalogue, subject_type, record.catalogue_item,
                                   record.act_ended_on or record.decided_on, record.attributes)
    if subject_type != "individual" or item is None or item.polarity != "negative":
        return None
    raw = record.attributes.get("act_ended_on") or getattr(record, "act_ended_on", None)
    try:
        ended = date.fromisoformat(str(raw)) if raw else record.decided_on
    except ValueError:
        ended = record.decided_on
    try:
        return ended.replace(year=ended.year + PURGE_YEARS)
    except ValueError:  # 29 February
        return ended.replace(year=ended.year + PURGE_YEARS, day=28)


def own_records(catalogue: Catalogue, snapshot: SubjectChanged, today: date,
                listed: Collection[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Every record about the subject, public or not, with where it stands; given `listed`
    (the basis records of its published entries), `public_now` is false for a record that
    waits for its entry (`disclosure.held_until_listed`)."""
    out = []
    for r in snapshot.records:
        item = catalogue.items.get(r.catalogue_item)
        public_now = (item is not None and item.disclosure == "public" and r.status == "active"
                      and r.public_until is not None and today <= r.public_until
                      and not (listed is not None
                               and disclosure.held_until_listed(catalogue, r, listed)))
        out.append({
            "department": r.department, "record_id": r.record_id, "revision": r.revision,
            "catalogue_item": r.catalogue_item, "item_name": item.name if item else None,
            "document_no": r.document_no, "summary": r.summary,
            "decided_on": r.decided_on.isoformat(), "status": r.status,
            "disputed": r.disputed, "disclosure": item.disclosure if item else None,
            "public_now": public_now, "disclosure_rule": r.disclosure_rule,
            "repair_from": _iso(r.repair_from), "public_until": _iso(r.public_until),
            "purge_on": _iso(purge_on(catalogue, snapshot.subject.type, r)),
            "contact_from_department": mask_contact(r.contact) if r.contact else None,
            "repair": r.repair.model_dump(mode="json") if r.repair else None,
            "disputed_since": r.disputed_since.isoformat() if r.disputed_since else None,
            "provenance": {"department": r.department, "record_id": r.record_id,
                           "revision": r.revision,
                           "event_id": r.provenance.event_id if r.provenance else None,
                           "received_at": r.provenance.received_at.isoformat()
                           if r.provenance and r.provenance.received_at else None}})
    return sorted(out, key=lambda x: x["decided_on"], reverse=True)


def public_commitments(catalogue: Catalogue,
                       records: Iterable[ArchivedRecord]) -> list[dict[str, Any]]:
    """The public credit commitments (信用承诺) signed for granted repairs (CONTRACT.md,
    public profile: `commitments`)."""
    texts = catalogue.repair.commitment_texts
    out = []
    for r in records:
        c = r.repair.commitment if r.repair else None
        if c is None:
            continue
        text = texts.get(c.text_version)
        out.append({"commitment_id": c.commitment_id, "kind": c.kind,
                    "signed_on": c.signed_on.isoformat(),
                    "text": text.text if text else None, "text_version": c.text_version,
                    "signer": {"name": c.signer_name, "role": c.signer_role},
                    "status": "kept"})
    return sorted(out, key=lambda x: x["signed_on"], reverse=True)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def mask(subject_type: str, identifier: str) -> str:
    return mask_resident_id(identifier) if subject_type == "individual" else identifier


def requests_by_kind(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The subject's objections, repair requests and complaints (credit.requests.changed)."""
    out: dict[str, list[dict[str, Any]]] = {"objections": [], "repairs": [], "complaints": []}
    key = {"objection": "objections", "repair": "repairs", "complaint": "complaints"}
    for body in rows:
        out[key[body["kind"]]].append({k: v for k, v in body.items() if k != "subject"})
    return out
