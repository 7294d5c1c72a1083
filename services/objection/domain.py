"""Objection and repair rules: deadlines, access tokens, and what a decision does to the
record. Pure functions."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, timedelta

from shared.contract import RecordChange
from shared.messages import caused_id

# 征信业管理条例 (2013) art. 25: an objection is checked and answered within 20 days.
OBJECTION_DAYS = 20


def due_by(received_on: date) -> date:
    return received_on + timedelta(days=OBJECTION_DAYS)


def new_access_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)


def changes_on_decision(kind: str, decision: str, withdraw: bool) -> list[RecordChange]:
    """What the record undergoes when the department decides.

    A rejected objection lifts the dispute flag. An upheld objection either withdraws the
    record or lifts the flag (the corrected revision arrives as a normal submission). An
    upheld repair stops public display, data sharing and the penalty measures together
    (NDRC Order 36).
    """
    if decision == "rejected":
        return ["unflag"] if kind == "objection" else []
    if kind == "repair":
        return ["repair"]
    return ["withdraw"] if withdraw else ["unflag"]


def routed_id(objection_id: str) -> str:
    """The event id of an objection's routing to its department: once per objection."""
    return caused_id("xinyong/objection", "routed", objection_id)


def status_change_id(objection_id: str, change: RecordChange) -> str:
    """The event id of a record-status change an objection causes: each change happens at
    most once per objection (the flag on receipt, the rest on the one decision)."""
    return caused_id("xinyong/objection", "status", objection_id, change)
