"""The channel's WebSocket: `GET <ctx>/rest/live/users/{userToken}/channel`, as raw ASGI.

The handshake is checked before anything is accepted: the path, the `Origin` (Falcon, Uvicorn
and Gunicorn do not check it on WebSockets: refused with HTTP 403 JSON, against cross-site
WebSocket hijacking), and the rate limit of `sessions.channel` (429 JSON). Then the socket is
accepted and speaks REALTIME.md: `hello` within `[realtime] helloTimeout`, `welcome`, the log
from `lastSeq`, then live frames both ways, each connection limited in frames and bytes per
second. Refusals use the documented close codes; nothing a client sends ever reaches a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from cobrowse.clock import Clock
from cobrowse.config.origins import OriginPolicy
from cobrowse.config.settings import NodeSettings, RealtimeSettings
from cobrowse.observe.accesslog import AccessLog, request_id_from, utc_timestamp
from cobrowse.realtime import messages
from cobrowse.realtime.hub import Channel, Hub
from cobrowse.realtime.messages import FrameError, RefusedError
from cobrowse.realtime.observe import RealtimeObserver
from cobrowse.realtime.service import LiveService
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.tokens import USER_TOKEN
from cobrowse.store import RateLimitStore, StoreUnavailableError
from cobrowse.store.live import LiveStore
from cobrowse.web.clientinfo import ClientResolver

log = logging.getLogger("cobrowse.realtime")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

OPERATION = "sessions.channel"
ROUTE = "/rest/live/users/{userToken}/channel"


class Budget:
    """A token bucket: `rate` per second, up to `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self, amount: float) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


class ChannelEndpoint:
    """Accept, run and close realtime channels."""

    def __init__(
        self,
        settings: NodeSettings,
        store: LiveStore,
        service: LiveService,
        hub: Hub,
        *,
        rate_limits: RateLimitStore,
        clients: ClientResolver,
        clock: Clock,
        observer: RealtimeObserver,
        access_log: AccessLog | None,
    ) -> None:
        cluster = settings.cluster
        self.prefix = f"{settings.context_path}/rest/live/users/"
        self.route = settings.context_path + ROUTE
        self.node_name = settings.name
        self.ring = ClusterRing(cluster.nodes)
        self.shared_store = cluster.store.shared
        self.origins: OriginPolicy = cluster.origins
        self.limits = cluster.security.rate_limits
        self.quarantine_ms = round(cluster.security.rate_limits.quarantine_delay * 1000)
        self.realtime: RealtimeSettings = cluster.realtime
        self.store = store
        self.service = service
        self.hub = hub
        self.rate_limits = rate_limits
        self.clients = clients
        self.clock = clock
        self.observer = observer
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        peer = (scope.get("client") or ("", 0))[0]
        client = self.clients.address_from(peer, _text(headers.get("x-forwarded-for")))
        request_id = request_id_from(_text(headers.get("x-request-id")))
        refusal = await self._check_handshake(scope, headers, client)
        if refusal is not None:
            status, body, reason = refusal
            self.observer.refused(reason)
            await self._reject(receive, send, status, body, request_id)
            self._log(started, client, request_id, status=status, event="refused")
            return
        connection = Connection(self, scope, receive, send, client)
        connection.opened = lambda role: self._log(
            started, client, request_id, status=101, event="open", role=role
        )
        code = await connection.run()
        self._log(
            started,
            client,
            request_id,
            status=101,
            event="close",
            code=code,
            role=connection.role,
            received=connection.received,
            sent=connection.channel.sent if connection.channel else 0,
        )

    async def _check_handshake(
        self, scope: Scope, headers: dict[str, bytes], client: str
    ) -> tuple[int, dict[str, str], str] | None:
        path: str = scope["path"]
        if not (path.startswith(self.prefix) and path.endswith("/channel")):
            return 404, {"errorMessage": "No WebSocket here."}, "path"
        origin = headers.get("origin")
        if origin is not None:
            _, rule = self.origins.rule_for_header(_text(origin) or "", False)
            if rule is None or not rule.allows(OPERATION):
                return (
                    403,
                    {
                        "errorMessage": "The Origin is not allowed to open a channel "
                        "([cross-origin] allowedOrigins).",
                        "request": OPERATION,
                    },
                    "origin",
                )
        limit = self.limits.limit_for(OPERATION)
        if limit > 0:
            try:
                decision = await self.rate_limits.hit(
                    client, OPERATION, self.clock.now_ms(), limit, self.quarantine_ms
                )
            except StoreUnavailableError:
                return 503, {"errorMessage": "The session store is unavailable."}, "store"
            if not decision.allowed:
                return (
                    429,
                    {"errorMessage": "Too many channels opened.", "request": OPERATION},
                    "rate",
                )
        return None

    @staticmethod
    async def _reject(
        receive: Receive, send: Send, status: int, body: dict[str, str], request_id: str
    ) -> None:
        """Refuse the handshake with an HTTP answer in the JSON error shape."""
        await receive()  # websocket.connect
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": orjson.dumps(body)})

    def _log(
        self,
        started: float,
        client: str,
        request_id: str,
        *,
        status: int,
        event: str,
        code: int | None = None,
        role: str | None = None,
        received: int = 0,
        sent: int = 0,
    ) -> None:
        if self.access_log is None:
            return
        seconds = time.perf_counter() - started
        self.access_log.record(
            {
                "time": utc_timestamp(time.time()),
                "method": "GET",
                "route": self.route,  # the template: the path holds a token
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client": client,
                "node": self.node_name,
                "request_id": request_id,
                # The worker too: channels of one session may be on different workers.
                "websocket": {
                    "event": event,  # open (after hello), close, or refused (no 101)
                    "role": role,
                    "close": code,
                    "in": received,
                    "out": sent,
                    "pid": os.getpid(),
                },
            }
        )


class Connection:
    """One accepted channel, from hello to close."""

    def __init__(
        self, endpoint: ChannelEndpoint, scope: Scope, receive: Receive, send: Send, client: str
    ) -> None:
        self.endpoint = endpoint
        self.scope = scope
        self.receive = receive
        self.send = send
        self.client = client
        self.token = scope["path"][len(endpoint.prefix) : -len("/channel")]
        self.role: str | None = None
        self.channel: Channel | None = None
        self.received = 0
        self.closed = False
        self.code: int | None = None  # the close code the node sent
        self.opened: Callable[[str], None] = lambda role: None
        settings = endpoint.realtime
        self.frames = Budget(settings.max_frames_per_second, 2 * settings.max_frames_per_second)
        self.bytes = Budget(
            settings.max_bytes_per_second,
            max(2 * settings.max_bytes_per_second, settings.max_message_size),
        )

    async def send_frame(self, frame: bytes) -> None:
        if not self.closed:
            await self.send({"type": "websocket.send", "text": frame.decode()})

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        self.code = code
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    async def run(self) -> int | None:
        """Serve the channel; return the close code the node sent, if any."""
        endpoint = self.endpoint
        await self.receive()  # websocket.connect
        await self.send({"type": "websocket.accept"})
        try:
            code = await self._serve()
        except FrameError as error:
            code = error.code
            endpoint.observer.refused(f"close-{error.code}")
            await self.close(error.code, error.reason)
        except StoreUnavailableError:
            code = messages.GOING_AWAY
            await self.close(code, "the session store is unavailable: retry")
        finally:
            if self.channel is not None:
                endpoint.hub.detach(self.channel)
        return code

    async def _serve(self) -> int | None:
        endpoint = self.endpoint
        hello = await self._hello()
        resolved = None
        if USER_TOKEN.fullmatch(self.token):
            resolved = await endpoint.store.resolve(self.token, endpoint.clock.now_ms())
        if resolved is None:
            owner = None
            if USER_TOKEN.fullmatch(self.token) and not endpoint.shared_store:
                owner = endpoint.ring.owner(self.token)
            where = (
                f": it is hosted on node {owner}" if owner and owner != endpoint.node_name else ""
            )
            raise FrameError(messages.UNKNOWN_TOKEN, f"unknown userToken{where}")
        session, participant = resolved
        self.role = participant.role
        if participant.role == "customer" and session.csrf_token is not None:
            given = hello.get("csrfToken")
            if not isinstance(given, str) or not hmac.compare_digest(
                given.encode(), session.csrf_token.encode()
            ):
                raise FrameError(messages.BAD_CSRF, "missing or wrong csrfToken")
        if participant.state in ("declined", "left"):
            raise FrameError(messages.UNKNOWN_TOKEN, "this userToken is no longer valid")
        if session.end_reason is not None:
            await self.send_frame(
                b'{"type":"ended","seq":%d,"reason":"%s"}'
                % (session.last_seq, session.end_reason.encode())
            )
            await self.close(messages.ENDED, "the session has ended")
            return messages.ENDED
        last_seq = messages.non_negative_int(hello, "lastSeq", "hello") if "lastSeq" in hello else 0
        channel = Channel(
            session.session_key,
            participant.user_token,
            participant.user_id,
            participant.role,
            participant.state,
            send_frame=self.send_frame,
            close_socket=self.close,
            max_queue_bytes=endpoint.realtime.max_queue_bytes,
        )
        participants = await endpoint.store.participants(session.session_key)
        data = session.user_data
        if participant.role == "agent":
            data = endpoint.service.readable_data(data)
        channel.preamble.append(
            messages.welcome(
                participant.role,
                participant.user_id,
                seq=session.last_seq,
                mode=session.mode,
                participants=participants,
                user_data=data,
            )
        )
        self.channel = channel
        # A waiting agent has nothing to resume: it starts where the log is now.
        start = session.last_seq if participant.state == "pending" else last_seq
        await endpoint.hub.attach(channel, start, session.snapshot_seq, session.last_seq)
        self.opened(participant.role)
        return await self._listen(channel)

    async def _hello(self) -> dict[str, Any]:
        try:
            message = await asyncio.wait_for(
                self.receive(), timeout=self.endpoint.realtime.hello_timeout
            )
        except TimeoutError:
            raise FrameError(messages.NO_HELLO, "no hello in time") from None
        frame = self._frame(message)
        if frame is None:
            raise FrameError(messages.EXITED, "")
        if frame["type"] != "hello":
            raise FrameError(messages.BAD_FRAME, "the first frame must be hello")
        return frame

    def _frame(self, message: MutableMapping[str, Any]) -> dict[str, Any] | None:
        """Return the next frame's object, None at disconnect; enforce the per-second budget."""
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return None
        text = message.get("text")
        if text is None:
            raise FrameError(messages.BAD_FRAME, "frames are UTF-8 JSON text")
        size = len(text)
        if not self.frames.take(1) or not self.bytes.take(size):
            raise FrameError(messages.POLICY, "too many frames or bytes per second")
        frame = messages.parse(text)
        self.received += 1
        self.endpoint.observer.received(frame["type"], size)
        return frame

    async def _listen(self, channel: Channel) -> int | None:
        while True:
            # The frame lives only in _answer: an idle channel does not keep its last one (a
            # full snapshot is tens of kilobytes of objects) alive while it waits for the next.
            done, code = await self._answer(channel, await self.receive())
            if done:
                return code

    async def _answer(
        self, channel: Channel, message: MutableMapping[str, Any]
    ) -> tuple[bool, int | None]:
        """Handle one received message; return whether the channel is done, and its code."""
        frame = self._frame(message)
        if frame is None:
            return True, self.code  # the client closed or went away, or the writer closed
        endpoint = self.endpoint
        try:
            reply = await endpoint.service.handle(channel, frame)
        except RefusedError as error:
            endpoint.observer.refused(f"frame-{error.request}")
            await self.send_frame(messages.error(error.message, error.request))
            return False, None
        if reply.frame is not None:
            await self.send_frame(reply.frame)
        if reply.close is not None:
            await self.close(reply.close, "")
            return True, reply.close
        return False, None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
