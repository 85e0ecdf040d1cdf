"""The node's Gunicorn worker: gthread, with JSON errors and slow clients cut off.

Gunicorn's gthread worker, as is, would break the node's promises in three ways:

- it answers requests it cannot parse (too many headers, an over-long request line) with an
  HTML page; here they get the node's JSON error shape;
- a request thread reads from a blocking socket with no deadline, so a client that trickles its
  request holds a thread as long as it likes; here a request must arrive whole within
  Gunicorn's `timeout` of its first byte, or it gets 408 and is disconnected;
- a worker keeps accepting connections while a slow client holds all its threads, and queues
  them behind it; here such a worker leaves new connections to its siblings. (Requests on a
  connection the worker already holds, kept alive, still wait for one of its threads.)
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import time
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers import gthread

from cobrowse.errors import RequestTimeoutError

TOO_SLOW = "The request did not arrive in time."
# A thread busy for longer than this is held up (a slow client, most likely): its worker stops
# accepting connections meanwhile. Requests take milliseconds.
HELD_UP_S = 0.1


class DeadlineSocket(socket.socket):
    """A client socket whose blocking reads of one request share one deadline.

    The deadline starts at the request's first read. Before the answer has started, running out
    of time raises RequestTimeoutError, answered 408; afterwards (draining an unread body) it
    raises TimeoutError, which Gunicorn takes as "close the connection".
    """

    request_timeout: float = 30.0
    deadline: float | None = None
    answering: bool = False
    request: Any = None  # Gunicorn's parsed request, once its head has arrived

    @classmethod
    def adopt(cls, sock: socket.socket, request_timeout: float) -> DeadlineSocket:
        """Take over the file descriptor of an accepted socket."""
        ours = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        ours.request_timeout = request_timeout
        return ours

    def start_request(self) -> None:
        self.deadline = None
        self.answering = False
        self.request = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._bound_the_wait()
        try:
            return super().recv(bufsize, flags)
        except TimeoutError:
            raise self._too_slow() from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        current = self.gettimeout()
        if current != 0.0:
            self.answering = True
            # A client that does not read its answer is cut off too.
            self.settimeout(self.request_timeout)
        super().sendall(data, flags)

    def _bound_the_wait(self) -> None:
        current = self.gettimeout()
        if current == 0.0:
            return  # non-blocking: Gunicorn's own poller or error writer
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.request_timeout
        remaining = self.deadline - now
        if remaining <= 0:
            raise self._too_slow()
        self.settimeout(remaining if current is None else min(current, remaining))

    def _too_slow(self) -> Exception:
        if self.answering:
            return TimeoutError(TOO_SLOW)
        if self.request is not None:
            self.request.must_close = True  # the 408 says `Connection: close`, and does it
        return RequestTimeoutError(TOO_SLOW)


INTERNAL_ERROR = (500, "Internal Server Error", "Internal server error.")
# Errors Gunicorn meets outside the app, first match wins: (classes, status, reason, message).
ERROR_ANSWERS: tuple[tuple[tuple[type[BaseException], ...], int, str, str], ...] = (
    ((RequestTimeoutError,), 408, "Request Timeout", TOO_SLOW),
    ((http_errors.LimitRequestLine,), 414, "URI Too Long", "The request line is too long."),
    (
        (http_errors.LimitRequestHeaders,),
        431,
        "Request Header Fields Too Large",
        "Too many header fields, or one too large.",
    ),
    (
        (http_errors.ExpectationFailed,),
        417,
        "Expectation Failed",
        "Only 'Expect: 100-continue' is supported.",
    ),
    (
        (http_errors.UnsupportedTransferCoding,),
        501,
        "Not Implemented",
        "The request's Transfer-Encoding is not supported.",
    ),
    ((http_errors.ForbiddenProxyRequest, ssl.SSLError), 403, "Forbidden", "Forbidden."),
    # The app's own faults (a bad response header) and Gunicorn's misconfiguration.
    (
        (
            http_errors.InvalidResponseHeader,
            http_errors.InvalidResponseHeaderName,
            http_errors.ConfigurationProblem,
        ),
        *INTERNAL_ERROR,
    ),
)


def error_answer(exc: BaseException) -> tuple[int, str, str]:
    """Return the status, reason and message for an error Gunicorn met outside the app."""
    for classes, status, reason, message in ERROR_ANSWERS:
        if isinstance(exc, classes):
            return status, reason, message
    if isinstance(exc, http_errors.ParseException):
        # Gunicorn's messages quote the offending input; JSON encoding keeps them harmless.
        return 400, "Bad Request", f"The request is not valid HTTP: {str(exc)[:200]}"
    return INTERNAL_ERROR


def json_error_bytes(status: int, reason: str, message: str) -> bytes:
    """Return a whole HTTP/1.1 error answer in the node's JSON shape, closing the connection."""
    body = json.dumps({"errorMessage": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class NodeWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """Gunicorn's gthread worker with JSON errors, request deadlines and polite accepting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken_at: dict[int, float] = {}  # id(connection) -> when a thread took it

    # Deadlines
    def accept(self, listener: Any) -> None:
        if self.threads_held_up():
            super().set_accept_enabled(False)  # until finish_request frees a thread
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return  # another worker took it, or the client gave up
        self.nr_conns += 1
        sock = DeadlineSocket.adopt(client_sock, float(self.cfg.timeout))
        sock.setblocking(True)
        self.enqueue_req(gthread.TConn(self.cfg, sock, client_addr, listener.getsockname()))

    def handle(self, conn: Any) -> Any:
        key = id(conn)
        self.taken_at[key] = time.monotonic()
        try:
            if isinstance(conn.sock, DeadlineSocket):
                conn.sock.start_request()
            return super().handle(conn)
        finally:
            del self.taken_at[key]

    def handle_request(self, req: Any, conn: Any) -> Any:
        if isinstance(conn.sock, DeadlineSocket):
            conn.sock.request = req
        return super().handle_request(req, conn)

    # Accepting: a connection accepted while every thread is held up by a slow client would wait
    # behind it, while a sibling worker may be idle. Busy with quick requests is fine: pausing
    # then would starve new connections under a steady kept-alive load.
    def threads_held_up(self) -> bool:
        """Return whether every thread is busy, one of them for longer than a request takes."""
        taken = list(self.taken_at.values())
        return len(taken) >= self.cfg.threads and time.monotonic() - min(taken) > HELD_UP_S

    def finish_request(self, conn: Any, fs: Any) -> None:
        super().finish_request(conn, fs)
        if not self._accepting and self.alive:
            self.set_accept_enabled(self.nr_conns < self.worker_connections)

    def set_accept_enabled(self, enabled: bool) -> None:
        # Gunicorn's loop enables accepting every second while it has room for connections.
        super().set_accept_enabled(enabled and not self.threads_held_up())

    # JSON errors
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer an error Gunicorn met outside the app in the node's JSON shape."""
        status, reason, message = error_answer(exc)
        peer = (addr or ("", -1))[0]
        if status >= 500:
            self.log.exception("Error handling request from ip=%s", peer)
        else:
            self.log.warning("Invalid request from ip=%s: %s", peer, exc)
        try:
            util.write_nonblock(client, json_error_bytes(status, reason, message))
        except Exception:
            self.log.debug("Failed to send error message.")
