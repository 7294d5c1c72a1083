"""The erasure ledger's references (shared/purge.py) stay what they were when written: the
one-shot HMAC gives the bytes hmac.new gave."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared import purge


@pytest.mark.parametrize("parts", [("amr", "R-1"), ("court", "（2026）粤0402执1号"), ("", "")])
def test_a_record_reference_is_the_hmac_sha256_of_kind_and_parts(parts: tuple[str, str]) -> None:
    key = b"0123456789abcdef" * 4
    expected = hmac.new(key, "|".join(("record", *parts)).encode(), hashlib.sha256).hexdigest()
    assert purge.record_reference(key, *parts) == expected
    assert purge.record_reference(key + b"x", *parts) != expected
