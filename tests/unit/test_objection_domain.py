"""services/objection/domain.py: deadlines, access tokens and what a department's decision
does to the record (DOMAIN.md, "Objections and repair handling", lines 58-69)."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from services.objection.domain import (
    changes_on_decision,
    due_by,
    new_access_token,
    token_hash,
    token_matches,
)


def test_objection_is_due_20_days_after_receipt():
    """DOMAIN.md lines 60-61 (征信业管理条例 art. 25): answered within 20 days."""
    assert due_by(date(2026, 11, 28)) == date(2026, 12, 18)
    assert due_by(date(2026, 12, 20)) == date(2027, 1, 9)
    assert due_by(date(2028, 2, 20)) == date(2028, 3, 11)


def test_access_tokens_are_unguessable_and_distinct():
    tokens = {new_access_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) >= 32 for t in tokens)


def test_token_hash_is_sha256_hex_and_not_the_token():
    token = "secret-token"
    assert token_hash(token) == hashlib.sha256(b"secret-token").hexdigest()
    assert token not in token_hash(token)


def test_token_matches_its_own_hash_only():
    token = new_access_token()
    stored = token_hash(token)
    assert token_matches(token, stored)
    assert not token_matches(token + "x", stored)
    assert not token_matches("", stored)
    assert not token_matches(token, token)  # the raw token is not a valid stored hash


@pytest.mark.parametrize(("kind", "decision", "withdraw", "changes"), [
    # A rejected objection lifts the "under objection" flag (DOMAIN.md line 60).
    ("objection", "rejected", False, ["unflag"]),
    ("objection", "rejected", True, ["unflag"]),
    # An upheld objection withdraws the record or lifts the flag (a corrected revision
    # arrives as a normal submission).
    ("objection", "upheld", True, ["withdraw"]),
    ("objection", "upheld", False, ["unflag"]),
    # A repair request never flags the record, so a refusal changes nothing.
    ("repair", "rejected", False, []),
    ("repair", "rejected", True, []),
    # An upheld repair stops display, sharing and the measures together (NDRC Order 36,
    # DOMAIN.md lines 48-49), whatever the withdraw flag says.
    ("repair", "upheld", False, ["repair"]),
    ("repair", "upheld", True, ["repair"]),
])
def test_changes_on_decision(kind, decision, withdraw, changes):
    assert changes_on_decision(kind, decision, withdraw) == changes
