"""shared/guard.py: the client address behind trusted proxies, and the body cap."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.guard import BodyCap, client_address, networks

LOCAL = networks(["127.0.0.1", "10.0.0.0/8"])


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says():
    assert client_address("203.0.113.7", ["198.51.100.1"], ()) == "203.0.113.7"
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"


def test_an_untrusted_peer_cannot_choose_its_address():
    assert client_address("203.0.113.7", ["198.51.100.1"], LOCAL) == "203.0.113.7"


def test_behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client():
    # The client wrote "1.2.3.4" itself; the proxies appended what they saw.
    assert client_address("127.0.0.1", ["1.2.3.4, 198.51.100.9, 10.1.1.1"],
                          LOCAL) == "198.51.100.9"
    assert client_address("127.0.0.1", ["1.2.3.4", "198.51.100.9"], LOCAL) == "198.51.100.9"


def test_an_unreadable_hop_stops_the_walk_at_the_last_proxy():
    assert client_address("127.0.0.1", ["198.51.100.9, nonsense"], LOCAL) == "127.0.0.1"
    assert client_address("127.0.0.1", [], LOCAL) == "127.0.0.1"


def test_addresses_are_read_in_one_form():
    assert client_address("::ffff:127.0.0.1", ["[2001:db8::1]:443"], LOCAL) == "2001:db8::1"
    assert client_address("127.0.0.1", ["198.51.100.9:51000"], LOCAL) == "198.51.100.9"
    assert client_address("::ffff:203.0.113.7", [], LOCAL) == "203.0.113.7"


class _Recorder:
    """An ASGI app that records the body it was given."""

    def __init__(self) -> None:
        self.body: bytes | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.body = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _call(app: BodyCap, headers: list[tuple[bytes, bytes]],
                chunks: list[bytes]) -> tuple[int, dict[str, Any] | None, int]:
    """(status, problem body, chunks read)."""
    pending = list(chunks)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if not pending:
            return {"type": "http.disconnect"}
        read += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers,
             "query_string": b""}
    await app(scope, receive, send)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, json.loads(body) if status != 200 else None, read


async def test_a_declared_length_over_the_cap_is_refused_before_reading():
    inner = _Recorder()
    status, problem, read = await _call(BodyCap(inner, 10), [(b"content-length", b"11")],
                                        [b"x" * 11])
    assert (status, problem["code"], read) == (413, "too_large", 0)
    assert inner.body is None


async def test_a_chunked_body_is_read_only_up_to_the_cap():
    inner = _Recorder()
    status, problem, read = await _call(BodyCap(inner, 10), [], [b"x" * 6] * 5)
    assert (status, problem["code"], read) == (413, "too_large", 2)
    assert inner.body is None


@pytest.mark.parametrize("value", [b"-1", b"ten", b""])
async def test_an_unreadable_content_length_is_a_bad_request(value):
    status, problem, _ = await _call(BodyCap(_Recorder(), 10), [(b"content-length", value)],
                                     [b"x"])
    assert (status, problem["code"]) == (400, "bad_content_length")


async def test_a_body_within_the_cap_reaches_the_app_whole():
    inner = _Recorder()
    status, _, _ = await _call(BodyCap(inner, 10), [], [b"12345", b"67890"])
    assert status == 200 and inner.body == b"1234567890"
