"""The router's own endpoints: `/health` and `/lb/status`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lb.backends import State
from lb.http import Request, Response, json_error, json_response

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
            }
            for backend in router.backends.values()
        ],
    }


def answer_admin(router: Router, request: Request) -> Response:
    """Answer `/health` and `/lb/...`."""
    path = request.target.split(b"?", 1)[0]
    if request.method not in (b"GET", b"HEAD"):
        response = json_error(405, "Only GET and HEAD are allowed here.")
        response.head += b"Allow: GET, HEAD\r\n"
        return response
    if path == b"/health":
        if any(backend.state is not State.DOWN for backend in router.backends.values()):
            return Response(200, b"OK")
        return json_error(503, "No node is up.", retry_after=router.config.router.retry_after)
    if path == b"/lb/status":
        return json_response(200, status_document(router))
    return json_error(404, "No such router endpoint.")
