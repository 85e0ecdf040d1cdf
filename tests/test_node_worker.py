"""The node's Uvicorn worker: JSON refusals, request limits and deadline, options, shutdown hook.

A real Uvicorn server (uvloop, `NodeHttpProtocol`) runs in a thread, and tests talk to it over raw
sockets; the worker itself runs under a real Gunicorn in the last test.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets.sync.client

from cobrowse.ops.http_protocol import NodeHttpProtocol
from cobrowse.ops.worker import NodeServer, NodeWorker, ServerOptions, apply_server_options
from cobrowse.ops.ws_protocol import NodeWebSocketProtocol
from tests.helpers import REPO, wait_until

REQUEST_TIMEOUT = 0.5
KEEPALIVE = 2
OPTIONS = ServerOptions(request_timeout=REQUEST_TIMEOUT)
WAIT = 5.0  # any single wait on the server; past it the test fails


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo the path and body length as JSON; `/early` answers without reading the body; a
    WebSocket is accepted and gets its first message back."""
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text") or ""})
        await send({"type": "websocket.close", "code": 1000})
        return
    size = 0
    if scope["path"] != "/early":
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
    body = json.dumps({"path": scope["path"], "size": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Running:
    server: uvicorn.Server
    thread: threading.Thread
    port: int


def start(server: uvicorn.Server) -> Running:
    """Run `server` in a thread; return once it listens."""
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), WAIT, "the server starts")
    assert server.started, "the server thread died before listening"
    port = server.servers[0].sockets[0].getsockname()[1]
    return Running(server, thread, port)


def stop(running: Running) -> None:
    running.server.should_exit = True
    running.thread.join(WAIT + 2)
    if running.thread.is_alive():
        running.server.force_exit = True
        running.thread.join(2)
        pytest.fail("the server did not stop in time")


def node_config(app_: Any = app, options: ServerOptions = OPTIONS, **kwargs: Any) -> uvicorn.Config:
    config = uvicorn.Config(
        app=app_,
        host="127.0.0.1",
        port=0,
        http=NodeHttpProtocol,
        ws=NodeWebSocketProtocol,
        loop="uvloop",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEPALIVE,
        **kwargs,
    )
    config.cobrowse_options = options  # type: ignore[attr-defined]
    return config


@pytest.fixture(scope="module")
def node() -> Iterator[Running]:
    running = start(uvicorn.Server(node_config()))
    try:
        yield running
    finally:
        stop(running)


# Talking HTTP over raw sockets.


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One connection; answers are read with a deadline that fails the test."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    @property
    def local_port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, what: str) -> None:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"no {what} within {WAIT}s; got {self.buffer[:200]!r}")
        if not chunk:
            pytest.fail(f"the connection closed before {what}; got {self.buffer[:200]!r}")
        self.buffer += chunk

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            self._fill("an answer head")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill("the answer body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(lines[0].split()[1]), headers, body)

    def rest_until_closed(self) -> bytes:
        """Return what comes until the server closes; fail if it does not within WAIT."""
        received, self.buffer = self.buffer, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return received
            except TimeoutError:
                pytest.fail(f"the server did not close within {WAIT}s; got {received[:200]!r}")
            if not chunk:
                return received
            received += chunk

    def closed(self) -> bool:
        return self.rest_until_closed() == b""


def get(path: str = "/", *headers: bytes, close: bool = False) -> bytes:
    lines = [b"GET %s HTTP/1.1" % path.encode("latin-1"), b"Host: test", *headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def assert_refused(answer: Answer, status: int) -> str:
    """Check a refusal in the node's JSON shape that closes the connection; return its message."""
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json", answer.headers
    assert answer.headers["connection"] == "close", answer.headers
    body = answer.json()
    assert set(body) == {"errorMessage"}, body
    message: str = body["errorMessage"]
    return message


def fetch(port: int, path: str = "/") -> Answer:
    with Client(port) as client:
        client.send(get(path, close=True))
        return client.answer()


# Refusals


GARBAGE = {
    "not http": b"GARBAGE\r\n\r\n",
    "tls hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),
    "bad version": b"GET / HTTP/7.3\r\nHost: test\r\n\r\n",
    "bad content-length": b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: <script>\r\n\r\n",
    "nul in target": b"GET /a\x00b HTTP/1.1\r\nHost: test\r\n\r\n",
    "raw non-ascii path": b"GET /\xc3\xa9<b> HTTP/1.1\r\nHost: test\r\n\r\n",
    "bad chunk size": b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("request_bytes", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_gets_400_json_and_the_connection_closes(
    node: Running, request_bytes: bytes
) -> None:
    with Client(node.port) as client:
        client.send(request_bytes)
        message = assert_refused(client.answer(), 400)
        assert message == "The request is not valid HTTP/1.1."  # the input is never echoed
        assert client.closed()
    assert fetch(node.port).status == 200


def fields(count: int) -> list[bytes]:
    """Header fields, Host included, `count` in all."""
    return [b"X-Field-%d: %d" % (n, n) for n in range(count - 1)]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(get("/", *fields(101)), 431, id="101 fields"),
        pytest.param(get("/", *fields(100)), 200, id="100 fields"),
        pytest.param(get("/" + "t" * 8999), 414, id="9000-byte target"),
        pytest.param(get("/" + "t" * 8189), 200, id="8190-byte target"),
        pytest.param(get("/", b"X-Huge: " + b"h" * 9000), 431, id="9000-byte value"),
        pytest.param(get("/", b"X-Huge: " + b"h" * (8190 - 6)), 200, id="8190-byte field"),
        pytest.param(get("/", b"X-Huge: " + b"h" * (8190 - 5)), 431, id="8191-byte field"),
    ],
)
def test_request_line_and_header_limits(node: Running, request_bytes: bytes, status: int) -> None:
    with Client(node.port) as client:
        client.send(request_bytes)
        answer = client.answer()
        if status == 200:
            assert answer.status == 200, answer
        else:
            assert_refused(answer, status)
            assert client.closed()


def test_a_head_growing_past_every_limit_is_refused_before_it_ends(node: Running) -> None:
    """One field sent in pieces: llhttp buffers it whole before the field limit can see it."""
    piece = 64 * 1024
    with Client(node.port) as client:
        client.send(get("/").removesuffix(b"\r\n\r\n") + b"\r\nX-Endless: ")
        sent = 0
        while not select.select([client.sock], [], [], 0.01)[0]:
            assert sent < 4_000_000, "the server let a 4 MB header field in"
            try:
                client.send(b"e" * piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += piece
        assert_refused(client.answer(), 431)
    assert sent < 1_100_000  # the most the default limits allow, plus a read or two


UPGRADE = (
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(get("/" + "w" * 8176, *UPGRADE), 101, id="8190-byte request line"),
        pytest.param(get("/" + "w" * 8177, *UPGRADE), 414, id="8191-byte request line"),
        pytest.param(get("/", b"X-Big: " + b"b" * 8183, *UPGRADE), 101, id="8190-byte line"),
        pytest.param(get("/", b"X-Big: " + b"b" * 8184, *UPGRADE), 431, id="8191-byte line"),
    ],
)
def test_websocket_handshakes_past_the_websockets_limits_get_json(
    node: Running, request_bytes: bytes, status: int
) -> None:
    """The `websockets` parser allows lines of 8190 bytes; Uvicorn alone would hang past it."""
    with Client(node.port) as client:
        client.send(request_bytes)
        if status == 101:
            assert client.answer().status == 101
        else:
            assert_refused(client.answer(), status)
            assert client.closed()


# The request deadline


@dataclass
class Trickle:
    """Send `sent` at once, then `trickled` a byte every `interval` until the server answers."""

    port: int
    sent: bytes
    trickled: bytes
    interval: float = 0.05
    received: bytes = b""
    seconds: float = 0.0
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="trickle", daemon=True)

    def start(self) -> Trickle:
        self.thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        try:
            with Client(self.port) as client:
                client.send(self.sent)
                for index in range(len(self.trickled)):
                    if select.select([client.sock], [], [], self.interval)[0]:
                        break  # the server answers: it cut us off
                    try:
                        client.send(self.trickled[index : index + 1])
                    except (BrokenPipeError, ConnectionResetError):
                        break
                self.seconds = time.monotonic() - started
                self.received = client.rest_until_closed()
        except BaseException as error:
            self.error = error

    def join(self) -> bytes:
        self.thread.join(REQUEST_TIMEOUT + WAIT)
        assert not self.thread.is_alive(), "the trickling client was never cut off"
        if self.error is not None:
            raise self.error
        return self.received


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in (x.partition(":") for x in lines[1:])}
    return Answer(int(lines[0].split()[1]), headers, body)


def post_head(path: str, length: int) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % (path.encode(), length)


@pytest.mark.parametrize(
    ("sent", "trickled"),
    [
        pytest.param(b"G", get("/slow", *fields(20))[1:], id="head"),
        pytest.param(post_head("/slow", 200), b"{" + b" " * 199, id="body"),
    ],
)
def test_a_trickling_request_gets_408_while_others_are_served(
    node: Running, sent: bytes, trickled: bytes
) -> None:
    trickle = Trickle(node.port, sent, trickled).start()
    served: list[float] = []
    while trickle.thread.is_alive() and len(served) < 200:
        started = time.monotonic()
        answer = fetch(node.port, "/other")
        served.append(time.monotonic() - started)
        assert answer.status == 200
        time.sleep(0.02)
    answer = parse(trickle.join())
    assert assert_refused(answer, 408) == "The request did not arrive in time."
    assert REQUEST_TIMEOUT - 0.05 <= trickle.seconds <= REQUEST_TIMEOUT + 1, trickle.seconds
    assert len(served) >= 5, served
    assert max(served) < 0.25, served  # nobody waited behind the slow client


def test_a_late_body_after_the_answer_only_closes(node: Running) -> None:
    """The app answered without reading the body; the rest of it never comes: no 408 then."""
    with Client(node.port) as client:
        started = time.monotonic()
        client.send(post_head("/early", 100) + b"{")
        assert client.answer().status == 200
        client.send(b" ")
        assert client.rest_until_closed() == b""
        assert REQUEST_TIMEOUT - 0.05 <= time.monotonic() - started <= REQUEST_TIMEOUT + 1


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(node: Running) -> None:
    """Uvicorn alone never closes it: its idle timeout starts after an answer."""
    with Client(node.port) as client:
        started = time.monotonic()
        assert client.rest_until_closed() == b""  # closed without an answer
        assert KEEPALIVE - 0.1 <= time.monotonic() - started <= KEEPALIVE + 1


def test_keep_alive_requests_each_have_their_own_deadline(node: Running) -> None:
    """Idle longer than the request timeout between requests, and a request in two parts."""
    with Client(node.port) as client:
        for number in range(3):
            request = get(f"/{number}")
            client.send(request[:10])
            time.sleep(REQUEST_TIMEOUT / 3)
            client.send(request[10:])
            answer = client.answer()
            assert answer.status == 200, answer
            assert answer.json()["path"] == f"/{number}"
            time.sleep(REQUEST_TIMEOUT * 2)  # < KEEPALIVE
        client.send(get("/last", close=True))
        assert client.answer().status == 200
        assert client.closed()


@pytest.mark.parametrize("split", [None, 30], ids=["one write", "second request split"])
def test_pipelined_requests_are_answered_in_order(node: Running, split: int | None) -> None:
    both = get("/one") + get("/two") + post_head("/three", 5) + b"hello"
    with Client(node.port) as client:
        if split is None:
            client.send(both)
        else:
            cut = len(get("/one")) + split
            client.send(both[:cut])
            time.sleep(REQUEST_TIMEOUT / 2)
            client.send(both[cut:])
        answers = [client.answer() for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.json() for a in answers] == [
        {"path": "/one", "size": 0},
        {"path": "/two", "size": 0},
        {"path": "/three", "size": 5},
    ]


def test_expect_100_continue_still_works(node: Running) -> None:
    with Client(node.port) as client:
        head = post_head("/expect", 4).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
        client.send(head)
        while b"\r\n\r\n" not in client.buffer:
            client._fill("100 Continue")
        assert client.buffer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        client.buffer = client.buffer.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
        client.send(b"data")
        assert client.answer().json() == {"path": "/expect", "size": 4}


def test_no_timer_outlives_its_connection(node: Running) -> None:
    with Client(node.port) as client:
        peer = ("127.0.0.1", client.local_port)
        client.send(b"GET /half")  # a request in progress: its deadline is armed

        def ours() -> NodeHttpProtocol | None:
            for connection in list(node.server.server_state.connections):
                if isinstance(connection, NodeHttpProtocol) and connection.client == peer:
                    return connection
            return None

        protocol = wait_until(
            lambda: (found := ours()) is not None and found.request_timer is not None and found,
            WAIT,
            "the server reads the start of the request",
        )
    wait_until(lambda: ours() is None, WAIT, "the server drops the connection")
    assert protocol.request_timer is None


# WebSockets


def test_a_websocket_upgrade_still_works(node: Running) -> None:
    with websockets.sync.client.connect(
        f"ws://127.0.0.1:{node.port}/ws", open_timeout=WAIT, close_timeout=WAIT
    ) as ws:
        ws.send("hello")
        assert ws.recv(timeout=WAIT) == "hello"


@pytest.mark.parametrize(
    ("compression", "negotiated"),
    [
        # (server_no_context_takeover, client_no_context_takeover), as the client sees them
        ("message", (True, True)),
        ("context", (False, False)),
        ("off", None),
    ],
)
def test_websocket_compression_is_negotiated_as_configured(
    compression: str, negotiated: tuple[bool, bool] | None
) -> None:
    config = node_config()
    apply_server_options(config, ServerOptions(ws_compression=compression))
    running = start(uvicorn.Server(config))
    try:
        with websockets.sync.client.connect(
            f"ws://127.0.0.1:{running.port}/ws", open_timeout=WAIT, close_timeout=WAIT
        ) as ws:
            extensions = ws.protocol.extensions
            if negotiated is None:
                assert extensions == []
            else:
                (deflate,) = extensions
                assert (deflate.remote_no_context_takeover, deflate.local_no_context_takeover) == (
                    negotiated
                )
                assert deflate.remote_max_window_bits == deflate.local_max_window_bits == 12
            message = '{"type": "events", "data": [' + '{"type": 3}, ' * 500 + "{}]}"
            ws.send(message)
            assert ws.recv(timeout=WAIT) == message
    finally:
        stop(running)


def test_a_websocket_outlives_the_request_deadline_of_its_handshake(node: Running) -> None:
    """A handshake in two parts arms the deadline; the upgrade must cancel it."""
    handshake = get("/ws", *UPGRADE)
    with Client(node.port) as client:
        client.send(handshake[:20])
        time.sleep(REQUEST_TIMEOUT / 3)
        client.send(handshake[20:])
        while b"\r\n\r\n" not in client.buffer:
            client._fill("the handshake answer")
        assert client.buffer.startswith(b"HTTP/1.1 101 ")
        client.buffer = client.buffer.partition(b"\r\n\r\n")[2]
        time.sleep(REQUEST_TIMEOUT * 2)
        mask, payload = b"\x01\x02\x03\x04", b"still here"
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        client.send(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # a masked text frame
        while len(client.buffer) < 2 + len(payload):
            client._fill("the echoed frame")
        assert client.buffer[: 2 + len(payload)] == bytes([0x81, len(payload)]) + payload


# The worker: options and shutdown


def test_apply_server_options_sets_uvicorn_and_protocol_options() -> None:
    config = uvicorn.Config(app=app, log_config=None)
    options = ServerOptions(
        request_timeout=7.5,
        limit_request_line=1000,
        limit_request_fields=10,
        limit_request_field_size=500,
        ws_max_size=4096,
        ws_ping_interval=3.0,
        ws_ping_timeout=4.0,
        graceful_timeout=12.0,
    )
    assert apply_server_options(config, options) is options
    assert config.ws_max_size == 4096
    assert config.ws_ping_interval == 3.0
    assert config.ws_ping_timeout == 4.0
    assert config.timeout_graceful_shutdown == 12.0
    assert config.cobrowse_options is options  # type: ignore[attr-defined]
    assert config.ws_per_message_deflate is True

    config = uvicorn.Config(app=app, log_config=None)
    apply_server_options(config, ServerOptions(ws_compression="off"))
    assert config.ws_per_message_deflate is False

    config = uvicorn.Config(app=app, log_config=None)
    defaults = apply_server_options(config, None)
    assert defaults == ServerOptions()
    assert config.ws_max_size == 1_048_576
    assert config.timeout_graceful_shutdown == ServerOptions().graceful_timeout


def test_the_protocol_reads_its_limits_from_the_config() -> None:
    config = uvicorn.Config(app=app, log_config=None, lifespan="off")
    apply_server_options(config, ServerOptions(request_timeout=2.0, limit_request_fields=7))
    loop = asyncio.new_event_loop()
    try:
        protocol = NodeHttpProtocol(config, uvicorn.server.ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    assert protocol.request_timeout == 2.0
    assert protocol.limit_request_fields == 7
    assert protocol.limit_request_line == 8190


def test_the_worker_configures_uvicorn_for_the_node() -> None:
    kwargs = NodeWorker.CONFIG_KWARGS
    assert kwargs["http"] is NodeHttpProtocol
    assert kwargs["loop"] == "uvloop"
    assert kwargs["ws"] is NodeWebSocketProtocol
    assert kwargs["lifespan"] == "on"
    assert kwargs["proxy_headers"] is False
    assert kwargs["access_log"] is False


class HookedApp:
    """An ASGI app told before shutdown, recording how many connections were still open."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.server: uvicorn.Server | None = None
        self.open_at_hook: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    async def before_shutdown(self) -> None:
        assert self.server is not None
        self.open_at_hook.append(len(self.server.server_state.connections))
        if self.fail:
            raise RuntimeError("a failing hook must not stop the shutdown")


@pytest.mark.parametrize("fail", [False, True], ids=["hook", "failing hook"])
def test_node_server_tells_the_app_before_closing_connections(fail: bool) -> None:
    hooked = HookedApp(fail)
    server = NodeServer(node_config(hooked))
    hooked.server = server
    running = start(server)
    try:
        with Client(running.port) as client:
            client.send(get("/"))
            assert client.answer().status == 200  # the connection stays open, kept alive
            running.server.should_exit = True
            assert client.closed()  # the shutdown closes it, after the hook
        running.thread.join(WAIT)
        assert not running.thread.is_alive(), "the server did not stop"
    finally:
        stop(running)
    assert hooked.open_at_hook == [1]


GUNICORN_APP = """
from cobrowse.config.settings import ServerOptions
from pathlib import Path

class App:
    server_options = ServerOptions(request_timeout=0.5)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def before_shutdown(self):
        Path(__file__).with_name("before_shutdown").write_text("called")

app = App()
"""


def fetch_when_up(port: int) -> int:
    """GET / once the server answers; its status, or 0 while it does not."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(get("/", close=True))
            return int(sock.recv(100).split()[1])
    except (OSError, IndexError, ValueError):
        return 0


@pytest.mark.integration
def test_under_gunicorn_the_worker_applies_the_apps_options_and_hook(tmp_path: Path) -> None:
    (tmp_path / "tiny_app.py").write_text(GUNICORN_APP)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    argv = [sys.executable, "-m", "gunicorn", "--chdir", str(tmp_path), "--workers", "1"]
    argv += ["--worker-class", "cobrowse.ops.worker.NodeWorker", "--graceful-timeout", "5"]
    argv += ["--bind", f"fd://{listener.fileno()}", "tiny_app:app"]
    log = (tmp_path / "gunicorn.log").open("wb")
    gunicorn = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        pass_fds=[listener.fileno()],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    try:
        wait_until(lambda: fetch_when_up(port) == 200, 20, "gunicorn serves")
        trickle = Trickle(port, b"G", get("/slow", *fields(20))[1:]).start()
        assert_refused(parse(trickle.join()), 408)  # the app's request_timeout: 0.5 s
        assert trickle.seconds <= 1.5, trickle.seconds
        gunicorn.send_signal(signal.SIGTERM)
        assert gunicorn.wait(15) == 0
        assert (tmp_path / "before_shutdown").read_text() == "called"
    finally:
        if gunicorn.poll() is None:
            os.killpg(gunicorn.pid, signal.SIGKILL)
            gunicorn.wait(5)
        log.close()
        listener.close()
