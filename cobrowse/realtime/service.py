"""The rules of live sessions: joining, consent, modes, attached data, and what each frame does.

Independent of the transport: the channel endpoint parses frames and calls `handle`; the join
resource calls `join`. Everything stored goes through the store's atomic operations, then to
this worker's channels and the other workers through the hub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cobrowse.clock import Clock
from cobrowse.config.settings import NodeSettings
from cobrowse.errors import BadRequestError, ConflictError, NotFoundError
from cobrowse.realtime import messages
from cobrowse.realtime.hub import Channel, Hub
from cobrowse.realtime.messages import RefusedError
from cobrowse.sessions import userdata
from cobrowse.sessions.service import SessionService
from cobrowse.sessions.tokens import SESSION_TOKEN, TokenIssuer
from cobrowse.store.live import CUSTOMER, Joined, JoinRefusedError, LiveStore, Participant

JOIN = "sessions.join"
AGENT_ONLY = ("pointer", "input", "mode-request")
CUSTOMER_ONLY = ("events", "consent", "mode", "userData")
MODES = ("pointer", "write")


@dataclass(frozen=True, slots=True)
class Reply:
    """What the sender gets back at once (an ack, an error), and whether its socket closes."""

    frame: bytes | None = None
    close: int | None = None


class LiveService:
    """Join, and handle what participants send."""

    def __init__(
        self,
        settings: NodeSettings,
        store: LiveStore,
        hub: Hub,
        *,
        sessions: SessionService,
        issuer: TokenIssuer,
        clock: Clock,
    ) -> None:
        cluster = settings.cluster
        self.store = store
        self.hub = hub
        self.sessions = sessions
        self.issuer = issuer
        self.clock = clock
        self.require_consent = cluster.session.require_consent
        self.max_agents = cluster.session.max_agents
        self.agent_timeout_ms = round(cluster.session.agent_timeout * 1000)
        self.max_log_bytes = cluster.realtime.max_log_bytes
        self.readable = cluster.security.user_data_read
        self.writable = cluster.security.user_data_write
        self.handlers: dict[str, Callable[[Channel, dict[str, Any]], Awaitable[Reply]]] = {
            "events": self._events,
            "consent": self._consent,
            "mode": self._mode,
            "userData": self._user_data,
            "pointer": self._pointer,
            "input": self._input,
            "mode-request": self._mode_request,
            "exit": self._exit,
        }

    # joining (REST)
    async def join(self, session_token: str, name: str) -> Joined:
        """Add an agent to a live session, waiting for consent unless it is not required."""
        if not SESSION_TOKEN.fullmatch(session_token):
            raise BadRequestError("A sessionToken is exactly 9 digits.", operation=JOIN)
        agent = Participant(
            user_token=self.issuer.user_token(),
            user_id=self.issuer.user_id(),
            role="agent",
            name=name,
            state="pending" if self.require_consent else "accepted",
        )
        drafts = (
            [messages.join_request(agent)]
            if self.require_consent
            else [messages.joined(agent), messages.snapshot_request("agent")]
        )
        try:
            joined = await self.store.join(
                session_token,
                agent,
                drafts,
                self.clock.now_ms(),
                max_agents=self.max_agents,
                agent_timeout_ms=self.agent_timeout_ms,
            )
        except JoinRefusedError:
            raise ConflictError(
                f"This session already has its {self.max_agents} agent(s) ([session] maxAgents).",
                operation=JOIN,
            ) from None
        if joined is None:
            self.sessions.locate(session_token)  # hosted elsewhere: 307 to its node
            raise NotFoundError("No live session has this sessionToken.", operation=JOIN)
        await self.hub.deliver(joined.session.session_key, joined.entries)
        return joined

    def readable_data(self, data: dict[str, str]) -> dict[str, str]:
        """Return the attached data an agent may see."""
        return {key: value for key, value in data.items() if userdata.allowed(key, self.readable)}

    # frames (the channel)
    async def handle(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        """Apply one frame from a participant; return its immediate reply."""
        kind = frame["type"]
        handler = self.handlers.get(kind)
        if handler is None:
            if kind == "hello":
                raise RefusedError("hello was already received.", kind)
            raise RefusedError(f"Unknown message type {kind!r}.", kind)
        if channel.role == "customer" and kind in AGENT_ONLY:
            raise RefusedError(f"Only agents send {kind!r}.", kind)
        if channel.role == "agent":
            if kind in CUSTOMER_ONLY:
                raise RefusedError(f"Only the customer sends {kind!r}.", kind)
            if channel.state != "accepted" and kind != "exit":
                raise RefusedError("The customer has not accepted you yet.", kind)
        return await handler(channel, frame)

    async def _events(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        cseq = messages.non_negative_int(frame, "cseq", "events")
        data = frame.get("data")
        if not isinstance(data, list):
            raise RefusedError("'data' must be a list of rrweb events.", "events")
        outcome = await self.store.append_events(
            channel.session_key,
            cseq,
            messages.events(channel.user_id, cseq, data),
            self.clock.now_ms(),
            max_log_bytes=self.max_log_bytes,
            snapshot_request=messages.snapshot_request("log"),
        )
        if outcome.refused == "full":
            raise RefusedError(
                "The session's log is full ([realtime] maxLogBytes): send a full snapshot.",
                "events",
            )
        if outcome.refused == "ended":
            return Reply()  # `ended` is on its way to this channel
        await self.hub.deliver(channel.session_key, outcome.entries)
        return Reply(messages.ack(cseq))  # a duplicate is acked again, stored once

    async def _consent(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        agent_id, accept = frame.get("userId"), frame.get("accept")
        if not isinstance(agent_id, str) or not isinstance(accept, bool):
            raise RefusedError("consent needs 'userId' and 'accept' (true or false).", "consent")
        waiting = [
            agent
            for agent in await self.store.participants(channel.session_key)
            if agent.role == "agent" and agent.user_id == agent_id and agent.state == "pending"
        ]
        if not waiting:
            raise RefusedError("No agent with this userId waits for consent.", "consent")
        agent = waiting[0]
        drafts = (
            [messages.joined(agent), messages.snapshot_request("agent")]
            if accept
            else [messages.declined(agent.user_id)]
        )
        entries = await self.store.decide(
            channel.session_key, agent_id, accept, drafts, self.clock.now_ms()
        )
        if entries is None:
            raise RefusedError("No agent with this userId waits for consent.", "consent")
        await self.hub.deliver(channel.session_key, entries)
        return Reply()

    async def _mode(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        mode = frame.get("mode")
        if mode not in MODES:
            raise RefusedError("mode is 'pointer' or 'write'.", "mode")
        entries = await self.store.set_mode(
            channel.session_key,
            str(mode),
            messages.mode(str(mode), channel.user_id),
            self.clock.now_ms(),
        )
        await self.hub.deliver(channel.session_key, entries)
        return Reply()

    async def _user_data(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        try:
            changes = userdata.parse(frame.get("userData"), "userData", deletions=True)
        except BadRequestError as error:
            raise RefusedError(error.message, "userData") from None
        refused = sorted(key for key in changes if not userdata.allowed(key, self.writable))
        if refused:
            raise RefusedError(
                f"The key {refused[0]!r} may not be written ([security] userData.writeAllowed).",
                "userData",
            )
        visible = userdata.readable(changes, self.readable)
        drafts = [messages.user_data(visible, channel.user_id)] if visible else []
        entries = await self.store.update_user_data(
            channel.session_key, changes, drafts, self.clock.now_ms()
        )
        await self.hub.deliver(channel.session_key, entries)
        return Reply()

    async def _forward(self, channel: Channel, kind: str, fields: dict[str, Any]) -> Reply:
        entries = await self.store.append(
            channel.session_key,
            [messages.forwarded(kind, CUSTOMER, channel.user_id, fields)],
            self.clock.now_ms(),
        )
        await self.hub.deliver(channel.session_key, entries)
        return Reply()

    async def _pointer(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        return await self._forward(channel, "pointer", _fields(frame, "pointer"))

    async def _input(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        session = await self.store.session(channel.session_key)
        if session is None or session.mode != "write":
            raise RefusedError(
                "Input needs write mode, which the customer has not granted.", "input"
            )
        return await self._forward(channel, "input", _fields(frame, "input"))

    async def _mode_request(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        if frame.get("mode", "write") != "write":
            raise RefusedError("An agent can only request 'write' mode.", "mode-request")
        return await self._forward(channel, "mode-request", {"mode": "write"})

    async def _exit(self, channel: Channel, frame: dict[str, Any]) -> Reply:
        now = self.clock.now_ms()
        if channel.role == "customer":
            entries = await self.store.end(channel.session_key, "exit", now)
            await self.hub.deliver(channel.session_key, entries)
            return Reply()  # `ended`, then 4410, come through the log
        name = next(
            (
                agent.name
                for agent in await self.store.participants(channel.session_key)
                if agent.user_id == channel.user_id
            ),
            "",
        )
        entries = await self.store.leave(
            channel.user_token, [messages.left(channel.user_id, name)], now
        )
        await self.hub.deliver(channel.session_key, entries)
        return Reply(close=messages.EXITED)


def _fields(frame: dict[str, Any], kind: str) -> dict[str, Any]:
    """Return what a participant attached to a message, minus what the node sets itself."""
    fields = {key: value for key, value in frame.items() if key not in ("type", "seq", "from")}
    if len(repr(fields)) > messages.MAX_FIELDS_BYTES:
        raise RefusedError(f"A {kind} message carries at most 16 KiB.", kind)
    return fields
