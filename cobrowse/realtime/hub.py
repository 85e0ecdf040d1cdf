"""One worker's share of the live sessions: its channels, and delivery to them in seq order.

The log in the store is the record; a worker delivers from it. Entries it wrote itself are
handed to its channels at once; entries other workers wrote are read from the store when a
wake-up names their session (and, as a safety net, once a second for every session it serves).
Each channel has a bounded queue: a channel that falls behind (a slow agent) stops taking from
the queue and reads from the store at its own pace, from the last full snapshot, after a
`resync`. Nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from cobrowse.clock import Clock
from cobrowse.realtime import messages
from cobrowse.realtime.observe import RealtimeObserver
from cobrowse.store.live import AGENTS, ALL, CUSTOMER, USER, LiveEntry, LiveStore

log = logging.getLogger("cobrowse.realtime")

SendFrame = Callable[[bytes], Awaitable[None]]
CloseSocket = Callable[[int, str], Awaitable[None]]

CHECK_ALL_S = 1.0  # the safety net: every session's log checked at least this often


class Feed(Protocol):
    """What tells a worker that other workers (or nodes) stored entries: `wakeup.py` with
    SQLite, `redis_feed.py` with Redis."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def notify(self, session_key: str) -> None: ...

    def watch(self, session_key: str, after_seq: int) -> None: ...

    def advance(self, session_key: str, seq: int) -> None: ...

    def unwatch(self, session_key: str) -> None: ...

    async def wait(self, timeout: float) -> set[str] | None: ...

    def take(self, session_key: str, after_seq: int) -> list[LiveEntry] | None:
        """Return the entries after `after_seq` that `wait` already read, in order and without a
        gap ([] when it saw nothing newer); None when the store must be read instead."""
        ...


PULL_PAGE = 64  # entries read per round by a channel that is behind


class Channel:
    """One open WebSocket of a participant, on this worker."""

    def __init__(
        self,
        session_key: str,
        user_token: str,
        user_id: str,
        role: str,
        state: str,
        *,
        send_frame: SendFrame,
        close_socket: CloseSocket,
        max_queue_bytes: int,
    ) -> None:
        self.session_key = session_key
        self.user_token = user_token
        self.user_id = user_id
        self.role = role
        self.state = state  # agents: pending | accepted; the customer: accepted
        self.send_frame = send_frame
        self.close_socket = close_socket
        self.max_queue_bytes = max_queue_bytes
        self.delivered = 0  # the last seq considered for this channel
        self.queue: deque[LiveEntry] = deque()
        self.queued_bytes = 0
        self.backlog = 0  # bytes dispatched while behind, not read from the store yet
        self.behind = True  # reading from the store instead of the queue
        self.preamble: list[bytes] = []  # sent first: welcome, maybe resync
        self.closing: tuple[int, str] | None = None
        self.wake = asyncio.Event()
        self.sent = 0
        self.accepted_at = 0  # the seq of this agent's `joined`, once accepted on this channel
        self.writer: asyncio.Task[None] | None = None

    def entitled(self, entry: LiveEntry) -> bool:
        """Return whether this participant should see `entry` (REALTIME invariant 1)."""
        audience = entry.audience
        if audience.startswith(USER):
            return audience[len(USER) :] == self.user_id
        if self.role == "customer":
            return audience in (ALL, CUSTOMER)
        return self.state == "accepted" and audience in (ALL, AGENTS)

    def close(self, code: int, reason: str = "") -> None:
        """Close after what is already queued has been sent."""
        if self.closing is None:
            self.closing = (code, reason)
            self.wake.set()


@dataclass
class LocalSession:
    """A session with at least one channel on this worker."""

    channels: set[Channel] = field(default_factory=set)
    cursor: int = 0  # the last seq this worker has dispatched
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Hub:
    """Deliver every session's log to this worker's channels, in order, once."""

    def __init__(
        self,
        store: LiveStore,
        wakeup: Feed,
        clock: Clock,
        observer: RealtimeObserver,
        *,
        heartbeat_s: float,
        inactivity_timeout_ms: int,
    ) -> None:
        self.store = store
        self.wakeup = wakeup
        self.clock = clock
        self.observer = observer
        self.heartbeat_s = heartbeat_s
        self.inactivity_timeout_ms = inactivity_timeout_ms
        self.sessions: dict[str, LocalSession] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False

    # lifecycle
    def start(self) -> None:
        self.wakeup.start()
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self._tail_forever(), name="live-tail"),
            loop.create_task(self._heartbeat_forever(), name="live-heartbeat"),
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []
        self.wakeup.stop()

    async def close_all(self, code: int, reason: str, deadline_s: float = 5.0) -> None:
        """Close every channel (the worker is stopping), letting queued frames go first."""
        self.stopping = True
        channels = [channel for session in self.sessions.values() for channel in session.channels]
        for channel in channels:
            channel.close(code, reason)
        writers = [channel.writer for channel in channels if channel.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=deadline_s)

    # channels
    async def attach(
        self, channel: Channel, last_seq: int, snapshot_seq: int, log_seq: int | None = None
    ) -> None:
        """Start delivering to `channel`, from after `last_seq` (REALTIME "The channel").

        `log_seq` is the log's last seq when the client said hello: a `last_seq` beyond it
        means the store lost entries the client saw (a Redis restarted from an older state, a
        Sentinel failover to a replica that missed the last writes). The stream restarts with a
        `resync`, rather than waiting for seqs the client believes it has.
        """
        session = self.sessions.get(channel.session_key)
        if session is None:
            current = await self.store.session(channel.session_key)
            # Looked up again after the await: meanwhile another channel may have created the
            # session here, or detached the last one and removed it. A session put here before
            # the await could be removed during it, and this channel would then be attached to
            # a session that no longer gets deliveries.
            session = self.sessions.get(channel.session_key)
            if session is None:
                session = self.sessions[channel.session_key] = LocalSession()
                session.cursor = 0 if current is None else current.last_seq
                self.wakeup.watch(channel.session_key, session.cursor)
        if log_seq is not None and last_seq > log_seq:
            channel.preamble.append(messages.RESYNC)
            self.observer.resync("ahead")
            last_seq = 0 if channel.role == "agent" else log_seq
        if channel.role == "agent" and channel.state == "accepted":
            self._position_agent(channel, last_seq, snapshot_seq)
        else:
            channel.delivered = last_seq
        session.channels.add(channel)
        self.observer.channel_opened(channel.role)
        channel.writer = asyncio.get_running_loop().create_task(
            self._write_forever(channel), name="live-writer"
        )

    def _position_agent(self, channel: Channel, last_seq: int, snapshot_seq: int) -> None:
        """An agent with nothing, or with a position the log no longer keeps, starts over."""
        if last_seq == 0 or last_seq < snapshot_seq - 1:
            if last_seq > 0:
                channel.preamble.append(messages.RESYNC)
                self.observer.resync("resume")
            channel.delivered = -1  # from the last full snapshot, found by the writer
        else:
            channel.delivered = last_seq

    def detach(self, channel: Channel) -> None:
        session = self.sessions.get(channel.session_key)
        if session is None or channel not in session.channels:
            return
        session.channels.discard(channel)
        self.observer.channel_closed(channel.role)
        if not session.channels:
            del self.sessions[channel.session_key]
            self.wakeup.unwatch(channel.session_key)
        if channel.writer is not None and channel.writer is not asyncio.current_task():
            channel.writer.cancel()

    def channels_of(self, session_key: str) -> list[Channel]:
        session = self.sessions.get(session_key)
        return [] if session is None else list(session.channels)

    # delivery
    async def deliver(self, session_key: str, entries: list[LiveEntry]) -> None:
        """Deliver entries this worker just stored, and tell the other workers."""
        if not entries:
            return
        self.wakeup.notify(session_key)
        session = self.sessions.get(session_key)
        if session is None:
            return
        async with session.lock:
            if entries[0].seq != session.cursor + 1:
                # Others wrote in between: read the gap (and these) from the store, in order.
                await self._catch_up(session_key, session)
            else:
                self._dispatch(session_key, session, entries)
                self.wakeup.advance(session_key, session.cursor)

    async def _catch_up(self, session_key: str, session: LocalSession) -> None:
        entries = self.wakeup.take(session_key, session.cursor)
        if entries is not None:  # the feed read them already: no round trip to the store
            self._dispatch(session_key, session, entries)
            self.wakeup.advance(session_key, session.cursor)
            if len(entries) < PULL_PAGE:
                return
        while True:
            entries = await self.store.entries_after(session_key, session.cursor, PULL_PAGE)
            if not entries:
                return
            if entries[0].seq != session.cursor + 1:
                # Trimmed before this worker read them: superseded by a full snapshot.
                self._skipped(session, entries[0].seq)
            self._dispatch(session_key, session, entries)
            self.wakeup.advance(session_key, session.cursor)
            if len(entries) < PULL_PAGE:
                return

    def _skipped(self, session: LocalSession, first_kept: int) -> None:
        for channel in session.channels:
            if (
                channel.role == "agent"
                and not channel.behind
                and channel.delivered < first_kept - 1
            ):
                self._fall_behind(channel, "trimmed")

    def _dispatch(self, session_key: str, session: LocalSession, entries: list[LiveEntry]) -> None:
        for entry in entries:
            if entry.seq <= session.cursor:
                continue
            session.cursor = entry.seq
            for channel in list(session.channels):
                self._offer(channel, entry)

    def _offer(self, channel: Channel, entry: LiveEntry) -> None:
        if entry.seq <= channel.delivered or channel.closing is not None:
            return
        if channel.behind:
            # It reads from the store, this entry included. What it has yet to read counts
            # against its queue all the same: an agent that cannot keep up is resynced.
            if channel.entitled(entry):
                channel.backlog += len(entry.payload)
                if channel.backlog > channel.max_queue_bytes and channel.role == "agent":
                    self._fall_behind(channel, "overflow")
            channel.wake.set()
            return
        channel.delivered = entry.seq
        if not self._admit(channel, entry):
            return
        channel.queue.append(entry)
        channel.queued_bytes += len(entry.payload)
        if channel.queued_bytes > channel.max_queue_bytes and channel.role == "agent":
            self._fall_behind(channel, "overflow")
            return
        channel.wake.set()

    def _admit(self, channel: Channel, entry: LiveEntry) -> bool:
        """Apply what `entry` means for the channel; return whether to send it."""
        if (
            channel.state == "pending"
            and entry.kind == "joined"
            and messages.subject(entry.payload) == channel.user_id
        ):
            # Consent given: start from the last full snapshot (or from this very `joined`,
            # when no snapshot is older), read from the store by the writer.
            channel.state = "accepted"
            channel.accepted_at = entry.seq
            self._fall_behind(channel, None)
            return False
        return channel.entitled(entry)

    def _fall_behind(self, channel: Channel, reason: str | None) -> None:
        """Drop the queue; the channel reads from the last full snapshot on (after a resync)."""
        channel.queue.clear()
        channel.queued_bytes = 0
        channel.backlog = 0
        channel.behind = True
        channel.delivered = -1  # the writer finds where to start, in the store
        if reason is not None:
            if messages.RESYNC not in channel.preamble:
                channel.preamble.append(messages.RESYNC)
            self.observer.resync(reason)
        channel.wake.set()

    async def _write_forever(self, channel: Channel) -> None:
        """Send a channel's frames: preamble, then what it missed from the store, then live."""
        try:
            while True:
                while channel.preamble:
                    await channel.send_frame(channel.preamble.pop(0))
                if channel.closing is not None and (channel.behind or not channel.queue):
                    await channel.close_socket(*channel.closing)
                    return
                if channel.behind:
                    await self._pull(channel)
                    continue
                if channel.queue:
                    entry = channel.queue.popleft()
                    channel.queued_bytes -= len(entry.payload)
                    await self._send_entry(channel, entry)
                    del entry  # not kept alive while the channel idles
                    continue
                channel.wake.clear()
                await channel.wake.wait()
        except asyncio.CancelledError:
            raise
        except OSError as error:  # the socket went away mid-send
            log.debug("channel writer stopped: %s", type(error).__name__)
        except Exception:
            # A channel that cannot be served must not stay open and silent (its client would
            # wait forever): close it, so that the client reconnects and resumes at lastSeq.
            log.exception("Channel writer failed: closing the channel with 1011")
            await channel.close_socket(messages.INTERNAL_ERROR, "internal error")

    async def _pull(self, channel: Channel) -> None:
        """Send what the channel should see next, read from the store; go live when done."""
        key = channel.session_key
        if channel.delivered < 0:
            current = await self.store.session(key)
            start = 0 if current is None else current.snapshot_seq
            if channel.accepted_at and (start == 0 or channel.accepted_at < start):
                start = channel.accepted_at
            channel.delivered = max(start - 1, 0)
        entries = await self.store.entries_after(key, channel.delivered, PULL_PAGE)
        trimmed = bool(entries) and 0 < channel.delivered < entries[0].seq - 1
        if trimmed and channel.role == "agent" and channel.state == "accepted":
            # What it had yet to read was trimmed: a newer full snapshot replaced it.
            self._fall_behind(channel, "trimmed")
            return
        for entry in entries:
            if entry.seq <= channel.delivered:
                continue
            channel.delivered = entry.seq
            if self._admit(channel, entry):
                await self._send_entry(channel, entry)
                channel.backlog = max(0, channel.backlog - len(entry.payload))
            if channel.delivered < 0 or channel.closing is not None:
                return  # accepted or resynced meanwhile (start over), or closing
        if len(entries) < PULL_PAGE:
            session = self.sessions.get(key)
            # Entries this worker dispatched while the channel was behind are read next round;
            # otherwise go live. No await between the check and the switch: the hub dispatches
            # on this same thread, so nothing can slip between them.
            if (session is not None and session.cursor <= channel.delivered) or session is None:
                channel.behind = False

    async def _send_entry(self, channel: Channel, entry: LiveEntry) -> None:
        await channel.send_frame(entry.payload)
        channel.sent += 1
        self.observer.sent(entry.kind, len(entry.payload), self.clock.now_ms() - entry.stored_at)
        if entry.kind == "ended":
            channel.close(messages.ENDED, "the session has ended")
        elif (
            entry.kind == "left"
            and channel.role == "agent"
            and messages.subject(entry.payload) == channel.user_id
        ):
            channel.close(messages.EXITED, "left the session")

    # the tail: what other workers stored
    async def _tail_forever(self) -> None:
        loop = asyncio.get_running_loop()
        check_all_at = loop.time() + CHECK_ALL_S
        while True:
            try:
                changed = await self.wakeup.wait(max(0.0, check_all_at - loop.time()))
                keys = set(changed or ())
                if loop.time() >= check_all_at:
                    # The safety net runs on its own clock: a busy node hears wake-ups all the
                    # time, and a session whose wake-up came late must not wait for the next.
                    check_all_at = loop.time() + CHECK_ALL_S
                    keys.update(self.sessions)
                for key in keys:
                    session = self.sessions.get(key)
                    if session is None:
                        continue
                    async with session.lock:
                        await self._catch_up(key, session)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live tail failed; retrying")
                await asyncio.sleep(CHECK_ALL_S)

    # open channels are activity; sessions past their deadline end within a second
    async def _heartbeat_forever(self) -> None:
        beat_due = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            try:
                now = self.clock.now_ms()
                if loop.time() >= beat_due:
                    beat_due = loop.time() + self.heartbeat_s
                    await self._beat(now)
                await self._end_expired(now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live heartbeat failed; retrying")

    async def _beat(self, now: int) -> None:
        customers, agents = set(), set()
        for key, session in self.sessions.items():
            for channel in session.channels:
                if channel.role == "customer":
                    customers.add(key)
                else:
                    agents.add(channel.user_token)
        await self.store.heartbeat(
            sorted(customers), sorted(agents), now, now + self.inactivity_timeout_ms
        )

    async def _end_expired(self, now: int) -> None:
        for key in list(self.sessions):
            current = await self.store.session(key)
            if current is not None and current.end_reason is None and current.expires_at <= now:
                await self.deliver(key, await self.store.end(key, "timeout", now))
