"""What changed in the live logs, with the shared Redis store: one reader per worker.

Each worker blocks on one `XREAD` over the streams of every session it serves (not one blocking
connection per WebSocket). It returns at the first new entry of any of them, whichever node
wrote it. The hub then reads the entries themselves (`XRANGE`), as it does from SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("cobrowse.realtime")
RedisClient = Any  # redis-py's annotations mix its sync and asyncio APIs

BLOCK_MS = 100  # a session that starts being watched waits at most this long to be read


class RedisFeed:
    """Tell the hub which of its sessions have new entries, from one blocking XREAD."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.positions: dict[str, bytes] = {}  # stream -> the last entry ID seen

    def start(self) -> None:
        """Nothing to set up: the reader is the hub's `wait`."""

    def stop(self) -> None:
        self.positions.clear()

    def notify(self, session_key: str) -> None:
        """Nothing to do: an XADD wakes every reader of its stream."""

    def watch(self, session_key: str, after_seq: int) -> None:
        self.positions[f"{self.prefix}l:{session_key}"] = b"%d-1" % after_seq

    def advance(self, session_key: str, seq: int) -> None:
        stream = f"{self.prefix}l:{session_key}"
        if stream in self.positions:
            self.positions[stream] = b"%d-1" % seq

    def unwatch(self, session_key: str) -> None:
        self.positions.pop(f"{self.prefix}l:{session_key}", None)

    async def wait(self, timeout: float) -> set[str] | None:
        """Return the sessions with new entries; None after `timeout` without any."""
        end = time.monotonic() + timeout
        skip = len(self.prefix) + 2
        while time.monotonic() < end:
            if not self.positions:
                await asyncio.sleep(min(BLOCK_MS / 1000, max(0.0, end - time.monotonic())))
                continue
            try:
                found = await self.client.xread(dict(self.positions), count=1, block=BLOCK_MS)
            except (RedisError, OSError) as error:
                log.warning("live feed: %s", error)
                await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))
                return None
            if found:
                changed = set()
                for stream, items in found:
                    name = stream.decode() if isinstance(stream, bytes) else str(stream)
                    if name in self.positions and items:
                        self.positions[name] = bytes(items[-1][0])
                        changed.add(name[skip:])
                return changed
        return None
