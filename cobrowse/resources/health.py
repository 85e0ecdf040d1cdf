"""`<context>/health`: 200 ready, 404 draining, 503 not ready (ARCHITECTURE invariant 4)."""

from __future__ import annotations

import json
import time
from typing import ClassVar

import falcon

from cobrowse.clock import Clock
from cobrowse.cors import Operation
from cobrowse.sessions import Sweeper
from cobrowse.store import SessionStore, StoreUnavailableError

HEALTH = Operation("health")
LIVE_SESSIONS_HEADER = "X-Cobrowse-Live-Sessions"


class HealthResource:
    """Answer load-balancer probes cheaply: one indexed read of the node-wide switches."""

    # Browsers may check health cross-origin before showing the co-browse button; load
    # balancers send no Origin and are never refused.
    operations: ClassVar[dict[str, Operation]] = {"GET": HEALTH, "HEAD": HEALTH}

    def __init__(self, store: SessionStore, sweeper: Sweeper, clock: Clock) -> None:
        self.store = store
        self.sweeper = sweeper
        self.clock = clock
        self.live_count = 0
        self.live_counted_at = 0.0

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            state = self.store.node_state()
        except StoreUnavailableError:
            self._refuse(resp, falcon.HTTP_503, "The session store is unavailable.")
            return
        if state.stopping:
            self._refuse(resp, falcon.HTTP_503, "The node is shutting down.")
        elif state.draining:
            # HAProxy's `http-check disable-on-404`: no new sessions, sticky traffic continues.
            self._refuse(resp, falcon.HTTP_404, "The node is draining.")
        else:
            resp.status = falcon.HTTP_200
            resp.text = ""
            # For the router's status page; counted at most once a second per worker.
            resp.set_header(LIVE_SESSIONS_HEADER, str(self._live_sessions()))
            # Load balancers probe every second: a cheap place to keep history tidy too.
            try:
                self.sweeper.maybe_sweep()
            except StoreUnavailableError:
                self._refuse(resp, falcon.HTTP_503, "The session store is unavailable.")

    on_head = on_get

    def _live_sessions(self) -> int:
        now = time.monotonic()
        if now - self.live_counted_at >= 1.0:
            self.live_count = self.store.live_count(self.clock.now_ms())
            self.live_counted_at = now
        return self.live_count

    @staticmethod
    def _refuse(resp: falcon.Response, status: str, message: str) -> None:
        resp.status = status
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps({"errorMessage": message})
