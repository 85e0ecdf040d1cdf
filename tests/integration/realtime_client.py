"""A small synchronous client of the realtime channel for tests: real WebSockets, deadlines."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

ORIGIN = "http://localhost:8080"
DEADLINE_S = 10.0


class ClosedError(AssertionError):
    """The server closed the socket where a frame was expected."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass
class Peer:
    """One participant's channel."""

    socket: ClientConnection
    user_token: str
    received: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, base: str, user_token: str, origin: str | None = ORIGIN, **extra: Any) -> Peer:
        url = base.replace("http://", "ws://", 1) + f"/rest/live/users/{user_token}/channel"
        socket = connect(url, origin=origin, open_timeout=DEADLINE_S, legacy=True, **extra)  # type: ignore[arg-type]
        return cls(socket, user_token)

    def send(self, frame: dict[str, Any]) -> None:
        self.socket.send(json.dumps(frame))

    def hello(self, last_seq: int = 0, **fields: Any) -> dict[str, Any]:
        self.send({"type": "hello", "lastSeq": last_seq, **fields})
        welcome = self.next()
        assert welcome["type"] == "welcome", welcome
        return welcome

    def next(self, timeout: float = DEADLINE_S) -> dict[str, Any]:
        """Return the next frame; raise ClosedError if the socket closes, or TimeoutError."""
        try:
            text = self.socket.recv(timeout=timeout)
        except ConnectionClosed as closed:
            received = closed.rcvd
            raise ClosedError(
                received.code if received else None, received.reason if received else ""
            ) from None
        frame: dict[str, Any] = json.loads(text)
        self.received.append(frame)
        return frame

    def expect(self, kind: str, timeout: float = DEADLINE_S, **fields: Any) -> dict[str, Any]:
        """Return the next frame of `kind`, skipping others; fail after `timeout`."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind!r} frame within {timeout} s")
            frame = self.next(left)
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    def close_code(self, timeout: float = DEADLINE_S) -> int | None:
        """Read until the server closes; return its close code (fail after `timeout`)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not closed within {timeout} s")
            try:
                self.next(left)
            except ClosedError as closed:
                return closed.code

    def silent_for(self, seconds: float) -> bool:
        """Return whether nothing arrives for `seconds`."""
        try:
            self.socket.recv(timeout=seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.socket.close()


def refused_status(base: str, user_token: str, origin: str) -> tuple[int, dict[str, Any]]:
    """Return the HTTP status and JSON body of a handshake the node refuses."""
    try:
        Peer.open(base, user_token, origin=origin).close()
    except InvalidStatus as refused:
        response = refused.response
        return response.status_code, json.loads(response.body or b"{}")
    raise AssertionError("the handshake was accepted")


@dataclass
class LiveSession:
    """A session created over REST, with its customer's tokens."""

    base: str
    session_token: str
    user_token: str
    created: dict[str, Any]

    @classmethod
    def create(cls, base: str, **body: Any) -> LiveSession:
        answer = requests.post(f"{base}/rest/live/sessions", json=body or None, timeout=5)
        assert answer.status_code == 200, answer.text
        created = answer.json()
        return cls(base, created["sessionToken"], created["userToken"], created)

    def join(self, name: str = "Agent", expect: int = 200) -> dict[str, Any]:
        answer = requests.post(
            f"{self.base}/rest/live/sessions/{self.session_token}/join",
            json={"name": name},
            headers={"Origin": ORIGIN},
            timeout=5,
        )
        assert answer.status_code == expect, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def stop(self) -> dict[str, Any]:
        answer = requests.get(
            f"{self.base}/rest/live/users/{self.user_token}/session/stop", timeout=5
        )
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


def snapshot(marker: str = "page") -> list[dict[str, Any]]:
    """A Meta event and a FullSnapshot: what rrweb records first."""
    return [
        {"type": 4, "data": {"href": f"http://localhost:8080/{marker}", "width": 800}},
        {"type": 2, "data": {"node": {"type": 0, "childNodes": []}, "marker": marker}},
    ]


def incremental(number: int) -> list[dict[str, Any]]:
    return [{"type": 3, "data": {"source": 2, "number": number}}]


def connect_pair(session: LiveSession, name: str = "Agent") -> tuple[Peer, Peer, dict[str, Any]]:
    """Open the customer and an agent, consent, and have the first full snapshot delivered."""
    joined = session.join(name)
    customer = Peer.open(session.base, session.user_token)
    customer.hello()
    agent = Peer.open(session.base, joined["userToken"])
    agent.hello()
    customer.expect("join-request", userId=joined["userId"])
    customer.send({"type": "consent", "userId": joined["userId"], "accept": True})
    customer.expect("snapshot-request")
    customer.send({"type": "events", "cseq": 1, "data": snapshot()})
    customer.expect("ack", cseq=1)
    agent.expect("events", cseq=1)
    return customer, agent, joined


class StalledPeer:
    """A participant whose socket stops reading: a browser tab frozen, a saturated link.

    A real client library keeps reading into its own memory; this one reads nothing until told
    to, so the node meets TCP backpressure (sans-I/O `websockets` over a raw socket).
    """

    def __init__(self, base: str, user_token: str) -> None:
        import socket
        from urllib.parse import urlsplit

        from websockets.client import ClientProtocol
        from websockets.protocol import State
        from websockets.uri import parse_uri

        url = base.replace("http://", "ws://", 1) + f"/rest/live/users/{user_token}/channel"
        parts = urlsplit(url)
        self.sock = socket.socket()
        # Before connecting: a tiny window, no autotuning.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((parts.hostname, parts.port))
        self.sock.settimeout(DEADLINE_S)
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        request = self.protocol.connect()
        request.headers["Origin"] = ORIGIN
        self.protocol.send_request(request)
        self._flush()
        self.frames: list[dict[str, Any]] = []
        while self.protocol.state is State.CONNECTING:
            self._read()
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def _read(self) -> None:
        from websockets.frames import Opcode

        data = self.sock.recv(65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if getattr(event, "opcode", None) is Opcode.TEXT:
                self.frames.append(json.loads(event.data))  # type: ignore[union-attr]
        self._flush()

    def send(self, frame: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(frame).encode())
        self._flush()

    def read_until(self, done: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Read frames until `done(frame)` holds for one; return them all."""
        end = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < end:
            for frame in self.frames[seen:]:
                seen += 1
                if done(frame):
                    return self.frames
            self._read()
        raise TimeoutError("the stalled peer never got the frame it waits for")

    def close(self) -> None:
        self.sock.close()
