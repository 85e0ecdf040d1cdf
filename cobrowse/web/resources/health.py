"""`<context>/health`: 200 ready, 404 draining, 503 not ready (ARCHITECTURE invariant 4)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import ClassVar

import falcon
import falcon.asgi

from cobrowse.clock import Clock
from cobrowse.sessions.service import Sweeper
from cobrowse.store import SessionStore, StoreUnavailableError
from cobrowse.web.cors import Operation

HEALTH = Operation("health")
LIVE_SESSIONS_HEADER = "X-Cobrowse-Live-Sessions"


class StoreProbe:
    """Check the store from health: does it take writes (each second), how many live (each 5 s).

    Counting live sessions reads every live row (hundreds of milliseconds at tens of thousands,
    in a thread): a probe waits `count_wait_s` for it at most, then answers with the last count
    while the count finishes on its own. Load balancers time probes out; the status page does
    not need the figure fresher.
    """

    write_interval_s = 1.0
    count_interval_s = 5.0
    count_wait_s = 0.05

    def __init__(self, store: SessionStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.written_at = -self.write_interval_s
        self.counted_at = -self.count_interval_s
        self.writable = True
        self.live_sessions = 0
        self.counting: asyncio.Task[None] | None = None
        self.counted = False  # once: `live_sessions` is a real figure

    async def refresh(self) -> None:
        now = time.monotonic()
        if now - self.written_at >= self.write_interval_s:
            self.written_at = now
            try:
                await self.store.check_writable()
                self.writable = True
            except StoreUnavailableError:
                # Read-only, full, or gone: 503 until a later probe succeeds (no restart needed).
                self.writable = False
        counting = self.counting is not None and not self.counting.done()
        if self.writable and not counting and now - self.counted_at >= self.count_interval_s:
            self.counted_at = now
            self.counting = asyncio.ensure_future(self._count(now))
            # The first count is waited for: a figure of 0 at start would be made up.
            wait_s = self.count_wait_s if self.counted else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.counting), wait_s)

    async def _count(self, started: float) -> None:
        try:
            self.live_sessions = await self.store.live_count(self.clock.now_ms())
            self.counted = True
        except StoreUnavailableError:
            # Only the status page's figure: keep the last one and count again next time.
            # A failed count says nothing about writes (it once kept health at 503 for 5 s
            # after the store had recovered).
            self.counted_at = started - self.count_interval_s


class HealthResource:
    """Answer load-balancer probes cheaply: one indexed read, plus a write once a second."""

    # Browsers may check health cross-origin before showing the co-browse button; load
    # balancers send no Origin and are never refused.
    operations: ClassVar[dict[str, Operation]] = {"GET": HEALTH, "HEAD": HEALTH}

    def __init__(self, store: SessionStore, sweeper: Sweeper, clock: Clock) -> None:
        self.store = store
        self.sweeper = sweeper
        self.probe = StoreProbe(store, clock)

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            state = await self.store.node_state()
        except StoreUnavailableError:
            self._refuse(resp, falcon.HTTP_503, "The session store is unavailable.")
            return
        if state.stopping:
            self._refuse(resp, falcon.HTTP_503, "The node is shutting down.")
            return
        await self.probe.refresh()
        if not self.probe.writable:
            self._refuse(resp, falcon.HTTP_503, "The session store does not accept writes.")
        elif state.draining:
            # HAProxy's `http-check disable-on-404`: no new sessions, sticky traffic continues.
            self._refuse(resp, falcon.HTTP_404, "The node is draining.")
        else:
            resp.status = falcon.HTTP_200
            resp.text = ""
            # For the router's status page.
            resp.set_header(LIVE_SESSIONS_HEADER, str(self.probe.live_sessions))
            # Load balancers probe every second: a cheap place to keep history tidy too.
            try:
                await self.sweeper.maybe_sweep()
            except StoreUnavailableError:
                self._refuse(resp, falcon.HTTP_503, "The session store is unavailable.")

    on_head = on_get

    @staticmethod
    def _refuse(resp: falcon.asgi.Response, status: str, message: str) -> None:
        resp.status = status
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps({"errorMessage": message})
