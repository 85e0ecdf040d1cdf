"""The hub on its own: what happens to channels when the store fails or is slow to answer."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from cobrowse.realtime import messages
from cobrowse.realtime.hub import Channel, Hub
from cobrowse.realtime.observe import NoRealtimeMetrics

KEY = "1" + "k" * 22
TOKEN = "2" + "t" * 22
DEADLINE_S = 5.0


class BrokenLog:
    """A live store whose log cannot be read (a disk error, say)."""

    async def session(self, session_key: str) -> None:
        return None

    async def entries_after(self, session_key: str, after: int, limit: int) -> list[Any]:
        raise sqlite3.OperationalError("disk I/O error")


class QuietFeed:
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def notify(self, session_key: str) -> None: ...
    def watch(self, session_key: str, after_seq: int) -> None: ...
    def advance(self, session_key: str, seq: int) -> None: ...
    def unwatch(self, session_key: str) -> None: ...
    def take(self, session_key: str, after_seq: int) -> None: ...


class FixedClock:
    def now_ms(self) -> int:
        return 1_700_000_000_000


async def test_a_failed_writer_closes_its_channel_so_that_the_client_resumes(caplog) -> None:
    hub = Hub(
        BrokenLog(),  # type: ignore[arg-type]
        QuietFeed(),  # type: ignore[arg-type]
        FixedClock(),  # type: ignore[arg-type]
        NoRealtimeMetrics(),
        heartbeat_s=10.0,
        inactivity_timeout_ms=60_000,
    )
    sent: list[bytes] = []
    closed = asyncio.get_running_loop().create_future()

    async def send_frame(frame: bytes) -> None:
        sent.append(frame)

    async def close_socket(code: int, reason: str = "") -> None:
        closed.set_result((code, reason))

    channel = Channel(
        KEY,
        TOKEN,
        "agent-1",
        "agent",
        "accepted",
        send_frame=send_frame,
        close_socket=close_socket,
        max_queue_bytes=1_000_000,
    )
    channel.preamble.append(b'{"type":"welcome"}')
    with caplog.at_level(logging.ERROR, logger="cobrowse.realtime"):
        await hub.attach(channel, last_seq=0, snapshot_seq=0)
        code, reason = await asyncio.wait_for(closed, DEADLINE_S)

    assert (code, reason) == (messages.INTERNAL_ERROR, "internal error")
    assert sent == [b'{"type":"welcome"}']  # what it could send went first
    assert "closing the channel with 1011" in caplog.text
    assert KEY not in caplog.text
    assert TOKEN not in caplog.text
    hub.detach(channel)


class SlowFirstLookup:
    """A live store whose first `session()` waits until released (a Redis round trip)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def session(self, session_key: str) -> None:
        self.calls += 1
        if self.calls == 1:
            await self.release.wait()
        else:
            await asyncio.sleep(0)

    async def entries_after(self, session_key: str, after: int, limit: int) -> list[Any]:
        return []


def quiet_channel(user_id: str, role: str) -> Channel:
    async def send_frame(frame: bytes) -> None:
        pass

    async def close_socket(code: int, reason: str = "") -> None:
        pass

    return Channel(
        KEY,
        f"{user_id}-token",
        user_id,
        role,
        "accepted",
        send_frame=send_frame,
        close_socket=close_socket,
        max_queue_bytes=1_000_000,
    )


async def test_a_channel_attaching_while_the_sessions_last_channel_leaves_still_gets_deliveries():
    store = SlowFirstLookup()
    hub = Hub(
        store,  # type: ignore[arg-type]
        QuietFeed(),  # type: ignore[arg-type]
        FixedClock(),  # type: ignore[arg-type]
        NoRealtimeMetrics(),
        heartbeat_s=10.0,
        inactivity_timeout_ms=60_000,
    )
    agent = quiet_channel("agent-1", "agent")
    customer = quiet_channel("c1", "customer")
    attaching = asyncio.create_task(hub.attach(agent, last_seq=0, snapshot_seq=0))
    await asyncio.sleep(0)  # the agent waits for the store
    await asyncio.wait_for(hub.attach(customer, last_seq=0, snapshot_seq=0), DEADLINE_S)
    hub.detach(customer)  # the session's last channel here leaves meanwhile
    store.release.set()
    await asyncio.wait_for(attaching, DEADLINE_S)

    assert hub.channels_of(KEY) == [agent]  # deliveries for the session reach the agent
    hub.detach(agent)
