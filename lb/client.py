"""Client connections: parse requests with httptools, answer them in order, enforce limits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from lb.http import FORWARDING, HeaderBlock, Request, Response, json_error, serialize_response
from lb.observe import request_id_for

if TYPE_CHECKING:
    from lb.router import Router

log = logging.getLogger("cobrowse.lb")

MAX_HEADERS = 100
MAX_URL = 8192
MAX_QUEUED = 16  # pipelined requests waiting behind the one being answered


class ClientConnection(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive and pipelining, answered in order.

    `deadline` (monotonic seconds, 0 for none) is enforced by the router's reaper: a request must
    arrive whole within clientTimeout of its first byte, and an idle keep-alive connection is
    closed after clientTimeout.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.limit = router.config.router.max_body_size
        self.timeout = router.config.router.client_timeout
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
        except httptools.HttpParserUpgrade:
            self._reject_now(json_error(400, "Protocol upgrades are not supported."))
        except httptools.HttpParserError:
            self._reject_now(self.rejected or json_error(400, "The request is not valid HTTP/1.1."))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.router.connections.discard(self)

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
        if self.busy:
            if len(self.queue) >= MAX_QUEUED:
                self._reject_now(json_error(429, "Too many pipelined requests."))
                return
            self.queue.append(request)
        else:
            self.busy = True
            self.router.dispatch(request, self)

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
