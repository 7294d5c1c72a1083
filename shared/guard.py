"""What a public HTTP endpoint needs to resist abuse: a body cap enforced before the body is
read, and the client's address as far as trusted proxies vouch for it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence

from slowapi import Limiter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http import problem_response

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51000"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # "::ffff:203.0.113.7" (a dual-stack socket's view of an IPv4 peer) is that IPv4 address.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def client_address(peer: str | None, forwarded_for: Sequence[str],
                   trusted: Sequence[Network]) -> str:
    """The address a request is counted against.

    X-Forwarded-For is believed only when the immediate peer is a trusted proxy: then the
    header is read from the right (each proxy appends the address it saw) past the trusted
    proxies, and the first other address is the client. Entries to its left were written by
    the client itself and prove nothing. With no trusted proxy (the default) the client is
    the peer, whatever the header says. `forwarded_for` holds every X-Forwarded-For header
    line of the request, in order.
    """
    peer_address = _address(peer or "")
    if peer_address is None:
        return peer or "unknown"

    def is_trusted(a: Address) -> bool:
        return any(a in n for n in trusted)

    if not is_trusted(peer_address):
        return str(peer_address)
    hops = [h for line in forwarded_for for h in line.split(",") if h.strip()]
    client = peer_address
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            break  # unreadable: trust nothing further left, the last proxy's view stands
        client = hop_address
        if not is_trusted(hop_address):
            break
    return str(client)


class BodyCap:
    """ASGI middleware: a request body over `max_bytes` is answered 413 (problem JSON).

    A declared Content-Length over the cap is refused before anything is read; a body
    without one (chunked) is read up to the cap and refused as soon as it passes it. The body
    that passes is handed on as read, so the application never sees more than the cap.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope["headers"] if k == b"content-length"]
        if declared:
            try:
                length = int(declared[0])
            except ValueError:
                length = -1
            if length < 0 or len(set(declared)) > 1:
                await self._refuse(scope, receive, send, 400, "bad_content_length",
                                   "Content-Length is not a single non-negative integer")
                return
            if length > self.max_bytes:
                await self._refuse(scope, receive, send, 413, "too_large",
                                   f"At most {self.max_bytes} bytes a request")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, 413, "too_large",
                                   f"At most {self.max_bytes} bytes a request")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                      title: str) -> None:
        # The unread rest of the body makes the connection unusable for another request.
        response = problem_response(status, code, title, headers={"Connection": "close"})
        await response(scope, receive, send)


def client_of(trusted_proxies: Iterable[str]) -> Callable[[Request], str]:
    """A request's client as `client_address` tells it, behind the trusted proxies: the key of
    every per-client limit and the address a view is logged with."""
    trusted = networks(trusted_proxies)

    def of(request: Request) -> str:
        return client_address(request.client.host if request.client else None,
                              request.headers.getlist("x-forwarded-for"), trusted)
    return of


def public_limiter(trusted_proxies: Iterable[str]) -> Limiter:
    """The per-client rate limiter of a public API (slowapi, fixed windows in shared/http.py's
    swept memory): each client counted apart, also behind the front door, which is every
    visitor's peer."""
    return Limiter(key_func=client_of(trusted_proxies), storage_uri="swept-memory://")
