"""The router's own endpoints: `/health` and `/lb/status`."""

from __future__ import annotations

from cobrowse.config.settings import split_bind
from lb.backends import State
from lb.http import Request, Response, json_error, json_response
from lb.metrics import exposition
from lb.state import RouterState
from lb.statuspage import render_status_page


def status_document(state: RouterState) -> dict[str, object]:
    """Return the state of every node, as `/lb/status` shows it."""
    shares = state.ring.shares()
    per_node: dict[str, int] = {}
    for (node, _rule), count in state.requests.items():
        per_node[node] = per_node.get(node, 0) + count
    return {
        "ringEpoch": state.ring.current_epoch,
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
                "requestRate": round(state.observer.rates.get(backend.name, 0.0), 2),
                "liveSessions": backend.live_sessions,
                "tunnels": state.tunnels.count(backend.name),
            }
            for backend in state.backends.values()
        ],
    }


def _health(state: RouterState, request: Request) -> Response:
    if any(backend.state is not State.DOWN for backend in state.backends.values()):
        return Response(200, b"OK")
    return json_error(503, "No node is up.", retry_after=state.config.router.retry_after)


def _status(state: RouterState, request: Request) -> Response:
    if b"text/html" in (request.accept or b""):
        return Response(
            200,
            b"OK",
            b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n",
            render_status_page(state).encode(),
        )
    return json_response(200, status_document(state))


def _metrics(state: RouterState, request: Request) -> Response:
    if not state.config.metrics.enabled:
        return json_error(404, "Metrics are switched off ([metrics] enabled = false).")
    body, content_type = exposition(state)
    return Response(200, b"OK", b"Content-Type: %s\r\n" % content_type.encode(), body)


def _openapi(state: RouterState, request: Request) -> Response:
    from lb.openapi import build_router_document

    host, port = split_bind(state.config.router.bind)
    host = f"[{host}]" if ":" in host else host
    return json_response(200, build_router_document(f"http://{host}:{port}"))


ENDPOINTS = {
    b"/health": _health,
    b"/lb/status": _status,
    b"/lb/openapi.json": _openapi,
    b"/lb/metrics": _metrics,
}
METHODS = (b"GET", b"HEAD")  # of every endpoint; the OpenAPI document lists the same


def answer_admin(state: RouterState, request: Request) -> Response:
    """Answer `/health` and `/lb/...`."""
    if request.method not in METHODS:
        response = json_error(405, "Only GET and HEAD are allowed here.")
        response.head += b"Allow: GET, HEAD\r\n"
        return response
    endpoint = ENDPOINTS.get(request.target.split(b"?", 1)[0])
    if endpoint is None:
        return json_error(404, "No such router endpoint.")
    return endpoint(state, request)
