"""What changed in the live logs, with the shared Redis store: one reader per worker.

Each worker blocks on one `XREAD` over the streams of every session it serves (not one blocking
connection per WebSocket). It returns at the first new entry of any of them, whichever node
wrote it, with the new entries of every stream (up to a page each), which the hub takes
(`take`) instead of reading them again: one round trip per wake-up, not one more per session.
The hub reads the store itself (`XRANGE`) only when what the feed read does not follow on from
what it delivered (a page was full, or the stream was trimmed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from cobrowse.realtime.hub import PULL_PAGE  # a page each, as the hub reads the store
from cobrowse.store.live import LiveEntry
from cobrowse.store.redis_live import stream_entry

log = logging.getLogger("cobrowse.realtime")
RedisClient = Any  # redis-py's annotations mix its sync and asyncio APIs

BLOCK_MS = 100  # a session that starts being watched waits at most this long to be read


class RedisFeed:
    """Tell the hub which of its sessions have new entries, from one blocking XREAD."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        # stream -> the last entry ID seen; bytes, as XREAD answers them and sends them best
        self.positions: dict[bytes, bytes] = {}
        # session key -> the entries the last XREAD returned, and whether the page was full
        self.fetched: dict[str, tuple[list[LiveEntry], bool]] = {}

    def start(self) -> None:
        """Nothing to set up: the reader is the hub's `wait`."""

    def stop(self) -> None:
        self.positions.clear()
        self.fetched.clear()

    def take(self, session_key: str, after_seq: int) -> list[LiveEntry] | None:
        """Return the entries the last XREAD read after `after_seq`, if they follow on from it."""
        fetched = self.fetched.pop(session_key, None)
        if fetched is None:
            return None
        entries, full = fetched
        newer = [entry for entry in entries if entry.seq > after_seq]
        if newer:
            # A gap (trimmed, or the reader started past the cursor): the store says why.
            return newer if newer[0].seq == after_seq + 1 else None
        # All delivered already (this worker stored them). Past a full page there may be more:
        # read the store; otherwise the next XREAD returns whatever comes next.
        return None if full else []

    def notify(self, session_key: str) -> None:
        """Nothing to do: an XADD wakes every reader of its stream."""

    def watch(self, session_key: str, after_seq: int) -> None:
        self.positions[self._stream(session_key)] = b"%d-1" % after_seq

    def advance(self, session_key: str, seq: int) -> None:
        stream = self._stream(session_key)
        if stream in self.positions:
            self.positions[stream] = b"%d-1" % seq

    def unwatch(self, session_key: str) -> None:
        self.positions.pop(self._stream(session_key), None)

    def _stream(self, session_key: str) -> bytes:
        return f"{self.prefix}l:{session_key}".encode()

    async def wait(self, timeout: float) -> set[str] | None:
        """Return the sessions with new entries; None after `timeout` without any."""
        end = time.monotonic() + timeout
        skip = len(self._stream(""))
        while time.monotonic() < end:
            if not self.positions:
                await asyncio.sleep(min(BLOCK_MS / 1000, max(0.0, end - time.monotonic())))
                continue
            self.fetched.clear()  # what the hub did not take is stale: it reads the store
            try:
                found = await self.client.xread(
                    dict(self.positions), count=PULL_PAGE, block=BLOCK_MS
                )
            except (RedisError, OSError) as error:
                log.warning("live feed: %s", error)
                await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))
                return None
            if found:
                changed = set()
                for stream, items in found:
                    name = bytes(stream)
                    if name in self.positions and items:
                        self.positions[name] = bytes(items[-1][0])
                        key = name[skip:].decode()
                        changed.add(key)
                        self.fetched[key] = (
                            [stream_entry(item) for item in items],
                            len(items) >= PULL_PAGE,
                        )
                return changed
        return None
