"""The router's own endpoints: `/health` and `/lb/status`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lb.backends import State
from lb.http import Request, Response, json_error, json_response
from lb.metrics import exposition
from lb.statuspage import render_status_page

if TYPE_CHECKING:
    from lb.router import Router


def status_document(router: Router) -> dict[str, object]:
    """Return the state of every node, as `/lb/status` shows it."""
    shares = router.ring.shares()
    per_node: dict[str, int] = {}
    for (node, _rule), count in router.requests.items():
        per_node[node] = per_node.get(node, 0) + count
    return {
        "ringEpoch": router.ring.current_epoch,
        "nodes": [
            {
                "name": backend.name,
                "url": backend.spec.base_url,
                "state": backend.state.value,
                "backup": backend.backup,
                "lastCheck": backend.last_check_ms,
                "lastResult": backend.last_result,
                "consecutiveFailures": backend.consecutive_failures,
                "consecutiveSuccesses": backend.consecutive_successes,
                "ringShare": round(shares.get(backend.name, 0.0), 4),
                "requests": per_node.get(backend.name, 0),
                "requestRate": round(router.observer.rates.get(backend.name, 0.0), 2),
                "liveSessions": backend.live_sessions,
            }
            for backend in router.backends.values()
        ],
    }


def _health(router: Router, request: Request) -> Response:
    if any(backend.state is not State.DOWN for backend in router.backends.values()):
        return Response(200, b"OK")
    return json_error(503, "No node is up.", retry_after=router.config.router.retry_after)


def _status(router: Router, request: Request) -> Response:
    if b"text/html" in (request.accept or b""):
        return Response(
            200,
            b"OK",
            b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n",
            render_status_page(router).encode(),
        )
    return json_response(200, status_document(router))


def _metrics(router: Router, request: Request) -> Response:
    if not router.config.metrics.enabled:
        return json_error(404, "Metrics are switched off ([metrics] enabled = false).")
    body, content_type = exposition(router)
    return Response(200, b"OK", b"Content-Type: %s\r\n" % content_type.encode(), body)


ENDPOINTS = {b"/health": _health, b"/lb/status": _status, b"/lb/metrics": _metrics}
METHODS = (b"GET", b"HEAD")  # of every endpoint; the OpenAPI document lists the same


def answer_admin(router: Router, request: Request) -> Response:
    """Answer `/health` and `/lb/...`."""
    if request.method not in METHODS:
        response = json_error(405, "Only GET and HEAD are allowed here.")
        response.head += b"Allow: GET, HEAD\r\n"
        return response
    endpoint = ENDPOINTS.get(request.target.split(b"?", 1)[0])
    if endpoint is None:
        return json_error(404, "No such router endpoint.")
    return endpoint(router, request)
