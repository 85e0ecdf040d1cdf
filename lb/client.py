"""Client connections: parse requests with httptools, answer them in order, enforce limits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from lb.http import FORWARDING, HeaderBlock, Request, Response, json_error, serialize_response
from lb.observe import request_id_for
from lb.state import RouterState

log = logging.getLogger("cobrowse.lb")

MAX_HEADERS = 100
MAX_URL = 8192
MAX_QUEUED = 16  # pipelined requests waiting behind the one being answered
WEBSOCKET = b"websocket"


class Host(Protocol):
    """What a client connection needs of the router (`lb.router.Router`)."""

    state: RouterState
    stopping: bool
    connections: set[ClientConnection]

    def dispatch(self, request: Request, client: ClientConnection) -> None: ...

    def observe(self, request: Request, status: int, peer: str) -> None: ...


class ClientConnection(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive and pipelining, answered in order.

    `deadline` (monotonic seconds, 0 for none) is enforced by the router's reaper: a request must
    arrive whole within clientTimeout of its first byte, and an idle keep-alive connection is
    closed after clientTimeout.

    A WebSocket handshake (`GET`, `Connection: upgrade`, `Upgrade: websocket`) is the last
    request of its connection: reading stops, and the connection is either answered and closed
    (any answer but 101) or handed over to a tunnel (`switch`, then `lb/tunnel.py`).
    """

    def __init__(self, router: Host) -> None:
        self.router = router
        self.limit = router.state.config.router.max_body_size
        self.timeout = router.state.config.router.client_timeout
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.queue: deque[Request] = deque()
        self.busy = False
        self.closing = False
        self.deadline = 0.0
        self.reading_request = False
        # the request being parsed
        self.url = b""
        self.headers = HeaderBlock()
        self.request = Request(b"", b"", b"")
        self.body: list[bytes] = []
        self.body_size = 0
        self.header_count = 0
        self.rejected: Response | None = None
        # a WebSocket handshake: bytes after its head, and who to tell if the client leaves
        self.early = b""
        self.on_lost: Callable[[], None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.router.connections.add(self)
        self.deadline = time.monotonic() + self.timeout

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # The parser stops after an upgrade's head: anything after it is for the node.
            if self.rejected is not None:
                self._reject_now(self.rejected)
                return
            self.early = data[upgrade.args[0] :]
            if self.transport is not None and not self.closing:
                self.transport.pause_reading()  # until the node has answered the handshake
        except httptools.HttpParserError:
            self._reject_now(self.rejected or json_error(400, "The request is not valid HTTP/1.1."))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.router.connections.discard(self)
        if self.on_lost is not None:
            self.on_lost()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = HeaderBlock()
        self.request = Request(b"", b"", b"")
        self.body = []
        self.body_size = 0
        self.header_count = 0
        self.rejected = None
        self.reading_request = True
        self.deadline = time.monotonic() + self.timeout  # a trickling request is cut off

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL:
            self.rejected = json_error(414, "The request target is too long.")
            raise httptools.HttpParserError("target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > MAX_HEADERS:
            self.rejected = json_error(431, f"More than {MAX_HEADERS} header fields.")
            raise httptools.HttpParserError("too many header fields")
        lower = name.lower()
        request = self.request
        if lower == b"cookie":
            request.cookie = value if request.cookie is None else request.cookie + b"; " + value
        elif lower == b"gcbsessionserver":
            request.sticky = value
        elif lower == b"host":
            request.host = value
        elif lower == b"accept":
            request.accept = value
        elif lower == b"upgrade":
            request.upgrade = value  # hop-by-hop: kept aside, forwarded only for a WebSocket
        elif lower in FORWARDING:
            if lower == b"x-forwarded-for":
                request.forwarded_for = value
            elif lower == b"x-forwarded-proto":
                request.forwarded_proto = value
            elif lower == b"x-request-id":
                request.request_id = value
            return  # the router writes these itself
        elif lower == b"content-length" and value.strip().isdigit() and int(value) > self.limit:
            self.rejected = json_error(413, f"The body is over the {self.limit}-byte limit.")
            raise httptools.HttpParserError("body too large")
        elif lower == b"expect" and value.strip().lower() == b"100-continue":
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.headers.add(lower, name, value)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.limit:  # chunked bodies have no Content-Length to check first
            self.rejected = json_error(413, f"The body is over the {self.limit}-byte limit.")
            raise httptools.HttpParserError("body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.reading_request = False
        self.deadline = 0.0
        request = self.request
        request.method = self.parser.get_method()
        request.target = self.url
        request.head = self.headers.render()
        request.body = b"".join(self.body)
        request.keep_alive = self.parser.should_keep_alive()
        request.request_id = request_id_for(request.request_id)
        request.started = time.perf_counter()
        if request.upgrade is not None and not self._accept_upgrade(request):
            return
        if self.busy:
            if len(self.queue) >= MAX_QUEUED:
                self._reject_now(json_error(429, "Too many pipelined requests."))
                return
            self.queue.append(request)
        else:
            self.busy = True
            self.router.dispatch(request, self)

    def _accept_upgrade(self, request: Request) -> bool:
        """Decide about a request that names an upgrade; False when it is refused."""
        if not self.parser.should_upgrade():
            request.upgrade = None  # `Upgrade` without `Connection: upgrade`: a plain request
            return True
        if (
            request.method != b"GET"
            or request.upgrade is None
            or request.upgrade.strip().lower() != WEBSOCKET
            or self.parser.get_http_version() != "1.1"
        ):
            # Refused once the parser stops, in data_received.
            self.rejected = json_error(400, "Only WebSocket upgrades (GET) are supported.")
            return False
        request.upgrade = WEBSOCKET
        request.keep_alive = False  # an answer other than 101 closes the connection
        return True

    # answering
    def respond(self, request: Request, response: Response) -> None:
        """Write the answer to `request`, then start on the next pipelined one."""
        if self.closing:
            return
        close = not request.keep_alive or self.router.stopping
        assert self.transport is not None
        self.transport.write(
            serialize_response(
                response,
                head_only=request.method == b"HEAD",
                close=close,
                request_id=request.request_id,
            )
        )
        self.router.observe(request, response.status, self.peer)
        if close:
            self._close()
            return
        if self.queue:
            self.router.dispatch(self.queue.popleft(), self)
        else:
            self.busy = False
            if not self.reading_request:
                self.deadline = time.monotonic() + self.timeout

    def switch(self, request: Request, head: bytes) -> asyncio.Transport | None:
        """Write the node's 101 and hand the connection over; None when the client is gone.

        The caller sets the transport's new protocol and resumes reading.
        """
        if self.closing or self.transport is None:
            return None
        self.transport.write(head)
        self.router.observe(request, 101, self.peer)
        self.closing = True  # no more HTTP on this connection
        self.busy = False
        self.deadline = 0.0
        self.on_lost = None
        self.queue.clear()
        self.router.connections.discard(self)
        return self.transport

    def take_early(self) -> bytes:
        """Return (once) what the client sent after its handshake's head."""
        early, self.early = self.early, b""
        return early

    def _reject_now(self, response: Response) -> None:
        """Answer a request the router will not read, and close."""
        self.queue.clear()
        if self.transport is not None and not self.closing:
            self.transport.write(serialize_response(response, head_only=False, close=True))
        self._close()

    def _close(self) -> None:
        self.closing = True
        self.deadline = 0.0
        if self.transport is not None:
            self.transport.close()

    def shutdown_when_idle(self) -> None:
        """Close now if no request is in progress; otherwise after the current answer."""
        if not self.busy and not self.queue:
            self._close()

    def expire(self) -> None:
        """The deadline passed: a slow request gets 408, an idle connection is closed."""
        if self.reading_request:
            log.info("client %s too slow: request incomplete after %ss", self.peer, self.timeout)
            self._reject_now(json_error(408, "The request did not arrive in time."))
        elif not self.busy:
            self._close()
