"""Locust scenarios for live sessions: customers stream a real page recording, agents watch it.

    locust -f loadtests/live.py --headless -H http://127.0.0.1:8700 -u 100 -r 20 -t 60s
    locust --config loadtests/live.conf --headless -u 100 -r 20 -t 60s   # the same, its defaults

`-u` counts users: a pair is a customer and an agent (equal weights), so `-u 100` is 50 pairs.

- `LiveCustomer`, as the customer script (cobrowse/static/cobrowse.js): Create Session through
  the cluster URL, open the channel under `sessionServerUrl`, hello, hand the session to the
  agents; accept the agent that asks (join-request -> consent); on snapshot-request, replay the
  rrweb recording of the demo site (loadtests/fixtures/demo-recording.json) at its recorded
  pace times `--live-speed`, one `events` frame per recorded batch, looping (each loop starts
  over with its first full snapshot). The first pass starts at one of the recording's five full
  snapshots, chosen at random (`--live-start first`: the first), so that customers are not all
  in the recording's busy parts at once. A Custom event first in every batch carries its send time
  (rrweb type 5, tag `loadtest`, payload `{"sent": epoch ms}`). Unacknowledged batches are kept;
  a lost connection is reopened with backoff (0.5 s doubling to 10 s), resuming with `lastSeq`
  and sending the unacknowledged batches again, as the real script does.
- `LiveAgent`, as the agent console: takes a session a customer handed over, joins it
  (`POST .../sessions/{code}/join` with an allowed Origin), opens its channel, and checks every
  message (loadtests/livechecks.py): `seq` strictly increasing (reset after a resync), no gap
  and no duplicate in the customer's `cseq`, the full snapshot first. It reconnects like the
  customer, with its `lastSeq`.

Every message is a Locust request event (type `WS`, named `agent: events`, `customer: ack`...):
the response time is the delivery latency (receive time minus the batch's send time; for
control messages, the time since what caused them), the length its bytes. The log replayed to an
agent when it (re)connects is `agent: events (catch-up)`: late by design, out of the live
latency. A protocol violation fails its message with a named reason (`lost: ...`,
`duplicate: ...`, `out of order: ...`, `missing snapshot: ...`), and so do a failed join
(`/sessions/[token]/join`) and an agent not accepted within `--live-consent-timeout`
(`agent: consent`). At the end the SLOs (loadtests/slo.py, `evaluate_live`) are checked and the
verdict becomes the exit code.
"""

from __future__ import annotations

import contextlib
import logging
import random
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import gevent
import orjson
import slo
import websocket
from gevent.queue import Empty, Queue
from livechecks import (
    ENDED,
    FIXTURE,
    STOP_CODES,
    UNDELIVERED,
    Recording,
    Replay,
    StreamChecker,
    backoff_s,
    undelivered,
)
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from pool import SessionPool, SharedSession

log = logging.getLogger("cobrowse.loadtest.live")

DEFAULT_ORIGIN = "http://localhost:8080"
DEFAULT_CONTEXT = "/cobrowse"
DEFAULT_SPEED = 1.0
DEFAULT_CONSENT_TIMEOUT_S = 10.0
DEFAULT_UNDELIVERED_AFTER_S = 5.0
REQUEST_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
IDLE_WAIT_S = 0.5  # an agent with nothing to join waits this long (or until a publish)
LATE_S = 0.1  # a batch sent this much after its time in the recording counts as late
LOOP_PROBE_S = 0.1  # how often the event loop's lag is measured
MAX_PENDING_BYTES = 4 * 1024 * 1024  # as cobrowse.js: past it, the backlog gives way to a snapshot
ACK_MEMORY_S = 60.0  # acknowledgements kept per session, for the check at the end
WS = "WS"

POOL = SessionPool()
TALLY: Counter[str] = Counter()
PAIRS: set[LivePair] = set()  # sessions with a customer in this process


class ProtocolViolationError(Exception):
    """A message that breaks REALTIME.md's invariants (its text names which, and no token)."""


@dataclass(eq=False)
class LivePair(SharedSession):
    """A session handed from its customer to an agent, and what both sides saw of it."""

    join_sent_ms: float = 0.0  # the agent's join request (epoch ms)
    consent_sent_ms: float = 0.0  # the customer's consent
    acks: deque[tuple[int, float]] = field(default_factory=deque)  # (cseq, monotonic s)
    reached: int | None = None  # the highest cseq the agent received
    watched: bool = False  # an agent channel is open on it


def _option(environment: Environment, name: str, default: Any) -> Any:
    value = getattr(environment.parsed_options, name, None)
    return default if value is None else value


def _now_ms() -> float:
    return time.time() * 1000


@cache
def _recording(path: str) -> Recording:
    return Recording.load(Path(path))


def channel_url(server_url: str, user_token: str) -> str:
    """The channel's WebSocket URL under a node's `sessionServerUrl`."""
    base = server_url.rstrip("/")
    scheme = "wss" if base.startswith("https:") else "ws"
    return f"{scheme}:{base.split(':', 1)[1]}/rest/live/users/{user_token}/channel"


@dataclass(frozen=True, slots=True)
class Closed:
    """The channel closed: the node's close code, or None (a network failure)."""

    code: int | None
    reason: str = ""


def _close_code(data: bytes) -> int | None:
    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None


def open_channel(url: str, origin: str) -> websocket.WebSocket:
    """Open a channel (a blocking handshake: one greenlet). Raises on refusal."""
    return websocket.create_connection(
        url,
        timeout=CONNECT_TIMEOUT_S,
        origin=origin,
        skip_utf8_validation=True,  # orjson validates what it parses, in C
        enable_multithread=True,  # the reader answers pings while another greenlet sends
    )


def read_frame(ws: websocket.WebSocket) -> bytes | Closed:
    """Return the next text frame, or Closed; pings are answered on the way."""
    try:
        opcode, data = ws.recv_data()
    except Exception as error:  # reset, timeout, closed socket: a network failure
        return Closed(None, type(error).__name__)
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        return Closed(_close_code(data))
    return bytes(data)


def close_quietly(ws: websocket.WebSocket | None) -> None:
    if ws is None:
        return
    with contextlib.suppress(Exception):  # already gone
        ws.close(timeout=1)


class LiveClient(FastHttpUser):
    """A participant: REST under the context path through the cluster URL, no redirect followed."""

    abstract = True
    wait_time = constant(0)
    network_timeout = REQUEST_TIMEOUT_S
    connection_timeout = REQUEST_TIMEOUT_S

    def on_start(self) -> None:
        context = _option(self.environment, "context_path", DEFAULT_CONTEXT).rstrip("/")
        self.context_path = context
        self.api = f"{context}/rest/live"
        self.origin = _option(self.environment, "origin", DEFAULT_ORIGIN)
        self.recording = _recording(str(_option(self.environment, "live_recording", FIXTURE)))
        self.speed = float(_option(self.environment, "live_speed", DEFAULT_SPEED))
        self.random_start = _option(self.environment, "live_start", "random") == "random"
        self.ws: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None

    def on_stop(self) -> None:
        if self.reader is not None:
            self.reader.kill(block=False)
        close_quietly(self.ws)
        self.ws = None

    def report(self, name: str, latency_ms: float, size: int, problem: str | None = None) -> None:
        self.environment.events.request.fire(
            request_type=WS,
            name=name,
            response_time=max(0.0, latency_ms),
            response_length=size,
            exception=ProtocolViolationError(problem) if problem else None,
            context={},
        )

    def server_url(self, answer: dict[str, Any]) -> str:
        url = answer.get("sessionServerUrl")
        return str(url) if isinstance(url, str) and url else f"{self.host}{self.context_path}"


class LiveCustomer(LiveClient):
    """The customer's browser: one live session at a time, streaming while an agent watches."""

    weight = 1

    @task
    def live_session(self) -> None:
        with self.client.post(
            f"{self.api}/sessions", name="/sessions", allow_redirects=False, catch_response=True
        ) as response:
            answer = _json(response.content)
            if response.status_code != 200 or not isinstance(answer.get("userToken"), str):
                response.failure(f"create: status {response.status_code}")
                gevent.sleep(1)
                return
        TALLY["sessions"] += 1
        pair = LivePair(str(answer["sessionToken"]), str(answer.get("sessionServerName")))
        PAIRS.add(pair)
        try:
            CustomerChannel(self, pair, answer["userToken"], self.server_url(answer)).run()
        finally:
            pair.closed = True
            PAIRS.discard(pair)


class CustomerChannel:
    """The customer's side of one session: a reader greenlet feeds this one, the only writer."""

    def __init__(self, user: LiveCustomer, pair: LivePair, user_token: str, server: str) -> None:
        self.user = user
        self.pair = pair
        self.url = channel_url(server, user_token)
        self.recording = user.recording
        self.replay = Replay(user.recording, user.speed)
        self.inbox: Queue[tuple[int, bytes | Closed, float]] = Queue()
        self.generation = 0  # one per connection: frames of an old one are ignored
        self.connected = False  # welcomed on the current connection
        self.connect_started_ms = 0.0
        self.reconnect_at = 0.0
        self.retries = 0
        self.last_seq = 0
        self.welcome_seq = 0
        self.cseq = 0
        self.pending: deque[tuple[int, bytes, float]] = deque()  # (cseq, frame, sent ms)
        self.pending_bytes = 0
        self.accepted: set[str] = set()
        self.streaming = False  # replaying: from a snapshot-request while an agent watches
        self.published = False
        self.finished = False

    def run(self) -> None:
        try:
            self.loop()
        finally:
            if self.user.reader is not None:
                self.user.reader.kill(block=False)
            close_quietly(self.user.ws)
            self.user.ws = None

    def loop(self) -> None:
        while not self.finished:
            deadlines = []
            if self.streaming:
                deadlines.append(self.replay.due_s())
            if self.user.ws is None:
                deadlines.append(self.reconnect_at)
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            try:
                generation, item, received_ms = self.inbox.get(timeout=wait)
            except Empty:
                pass
            else:
                if generation == self.generation:
                    self.receive(item, received_ms)
            now = time.monotonic()
            if self.user.ws is None and now >= self.reconnect_at and not self.finished:
                self.connect()
            if self.streaming and not self.finished and now >= self.replay.due_s():
                self.send_batch(now)

    # the connection
    def connect(self) -> None:
        user = self.user
        self.generation += 1
        self.connected = False
        self.connect_started_ms = _now_ms()
        try:
            ws = open_channel(self.url, user.origin)
        except websocket.WebSocketBadStatusException as refused:
            user.report("customer: connect", _now_ms() - self.connect_started_ms, 0, str(refused))
            if refused.status_code in (403, 404):
                self.finished = True
                return
            self.retry(None)
            return
        except Exception as error:
            problem = f"connect: {type(error).__name__}"
            user.report("customer: connect", _now_ms() - self.connect_started_ms, 0, problem)
            self.retry(None)
            return
        ws.settimeout(None)
        user.ws = ws
        user.reader = gevent.spawn(self.read, ws, self.generation)
        self.send(b'{"type":"hello","lastSeq":%d}' % self.last_seq)

    def read(self, ws: websocket.WebSocket, generation: int) -> None:
        while True:
            item = read_frame(ws)
            self.inbox.put((generation, item, _now_ms()))
            if isinstance(item, Closed):
                return

    def send(self, frame: bytes) -> None:
        ws = self.user.ws
        if ws is None:
            return
        try:
            ws.send(frame)
        except Exception as error:  # the reader sees the close too; this connection is over
            self.closed(Closed(None, type(error).__name__))

    def retry(self, code: int | None) -> None:
        self.reconnect_at = time.monotonic() + backoff_s(self.retries, code)
        self.retries += 1

    def closed(self, closed: Closed) -> None:
        user = self.user
        if user.reader is not None and user.reader is not gevent.getcurrent():
            user.reader.kill(block=False)
        close_quietly(user.ws)
        user.ws = None
        self.generation += 1
        self.connected = False
        if closed.code == ENDED:
            self.finished = True
        elif closed.code in STOP_CODES:
            user.report("customer: closed", 0, 0, f"closed by the node with {closed.code}")
            self.finished = True
        else:
            TALLY["reconnects (customer)"] += 1
            self.retry(closed.code)

    # what the node sends
    def receive(self, item: bytes | Closed, received_ms: float) -> None:
        if isinstance(item, Closed):
            self.closed(item)
            return
        frame = _json(item)
        kind = str(frame.get("type"))
        seq = frame.get("seq")
        # At or below the welcome's seq: the log replayed on reconnection, already acted upon
        # (the welcome's participants are the present).
        old = isinstance(seq, int) and seq <= self.welcome_seq
        if isinstance(seq, int):
            self.last_seq = seq
        problem = None
        if kind == "ack":
            since = self.acked(frame.get("cseq"), received_ms)
        elif kind == "welcome":
            since = received_ms - self.connect_started_ms
            self.welcome(frame)
        elif kind == "error":
            TALLY["errors from the node"] += 1
            since, problem = 0.0, f"error: {frame.get('request')} refused"
        else:
            since = 0.0 if old else self.control(kind, frame, received_ms)
        self.user.report(f"customer: {kind}", since, len(item), problem)

    def control(self, kind: str, frame: dict[str, Any], received_ms: float) -> float:
        """Act on a live control message; return the time since what caused it (ms), or 0."""
        pair = self.pair
        if kind == "join-request":
            self.consent(frame.get("userId"))
            return received_ms - pair.join_sent_ms if pair.join_sent_ms else 0.0
        if kind == "joined":
            self.accepted.add(str(frame.get("userId")))
            return received_ms - pair.consent_sent_ms if pair.consent_sent_ms else 0.0
        if kind == "snapshot-request":
            if self.accepted:
                self.streaming = True
                self.restart_replay()
            if frame.get("reason") == "agent" and pair.consent_sent_ms:
                return received_ms - pair.consent_sent_ms
        elif kind == "left":
            self.agent_left(str(frame.get("userId")))
        elif kind == "ended":
            self.finished = True
        return 0.0

    def welcome(self, frame: dict[str, Any]) -> None:
        self.connected = True
        self.retries = 0
        seq = frame.get("seq")
        self.welcome_seq = seq if isinstance(seq, int) else 0
        self.accepted = set()
        waiting = []
        for participant in frame.get("participants") or ():
            if participant.get("role") != "agent":
                continue
            if participant.get("state") == "accepted":
                self.accepted.add(str(participant.get("userId")))
            elif participant.get("state") == "pending":
                waiting.append(participant.get("userId"))
        self.streaming = self.streaming and bool(self.accepted)
        for batch in list(self.pending):  # the node acknowledges a duplicate again, stores it once
            self.send(batch[1])
        if self.pending_bytes > MAX_PENDING_BYTES:
            self.drop_backlog()
        for user_id in waiting:
            self.consent(user_id)
        if not self.published:
            self.published = True
            POOL.publish(self.pair)  # the channel is open: an agent may ask

    def consent(self, user_id: object) -> None:
        self.pair.consent_sent_ms = _now_ms()
        self.send(orjson.dumps({"type": "consent", "userId": user_id, "accept": True}))

    def acked(self, cseq: object, received_ms: float) -> float:
        if not isinstance(cseq, int):
            return 0.0
        since = 0.0
        while self.pending and self.pending[0][0] <= cseq:
            done, frame, sent = self.pending.popleft()
            self.pending_bytes -= len(frame)
            if done == cseq:
                since = received_ms - sent
        TALLY["batches acked"] += 1
        now = time.monotonic()
        acks = self.pair.acks
        acks.append((cseq, now))
        while len(acks) > 1 and acks[1][1] < now - ACK_MEMORY_S:
            acks.popleft()
        return since

    def agent_left(self, user_id: str) -> None:
        self.accepted.discard(user_id)
        self.streaming = self.streaming and bool(self.accepted)
        if not self.accepted and not self.pair.closed:
            # Its place is free: hand the session over again, as a new pair.
            TALLY["agents left"] += 1
            PAIRS.discard(self.pair)
            self.pair.closed = True
            self.pair = LivePair(self.pair.session_token, self.pair.node)
            PAIRS.add(self.pair)
            POOL.publish(self.pair)

    def drop_backlog(self) -> None:
        """Offline for long: drop what waits, a full snapshot replaces it (as cobrowse.js)."""
        TALLY["backlogs dropped"] += 1
        self.pending.clear()
        self.pending_bytes = 0
        self.restart_replay()

    def restart_replay(self) -> None:
        """Record a full snapshot now: one of the recording's, then on at its pace."""
        snapshots = self.recording.snapshots
        index = random.choice(snapshots) if self.user.random_start else snapshots[0]  # noqa: S311
        self.replay.restart(time.monotonic(), index)

    # the recording
    def send_batch(self, now: float) -> None:
        late = now - self.replay.due_s()
        index = self.replay.take()
        self.cseq += 1
        sent = _now_ms()
        frame = self.recording.frame(index, self.cseq, sent)
        self.pending.append((self.cseq, frame, sent))
        self.pending_bytes += len(frame)
        TALLY["batches sent"] += 1
        if late > LATE_S:
            TALLY["late batches"] += 1
        if self.connected:
            self.send(frame)
        elif self.pending_bytes > MAX_PENDING_BYTES:
            self.drop_backlog()


class LiveAgent(LiveClient):
    """The agent console: joins a session a customer handed over, watches it, checks it."""

    weight = 1

    @task
    def watch(self) -> None:
        pair = POOL.claim(timeout_s=IDLE_WAIT_S)
        if pair is None:
            return
        assert isinstance(pair, LivePair)
        joined = self.join(pair)
        if joined is None:
            pair.claimed = False
            POOL.publish(pair)  # let another attempt it
            gevent.sleep(1)
            return
        TALLY["agents joined"] += 1
        AgentChannel(self, pair, joined).run()

    def join(self, pair: LivePair) -> dict[str, Any] | None:
        url = f"{self.api}/sessions/{pair.session_token}/join"
        name = "/sessions/[token]/join"
        pair.join_sent_ms = _now_ms()
        for _ in range(2):  # behind HAProxy: the node's 307 to the owner, followed once
            with self.client.post(
                url,
                name=name,
                json={"name": "Load test"},
                headers={"Origin": self.origin},
                allow_redirects=False,
                catch_response=True,
            ) as response:
                location = response.headers.get("Location") if response.headers else None
                follow = _option(self.environment, "follow_redirects", False)
                if response.status_code == 307 and location and follow:
                    TALLY["redirected"] += 1
                    response.success()
                    url, name = location, f"{name} (redirected)"
                    continue
                answer = _json(response.content)
                if response.status_code == 200 and isinstance(answer.get("userToken"), str):
                    return answer
                TALLY["join failures"] += 1
                response.failure(f"join: status {response.status_code}")
                return None
        return None


class AgentChannel:
    """The agent's side of one session: read, check and report every frame; reconnect."""

    def __init__(self, user: LiveAgent, pair: LivePair, joined: dict[str, Any]) -> None:
        self.user = user
        self.pair = pair
        self.user_id = str(joined.get("userId"))
        self.url = channel_url(user.server_url(joined), str(joined["userToken"]))
        self.checker = StreamChecker()
        self.accepted = False
        self.done = False  # the session ended, or this agent left it
        self.retries = 0
        timeout = float(
            _option(user.environment, "live_consent_timeout", DEFAULT_CONSENT_TIMEOUT_S)
        )
        self.watchdog = gevent.spawn_later(timeout, self.consent_timed_out)

    def consent_timed_out(self) -> None:
        if not self.accepted:
            TALLY["consent timeouts"] += 1
            self.user.report(
                "agent: consent", _now_ms() - self.pair.join_sent_ms, 0, "consent timeout"
            )

    def run(self) -> None:
        self.pair.watched = True
        try:
            while True:
                code = self.session()
                if code in STOP_CODES:
                    return
                TALLY["reconnects (agent)"] += 1
                gevent.sleep(backoff_s(self.retries, code))
                self.retries += 1
        finally:
            self.watchdog.kill(block=False)
            self.pair.watched = False

    def session(self) -> int | None:
        """One connection: hello, then frames until it closes; return the close code."""
        user = self.user
        started = _now_ms()
        try:
            ws = open_channel(self.url, user.origin)
        except websocket.WebSocketBadStatusException as refused:
            user.report("agent: connect", _now_ms() - started, 0, str(refused))
            return 4404 if refused.status_code in (403, 404) else None
        except Exception as error:
            problem = f"connect: {type(error).__name__}"
            user.report("agent: connect", _now_ms() - started, 0, problem)
            return None
        ws.settimeout(None)
        user.ws = ws
        checker = self.checker
        if checker.last_seq == 0:
            checker.last_cseq = None  # from the last full snapshot again
        try:
            ws.send(b'{"type":"hello","lastSeq":%d}' % checker.last_seq)
            while True:
                item = read_frame(ws)
                if isinstance(item, Closed):
                    return item.code
                self.receive(item, _now_ms(), started)
                if self.done:
                    return ENDED
        except Exception:  # a send on a socket the node closed
            return None
        finally:
            close_quietly(ws)
            user.ws = None

    def receive(self, data: bytes, received_ms: float, connect_started_ms: float) -> None:
        frame = _json(data)
        checker = self.checker
        before = (checker.lost, checker.duplicated, checker.out_of_order, checker.missing_snapshots)
        checked = checker.check(frame)
        kind = checked.kind
        since = 0.0
        # The log replayed on (re)connection is late by design: reported apart from live.
        name = f"agent: {kind} (catch-up)" if checked.history else f"agent: {kind}"
        if kind == "events":
            cseq = frame.get("cseq")
            if isinstance(cseq, int) and (self.pair.reached is None or cseq > self.pair.reached):
                self.pair.reached = cseq
            if checked.sent_ms is not None:
                since = received_ms - checked.sent_ms
            if checked.history:
                TALLY["catch-up messages"] += 1
            else:
                TALLY["delivered"] += 1
            self.accept(received_ms)
        elif kind == "welcome":
            since = received_ms - connect_started_ms
            self.retries = 0
        elif kind == "joined" and frame.get("userId") == self.user_id:
            if not checked.history and self.pair.consent_sent_ms:
                since = received_ms - self.pair.consent_sent_ms
            self.accept(received_ms)
        elif kind == "resync":
            TALLY["resyncs"] += 1
        elif kind == "ended" or (kind == "left" and frame.get("userId") == self.user_id):
            self.done = True
        if checked.violations:
            after = (checker.lost, checker.duplicated, checker.out_of_order)
            TALLY["lost"] += after[0] - before[0]
            TALLY["duplicated"] += after[1] - before[1]
            TALLY["out of order"] += after[2] - before[2]
            TALLY["missing snapshots"] += checker.missing_snapshots - before[3]
        self.user.report(name, since, len(data), "; ".join(checked.violations) or None)

    def accept(self, received_ms: float) -> None:
        if not self.accepted:
            self.accepted = True
            self.pair.joined.set()
            self.user.report("agent: consent", received_ms - self.pair.join_sent_ms, 0)


def _json(body: bytes | str | None) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("cobrowse live sessions")
    group.add_argument(
        "--live-speed",
        type=float,
        default=DEFAULT_SPEED,
        help="replay the recording at this multiple of its pace (1)",
    )
    group.add_argument(
        "--live-recording", default=str(FIXTURE), help="the rrweb recording customers replay"
    )
    group.add_argument(
        "--live-start",
        choices=("random", "first"),
        default="random",
        help="where a customer's replay starts: at a full snapshot of the recording chosen at "
        "random (customers out of step, as real ones), or at the first (all in step)",
    )
    group.add_argument(
        "--live-consent-timeout",
        type=float,
        default=DEFAULT_CONSENT_TIMEOUT_S,
        help="seconds from an agent's join to its acceptance before it counts as a timeout",
    )
    group.add_argument(
        "--live-undelivered-after",
        type=float,
        default=DEFAULT_UNDELIVERED_AFTER_S,
        help="at the end, a batch acknowledged this many seconds ago and not delivered is lost",
    )
    group.add_argument("--origin", default=DEFAULT_ORIGIN, help="an allowed Origin")
    group.add_argument("--context-path", default=DEFAULT_CONTEXT, help="the cluster's path")
    group.add_argument(
        "--follow-redirects",
        action="store_true",
        help="agents follow a node's 307 on join to the owner (HAProxy, nginx)",
    )
    limits = slo.LiveThresholds()
    group.add_argument(
        "--slo-delivery-p99-ms",
        type=float,
        default=limits.delivery_p99_ms,
        help="SLO: highest p99 of the live delivery latency to agents (ms)",
    )
    for name, default, what in (
        ("lost", limits.max_lost, "batches lost"),
        ("duplicated", limits.max_duplicated, "batches delivered twice"),
        ("out-of-order", limits.max_out_of_order, "messages out of order"),
        ("missing-snapshots", limits.max_missing_snapshots, "streams without a snapshot first"),
        ("join-failures", limits.max_join_failures, "failed joins"),
        ("consent-timeouts", limits.max_consent_timeouts, "agents not accepted in time"),
    ):
        group.add_argument(f"--slo-max-{name}", type=int, default=default, help=f"SLO: most {what}")
    group.add_argument(
        "--slo-max-failure-ratio",
        type=float,
        default=limits.max_failure_ratio,
        help="SLO: most failed requests and messages, as a share of all",
    )
    group.add_argument("--outcome-file", help="write the SLO verdict and counters here as JSON")


LOOP_PROBE: list[gevent.Greenlet] = []


def probe_loop(environment: Environment, interval_s: float = LOOP_PROBE_S) -> None:
    """Report how late this process's event loop wakes a sleeping greenlet (`LOCUST event loop
    lag`): every message is received on this loop, so its lag is in every latency measured
    here. A high lag means the load generator, not the cluster, is the limit."""
    while True:
        started = time.perf_counter()
        gevent.sleep(interval_s)
        lag_ms = (time.perf_counter() - started - interval_s) * 1000
        environment.events.request.fire(
            request_type="LOCUST",
            name="event loop lag",
            response_time=max(0.0, lag_ms),
            response_length=0,
            exception=None,
            context={},
        )


@events.test_start.add_listener
def reset(environment: Environment, **_kwargs: Any) -> None:
    POOL.clear()
    TALLY.clear()
    PAIRS.clear()
    if environment.runner is not None and not isinstance(environment.runner, MasterRunner):
        LOOP_PROBE.append(gevent.spawn(probe_loop, environment))


@events.test_stop.add_listener
def stop_probe(environment: Environment, **_kwargs: Any) -> None:
    while LOOP_PROBE:
        LOOP_PROBE.pop().kill(block=False)


@events.test_stopping.add_listener
def count_undelivered(environment: Environment, **_kwargs: Any) -> None:
    """Before the users stop: batches acknowledged a while ago that no agent received are lost."""
    after_s = float(_option(environment, "live_undelivered_after", DEFAULT_UNDELIVERED_AFTER_S))
    before = time.monotonic() - after_s
    for pair in list(PAIRS):
        if not pair.watched:
            continue
        missing = undelivered(list(pair.acks), pair.reached, before)
        if missing:
            TALLY["undelivered"] += missing
            environment.events.request.fire(
                request_type=WS,
                name="agent: events",
                response_time=0,
                response_length=0,
                exception=ProtocolViolationError(UNDELIVERED),
                context={},
            )


@events.report_to_master.add_listener
def send_counters(client_id: str, data: dict[str, Any]) -> None:
    data["cobrowse_live_counters"] = dict(TALLY)
    TALLY.clear()


@events.worker_report.add_listener
def add_counters(client_id: str, data: dict[str, Any]) -> None:
    TALLY.update(data.get("cobrowse_live_counters", {}))


def measure(environment: Environment) -> slo.LiveMeasured:
    """What the run did, from Locust's statistics and the scenario's counters."""
    stats = environment.stats
    delivered = stats.get("agent: events", WS)
    runner = environment.runner
    return slo.LiveMeasured(
        delivered=TALLY["delivered"],
        delivery_p99_ms=float(delivered.get_response_time_percentile(0.99) or 0),
        lost=TALLY["lost"] + TALLY["undelivered"],
        duplicated=TALLY["duplicated"],
        out_of_order=TALLY["out of order"],
        missing_snapshots=TALLY["missing snapshots"],
        join_failures=TALLY["join failures"],
        consent_timeouts=TALLY["consent timeouts"],
        requests=stats.total.num_requests,
        failures=stats.total.num_failures,
        exceptions=len(runner.exceptions) if runner is not None else 0,
    )


def thresholds(environment: Environment) -> slo.LiveThresholds:
    limits = slo.LiveThresholds()
    return slo.LiveThresholds(
        delivery_p99_ms=_option(environment, "slo_delivery_p99_ms", limits.delivery_p99_ms),
        max_lost=_option(environment, "slo_max_lost", limits.max_lost),
        max_duplicated=_option(environment, "slo_max_duplicated", limits.max_duplicated),
        max_out_of_order=_option(environment, "slo_max_out_of_order", limits.max_out_of_order),
        max_missing_snapshots=_option(
            environment, "slo_max_missing_snapshots", limits.max_missing_snapshots
        ),
        max_join_failures=_option(environment, "slo_max_join_failures", limits.max_join_failures),
        max_consent_timeouts=_option(
            environment, "slo_max_consent_timeouts", limits.max_consent_timeouts
        ),
        max_failure_ratio=_option(environment, "slo_max_failure_ratio", limits.max_failure_ratio),
    )


@events.quitting.add_listener
def check_slos(environment: Environment, **_kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master judges the whole run
    verdict = slo.evaluate_live(measure(environment), thresholds(environment))
    counters = dict(sorted(TALLY.items()))
    log.info("counters: %s", ", ".join(f"{name} {count}" for name, count in counters.items()))
    (log.info if verdict.passed else log.error)(verdict.summary())
    environment.process_exit_code = verdict.exit_code(_option(environment, "exit_code_on_error", 1))
    outcome_file = _option(environment, "outcome_file", None)
    if outcome_file:
        slo.write_outcome(Path(outcome_file), verdict, counters)
