"""Cross-origin control: `[cross-origin] allowedOrigins`, checked once per request.

Resources declare their operations per HTTP method (`operations = {"GET": SESSIONS_GET}`); this
middleware decides from the request's origin (`Origin`, else the origin of `Referer`) whether the
operation may run, answers CORS preflights, and adds the CORS response headers. It never echoes
an origin it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon

from cobrowse.config.origins import OriginPolicy
from cobrowse.errors import ForbiddenError

EXPOSED_HEADERS = "gcbSessionServer, X-CSRF-Token, X-Request-ID"
ALLOWED_REQUEST_HEADERS = (
    "Content-Type, X-CSRF-Token, X-Support-CSRFP, gcbSessionServer, X-Request-ID"
)
PREFLIGHT_MAX_AGE = "600"


@dataclass(frozen=True, slots=True)
class Operation:
    """An API operation, as named in allowedOrigins filters and rate limits."""

    name: str
    # Get Session must come from a browser page with an allowed origin; create and stop may also
    # come from servers that send neither Origin nor Referer.
    origin_required: bool = False


class CorsMiddleware:
    """Enforce allowedOrigins and answer preflights for resources that declare `operations`."""

    def __init__(self, policy: OriginPolicy) -> None:
        self.policy = policy

    async def process_resource(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        params: dict[str, Any],
    ) -> None:
        operations: dict[str, Operation] | None = getattr(resource, "operations", None)
        if operations is None:
            return
        resp.vary = ("Origin",)
        header = req.get_header("Origin")
        is_referer = False
        if header is None:
            header = req.get_header("Referer")
            is_referer = header is not None
        if req.method == "OPTIONS":
            requested = req.get_header("Access-Control-Request-Method")
            if header is not None and requested is not None and not is_referer:
                self._preflight(resp, operations, header, requested.upper())
            return
        operation = operations.get(req.method)
        if operation is None:
            return  # Falcon answers 405 with Allow
        req.context.operation = operation.name
        if header is None:
            if operation.origin_required:
                raise ForbiddenError(
                    "This request must carry an Origin or Referer header with an allowed origin.",
                    operation=operation.name,
                )
            return
        echo = self._check(header, is_referer, operation.name)
        resp.set_header("Access-Control-Allow-Origin", echo)
        resp.set_header("Access-Control-Allow-Credentials", "true")
        resp.set_header("Access-Control-Expose-Headers", EXPOSED_HEADERS)

    def _check(self, header: str, is_referer: bool, operation: str) -> str:
        """Return the origin to echo, or raise ForbiddenError."""
        echo, rule = self.policy.rule_for_header(header, is_referer)
        if rule is None:
            source = "Referer" if is_referer else "Origin"
            raise ForbiddenError(
                f"The request's {source} is not an allowed origin ([cross-origin] allowedOrigins).",
                operation=operation,
            )
        if not rule.allows(operation):
            raise ForbiddenError(
                f"The origin is not allowed to request '{operation}'.", operation=operation
            )
        return echo

    def _preflight(
        self,
        resp: falcon.asgi.Response,
        operations: dict[str, Operation],
        header: str,
        requested_method: str,
    ) -> None:
        operation = operations.get(requested_method)
        if operation is None:
            raise ForbiddenError(f"Method {requested_method} is not available here.")
        echo = self._check(header, False, operation.name)
        _, rule = self.policy.rule_for_header(header, False)
        assert rule is not None
        methods = sorted(method for method, op in operations.items() if rule.allows(op.name))
        resp.status = falcon.HTTP_200
        resp.set_header("Access-Control-Allow-Origin", echo)
        resp.set_header("Access-Control-Allow-Credentials", "true")
        resp.set_header("Access-Control-Allow-Methods", ", ".join(methods))
        resp.set_header("Access-Control-Allow-Headers", ALLOWED_REQUEST_HEADERS)
        resp.set_header("Access-Control-Max-Age", PREFLIGHT_MAX_AGE)
        resp.complete = True
