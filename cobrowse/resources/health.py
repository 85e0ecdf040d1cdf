"""`<context>/health`: 200 ready, 404 draining, 503 not ready (ARCHITECTURE invariant 4)."""

from __future__ import annotations

import json
from typing import ClassVar

import falcon

from cobrowse.cors import Operation
from cobrowse.sessions import Sweeper
from cobrowse.store import SessionStore, StoreUnavailableError

HEALTH = Operation("health")


class HealthResource:
    """Answer load-balancer probes cheaply: one indexed read of the node-wide switches."""

    # Browsers may check health cross-origin before showing the co-browse button; load
    # balancers send no Origin and are never refused.
    operations: ClassVar[dict[str, Operation]] = {"GET": HEALTH, "HEAD": HEALTH}

    def __init__(self, store: SessionStore, sweeper: Sweeper) -> None:
        self.store = store
        self.sweeper = sweeper

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
            # Load balancers probe every second: a cheap place to keep history tidy too.
            try:
                self.sweeper.maybe_sweep()
            except StoreUnavailableError:
                self._refuse(resp, falcon.HTTP_503, "The session store is unavailable.")

    on_head = on_get

    @staticmethod
    def _refuse(resp: falcon.Response, status: str, message: str) -> None:
        resp.status = status
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps({"errorMessage": message})
