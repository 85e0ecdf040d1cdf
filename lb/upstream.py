"""Keep-alive connections to the nodes, pooled per node and parsed with httptools.

A connection carries one request at a time and reports its outcome through a callback: no task
or future per request. Deadlines are plain numbers checked by the router's reaper.

httptools frames each response (status, length or chunks, keep-alive); its header fields are not
taken one callback at a time but cut from the raw head at once (`lb.http.forwarded_fields`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import cast

import httptools

from lb.http import Response, forwarded_fields

# Nodes close idle keep-alive connections after 5 s (cobrowse.ops.node.KEEPALIVE_S): the router
# drops its own idle ones earlier, so that it never sends into a connection being closed.
IDLE_TIMEOUT_S = 2.0
MAX_IDLE_PER_NODE = 64

Outcome = Callable[["UpstreamConnection", Response | None, Exception | None], None]


class UpstreamClosedError(ConnectionError):
    """The node closed the connection before a complete response."""

    def __init__(self, got_bytes: bool) -> None:
        super().__init__("the node closed the connection before answering")
        self.got_bytes = got_bytes


class UpstreamTimeoutError(TimeoutError):
    """The node accepted the request but did not answer within serverTimeout."""


class UpstreamConnection(asyncio.Protocol):
    """One connection to a node."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.outcome: Outcome | None = None
        self.deadline = 0.0  # monotonic; 0 while idle
        self.idle_since = time.monotonic()
        self.closed = False
        self.head_only = False
        self.got_bytes = False
        self.reading_head = False
        self.raw: list[bytes] = []  # what arrived while the head was being read
        self.head = b""  # the status line and fields of the answer, each line CRLF-ended
        self.body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.reading_head:
            self.raw.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._finish(None, ConnectionError(f"bad response from the node: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.outcome is not None:
            self._finish(None, UpstreamClosedError(self.got_bytes))

    # httptools callbacks (`body` is emptied by `send`; an interim 1xx answer has none)
    def on_headers_complete(self) -> None:
        raw = self.raw[0] if len(self.raw) == 1 else b"".join(self.raw)
        end = raw.find(b"\r\n\r\n")
        if end == -1:
            raise ValueError("a response head without CRLF line ends")
        if self.parser.get_status_code() < 200:
            self.raw = [raw[end + 4 :]]  # an interim answer: the real one follows
            return
        self.reading_head = False
        self.raw = []
        self.head = raw[: end + 2]
        if self.head_only:  # a HEAD response has no body, whatever Content-Length says
            self._complete()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.head_only:
            self._complete()

    def _complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 1xx interim answers are not forwarded
            return
        keep_alive = self.parser.should_keep_alive() and not self.head_only
        head = self.head
        line_end = head.find(b"\r\n")
        reason = head[:line_end].split(b" ", 2)[2:]
        response = Response(
            status,
            reason[0] if reason else b"",
            forwarded_fields(head[line_end:]),
            b"".join(self.body),
            keep_alive,
        )
        self._finish(response, None)

    def _finish(self, response: Response | None, error: Exception | None) -> None:
        outcome, self.outcome = self.outcome, None
        self.deadline = 0.0
        self.pool.busy.discard(self)
        if outcome is not None:
            outcome(self, response, error)

    # used by the router
    def send(self, data: bytes, head_only: bool, outcome: Outcome, timeout: float) -> None:
        """Send one request; `outcome` is called once with the response or the error."""
        assert self.transport is not None
        self.got_bytes = False
        self.head_only = head_only
        self.reading_head = True
        self.raw = []
        self.body = []
        self.outcome = outcome
        self.deadline = time.monotonic() + timeout
        self.pool.busy.add(self)
        self.transport.write(data)

    def expire(self) -> None:
        """Give up on the request in flight (called by the reaper after its deadline)."""
        self._finish(None, UpstreamTimeoutError())
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Connections to one node: idle ones ready for reuse, busy ones watched for deadlines."""

    def __init__(self, host: str, port: int, connect_timeout: float) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.idle: deque[UpstreamConnection] = deque()
        self.busy: set[UpstreamConnection] = set()

    def take_idle(self) -> UpstreamConnection | None:
        """Return a reusable idle connection, discarding stale ones."""
        now = time.monotonic()
        while self.idle:
            connection = self.idle.pop()  # the most recently used: least likely to be stale
            if not connection.closed and now - connection.idle_since < IDLE_TIMEOUT_S:
                return connection
            connection.close()
        return None

    async def connect(self) -> UpstreamConnection:
        """Open a new connection; raise OSError or TimeoutError."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: UpstreamConnection(self), self.host, self.port
            )
        return protocol

    def release(self, connection: UpstreamConnection, reusable: bool) -> None:
        """Put a connection back after a complete response, or close it."""
        if reusable and not connection.closed and len(self.idle) < MAX_IDLE_PER_NODE:
            connection.idle_since = time.monotonic()
            self.idle.append(connection)
        else:
            connection.close()

    def expire(self, now: float) -> None:
        """Fail requests past their deadline."""
        for connection in [c for c in self.busy if c.deadline and c.deadline < now]:
            connection.expire()

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
        for connection in list(self.busy):
            connection.close()
