"""Uvicorn's httptools protocol, answering what the server refuses by itself in the node's shape.

What Uvicorn 0.54 (httptools protocol, `websockets-sansio` WebSockets) answers by itself, without
the app, and what `NodeHttpProtocol` makes of it:

- A request llhttp cannot parse (`HttpParserError`, garbage, a TLS handshake on the plain port,
  a bad `Content-Length` or chunk size), and any exception raised in Uvicorn's parser callbacks
  (notably `UnicodeDecodeError` on raw non-ASCII bytes in the path): Uvicorn answers
  `400`, `text/plain; charset=utf-8`, body "Invalid HTTP request received.", and closes. Here:
  `400` JSON "The request is not valid HTTP/1.1.", the raw input never echoed.
- Request line and headers: llhttp has no size limits and Uvicorn sets none, so a client may
  send megabytes of head. Here: a request target (not the whole line) over `limit_request_line`
  bytes gets `414` JSON; more than `limit_request_fields` fields, one field (name + value) over
  `limit_request_field_size` bytes, or a head still incomplete past the most those limits allow
  (about 815 KiB by default: httptools buffers a field whole before it can be measured) gets
  `431` JSON. For a WebSocket handshake the `websockets` parser is stricter (a line of at
  most 8190 bytes without its CRLF, at most 128 fields): Uvicorn would hand it such a request,
  whose refusal it then never sends, and the client would hang; here that is `414`/`431` JSON.
- Time: Uvicorn bounds only the idle time after an answer (`timeout_keep_alive`, then it closes
  without a word); a connection that never sends a byte, or trickles a request's head or body,
  it holds forever. Here: a new connection gets the same idle timeout as one between requests,
  and a request must arrive whole within `request_timeout` seconds of its first byte, else
  `408` JSON "The request did not arrive in time." and the connection closes (only closes if
  the app has already started its answer).
- Every answer above says `Connection: close`, `Content-Type: application/json` and its
  `Content-Length`, plus Uvicorn's default headers (`date`, `server`), then closes.

What stays as Uvicorn or `websockets` send it (not JSON):

- WebSocket handshakes `websockets` rejects (`ServerProtocol.accept`): `400` (bad handshake:
  missing or wrong `Sec-WebSocket-Key`/`-Version`), `403` (origin, unused by the node),
  `405` with `Allow: GET` (not GET), `426` with `Upgrade: websocket` (`Connection`/`Upgrade`
  header wrong), `505` (not HTTP/1.1), `500` (unexpected error); each `text/plain;
  charset=utf-8`, "Failed to open a WebSocket connection: <reason>.", `Connection: close`.
- An app that closes a WebSocket before accepting it: `403`, `text/plain; charset=utf-8`, empty
  body. An app raising (or returning) before accepting: `500`, `text/plain; charset=utf-8`,
  "Internal Server Error"; a worker shutting down mid-handshake: the same `500`.
- An HTTP app raising, or returning, before it starts its answer: `500`, `text/plain;
  charset=utf-8`, "Internal Server Error", `connection: close` (Falcon's app never does: its
  error handlers answer JSON). After the answer started, Uvicorn only closes.
- `limit_concurrency` exceeded: `503`, `text/plain; charset=utf-8`, "Service Unavailable",
  `connection: close`. The node does not set `limit_concurrency`.
- An upgrade other than `websocket` (`h2c`): Uvicorn logs "Unsupported upgrade request." and
  serves the request as plain HTTP/1.1.
- `Expect: 100-continue`: Uvicorn writes `HTTP/1.1 100 Continue` when the app first reads the
  body; other expectations are passed to the app.

Cost: a request that arrives in one read (nearly all of them) costs a few attribute stores and
length checks; the 408 timer (`loop.call_later`) is armed only when a read ends with a request
still incomplete, and cancelled when it completes. Measured against `HttpToolsProtocol` (wrk
-t1 -c32 -d5s, a hello app, server and wrk on a core each, 6 rounds): 0-3% fewer requests/s,
within the noise; in a protocol-only loop, +1 µs a request (6 headers; ~20 µs in all). Arming a
timer at every request's first byte instead cost 8-10% (+3 µs); super() calls on the parser
callbacks cost +4 µs, hence Uvicorn's methods called directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Final

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState
from websockets.http11 import MAX_LINE_LENGTH as WS_MAX_LINE_LENGTH
from websockets.http11 import MAX_NUM_HEADERS as WS_MAX_NUM_HEADERS

if TYPE_CHECKING:
    from cobrowse.config.settings import ServerOptions

log = logging.getLogger("cobrowse.node")

NOT_HTTP: Final = "The request is not valid HTTP/1.1."
LINE_TOO_LONG: Final = "The request line is too long."
HEAD_TOO_LARGE: Final = "Too many header fields, or one too large."
TOO_SLOW: Final = "The request did not arrive in time."

# Where the connection is, for the request deadline and for refusals. Whether an incomplete
# request is in its head or its body is told by its cycle: Uvicorn makes one when the head is in.
IDLE: Final = 0  # between requests
ACTIVE: Final = 1  # a request is arriving
REFUSED: Final = -1  # refused: nothing more is read or answered


class _RefusalError(Exception):
    """Raised in a parser callback to refuse the request with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status)
        self.status = status
        self.message = message


def _options_of(config: Config) -> ServerOptions:
    options: ServerOptions | None = getattr(config, "cobrowse_options", None)
    if options is None:
        from cobrowse.config.settings import ServerOptions

        options = ServerOptions()
    return options


class NodeHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with request limits, a request deadline, and JSON refusals."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        options = _options_of(config)
        self.request_timeout = options.request_timeout
        self.limit_request_line = options.limit_request_line
        self.limit_request_fields = options.limit_request_fields
        self.limit_request_field_size = options.limit_request_field_size
        # The most head the limits above let through, with room for separators and spaces:
        # a head still incomplete past it is refused before llhttp's buffers grow further.
        self.limit_head = (
            options.limit_request_line
            + options.limit_request_fields * (options.limit_request_field_size + 64)
            + 1024
        )
        self.phase = IDLE
        self.head_bytes = 0  # bytes read while the current request's head is incomplete
        self.request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Uvicorn arms its idle timeout only after an answer: a client that connects and sends
        # nothing would hold the connection forever.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    # Reading
    def data_received(self, data: bytes) -> None:
        if self.phase == REFUSED:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            refusal = error.__context__
            if isinstance(refusal, _RefusalError):
                self.refuse(refusal.status, refusal.message)
            else:
                self.refuse(400, NOT_HTTP)
            return
        except httptools.HttpParserUpgrade:
            self.stop_request_timer()
            self.phase = IDLE
            self.head_bytes = 0
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.phase == ACTIVE:  # a request is incomplete at the end of this read
            if not self.in_body():
                self.head_bytes += len(data)
                if self.head_bytes > self.limit_head:
                    self.refuse(431, HEAD_TOO_LARGE)
                    return
            if self.request_timer is None:
                # Its first byte came in this read (else the timer would be running).
                self.request_timer = self.loop.call_later(
                    self.request_timeout, self.request_timed_out
                )

    # Parser callbacks, the hot path: Uvicorn's methods are called directly, not through
    # super() (measurably slower on 3.11), and on_header is Uvicorn's own plus the limits.
    def on_message_begin(self) -> None:
        self.phase = ACTIVE
        HttpToolsProtocol.on_message_begin(self)

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limit_request_line:
            raise _RefusalError(414, LINE_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        if (
            len(name) + len(value) > self.limit_request_field_size
            or len(self.headers) >= self.limit_request_fields
        ):
            raise _RefusalError(431, HEAD_TOO_LARGE)
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_message_complete(self) -> None:
        self.phase = IDLE
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None
            self.head_bytes = 0
        HttpToolsProtocol.on_message_complete(self)

    def in_body(self) -> bool:
        """Return whether the request arriving has its head in (its cycle is made)."""
        cycle: RequestResponseCycle | None = self.cycle
        return cycle is not None and cycle.scope is self.scope

    def handle_websocket_upgrade(self) -> None:
        self.stop_request_timer()
        # The `websockets` parser reads the head again, with stricter limits; past them it
        # prepares a refusal that Uvicorn never sends. Refuse here instead.
        if len(self.url) + len(self.scope["method"]) + len(" HTTP/1.1") + 1 > (
            WS_MAX_LINE_LENGTH - 2
        ):
            self.refuse(414, LINE_TOO_LONG)
            return
        if len(self.headers) > WS_MAX_NUM_HEADERS or any(
            len(name) + len(value) + 2 > WS_MAX_LINE_LENGTH - 2 for name, value in self.headers
        ):
            self.refuse(431, HEAD_TOO_LARGE)
            return
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_request_timer()
        super().connection_lost(exc)

    # The request deadline
    def stop_request_timer(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def request_timed_out(self) -> None:
        """Refuse a request still incomplete `request_timeout` seconds after its first byte."""
        self.request_timer = None
        if self.phase <= IDLE or self.transport.is_closing():
            return
        if self.flow.read_paused or self.pipeline:
            # We stopped reading (an earlier answer is under way, or the app has not read the
            # body yet): the time is not the client's. Give it another period.
            self.request_timer = self.loop.call_later(self.request_timeout, self.request_timed_out)
            return
        self.refuse(408, TOO_SLOW)

    # Refusals
    def send_400_response(self, msg: str) -> None:
        self.refuse(400, NOT_HTTP)

    def refuse(self, status: int, message: str) -> None:
        """Answer `status` in the node's JSON shape and close, unless an answer is under way.

        In the body, the request's own answer may have started: then the connection only
        closes. In the head, an earlier request's answer may be under way: it is finished, and
        then the connection closes, the refused request unanswered.
        """
        in_body = self.phase == ACTIVE and self.in_body()
        self.phase = REFUSED
        self.stop_request_timer()
        peer = self.client[0] if self.client else "-"
        log.log(
            logging.INFO if status in (400, 408) else logging.WARNING,
            "Refused a request from ip=%s: %d",
            peer,
            status,
        )
        cycle = self.cycle
        if in_body:
            if cycle.response_started or self.pipeline:
                self.transport.close()
                return
            # The app waits for the body: it sees a disconnect, and its answer goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        elif cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self.transport.write(self.json_answer(status, message))
        self.transport.close()

    def json_answer(self, status: int, message: str) -> bytes:
        body = json.dumps({"errorMessage": message}).encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.append(
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body)
        )
        content.append(body)
        return b"".join(content)
