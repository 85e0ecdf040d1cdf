"""Per-request observation on a node: request IDs, metrics and the access log."""

from __future__ import annotations

import time
from typing import Any

import falcon.asgi

from cobrowse.observe.accesslog import AccessLog, request_id_from
from cobrowse.observe.metrics import HttpObserver
from cobrowse.web.clientinfo import ClientResolver


class ObservabilityMiddleware:
    """Give every request an ID, time it, count it, and log it once.

    It runs first and finishes last, so it sees the final status of errors too.
    """

    def __init__(
        self,
        observer: HttpObserver,
        access_log: AccessLog | None,
        node_name: str,
        clients: ClientResolver,
    ) -> None:
        self.observer = observer
        self.access_log = access_log
        self.node_name = node_name
        self.clients = clients

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.started = time.perf_counter()
        request_id = request_id_from(req.get_header("X-Request-ID"))
        req.context.request_id = request_id
        resp.set_header("X-Request-ID", request_id)

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        seconds = time.perf_counter() - req.context.started
        # The URI template, never the path: paths carry tokens.
        route = req.uri_template or getattr(req.context, "route", None) or "unmatched"
        status = resp.status_code
        self.observer.request_done(route, req.method, status, seconds)
        if self.access_log is not None:
            self.access_log.record_request(
                req.method,
                route,
                status,
                seconds,
                client=self.clients.address(req),
                node=self.node_name,
                request_id=req.context.request_id,
            )
