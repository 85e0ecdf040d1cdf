"""HTTP/1.1 messages as the router sees them: parsed heads, and the bytes it writes back.

The router sits on every request's path, so headers are classified once, as they are parsed:
hop-by-hop fields are dropped, the few the router reads are kept aside, and every other field
is kept as the exact bytes to forward. Nothing is parsed or serialised twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus

# RFC 9110 section 7.6.1 hop-by-hop fields, plus the framing fields the router always rewrites.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
    }
)
# Fields the router sets itself on the way to a node (and X-Request-ID on the way back too).
FORWARDING = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"}
)
# `Connection: close` and `Connection: keep-alive` name no extra hop-by-hop field.
_PLAIN_CONNECTION = frozenset({b"close", b"keep-alive", b""})
# What a node's response loses on its way back: hop-by-hop and framing fields, and its
# X-Request-ID (the router writes the same ID itself), each as CRLF + the whole field line.
_NOT_FORWARDED = re.compile(
    rb"\r\n(?:%s):[^\r]*"
    % b"|".join(re.escape(name) for name in sorted(HOP_BY_HOP | {b"x-request-id"})),
    re.IGNORECASE,
)
_CONNECTION = re.compile(rb"\r\nconnection:([^\r]*)", re.IGNORECASE)


@lru_cache(maxsize=1024)
def forwarded_fields(block: bytes) -> bytes:
    """Return the header lines of a node's response that go to the client.

    `block` is the response head after its status line: each field as CRLF + `name: value`,
    then the CRLF that ends the last one (httptools has already checked the syntax). What
    `HeaderBlock` drops is cut out with one regular expression, not a Python call per field;
    and heads repeat (the same endpoint answers the same fields, the date changes once a
    second), so the answer is remembered.
    """
    kept = _NOT_FORWARDED.sub(b"", block)
    listed = set()
    for match in _CONNECTION.finditer(block):
        for raw_token in match.group(1).lower().split(b","):
            token = raw_token.strip()
            if token not in _PLAIN_CONNECTION and token not in HOP_BY_HOP:
                listed.add(token)
    if listed:  # fields that `Connection` names are hop-by-hop too (rare)
        names = b"|".join(re.escape(name) for name in sorted(listed))
        kept = re.sub(rb"\r\n(?:%s):[^\r]*" % names, b"", kept, flags=re.IGNORECASE)
    return kept[2:]


class HeaderBlock:
    """The end-to-end header lines of a message, collected while it is parsed."""

    __slots__ = ("lines", "listed", "names")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.names: list[bytes] = []
        self.listed: set[bytes] | None = None  # extra hop-by-hop names from `Connection`

    def add(self, lower: bytes, name: bytes, value: bytes) -> None:
        """Keep a field unless it is hop-by-hop; remember what `Connection` lists."""
        if lower in HOP_BY_HOP:
            if lower == b"connection":
                for raw_token in value.lower().split(b","):
                    token = raw_token.strip()
                    if token not in _PLAIN_CONNECTION:
                        self.listed = self.listed or set()
                        self.listed.add(token)
            return
        self.lines.append(b"%s: %s\r\n" % (name, value))
        self.names.append(lower)

    def render(self) -> bytes:
        """Return the kept lines, without the fields that `Connection` listed."""
        if not self.listed:
            return b"".join(self.lines)
        listed = self.listed
        return b"".join(
            line for line, name in zip(self.lines, self.names, strict=True) if name not in listed
        )


@dataclass(slots=True)
class Request:
    """A client request, read completely (the router buffers bodies up to a limit)."""

    method: bytes
    target: bytes
    head: bytes  # end-to-end header lines, forwarding fields excluded
    body: bytes = b""
    keep_alive: bool = True
    host: bytes = b""
    cookie: bytes | None = None
    sticky: bytes | None = None  # the gcbSessionServer request header
    accept: bytes | None = None
    forwarded_for: bytes | None = None
    forwarded_proto: bytes | None = None
    request_id: bytes = b""  # the client's X-Request-ID if sane, else one the router made
    upgrade: bytes | None = None  # `Upgrade` of a WebSocket handshake (then a tunnel, not pooled)
    started: float = 0.0  # perf_counter when the request was complete
    node: str | None = None  # where it went, for the access log and metrics
    rule: str | None = None


@dataclass(slots=True)
class Response:
    """A response for the client: from a node, or the router's own."""

    status: int
    reason: bytes
    head: bytes = b""  # end-to-end header lines
    body: bytes = b""
    keep_alive: bool = True


def serialize_response(
    response: Response, *, head_only: bool, close: bool, request_id: bytes = b""
) -> bytes:
    """Return the bytes of `response` for the client, framed by Content-Length."""
    length = b""
    if response.status >= 200 and response.status not in (204, 304):
        length = b"Content-Length: %d\r\n" % len(response.body)
    return b"HTTP/1.1 %d %s\r\n%s%s%s%s\r\n%s" % (
        response.status,
        response.reason,
        response.head,
        length,
        b"X-Request-ID: %s\r\n" % request_id if request_id else b"",
        b"Connection: close\r\n" if close else b"",
        b"" if head_only else response.body,
    )


def json_error(
    status: int,
    message: str,
    *,
    node: str | None = None,
    retry_after: int | None = None,
) -> Response:
    """Build the router's own error answer, in the nodes' JSON error shape."""
    body: dict[str, object] = {"errorMessage": message}
    if node is not None:
        body["node"] = node
    head = b"Content-Type: application/json\r\n"
    if retry_after is not None:
        head += b"Retry-After: %d\r\n" % retry_after
    return Response(status, HTTPStatus(status).phrase.encode(), head, json.dumps(body).encode())


def json_response(status: int, payload: object, extra_head: bytes = b"") -> Response:
    """Build a JSON answer of the router's own endpoints."""
    return Response(
        status,
        HTTPStatus(status).phrase.encode(),
        b"Content-Type: application/json\r\n" + extra_head,
        json.dumps(payload).encode(),
    )
