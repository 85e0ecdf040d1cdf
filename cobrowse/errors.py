"""Domain errors: what the session rules and the realtime channel refuse, and why.

Each error knows its HTTP status code and its body in the one error shape: a JSON object with
`errorMessage` (for people), plus `request` (the operation name, as in the vendor's rate-limit
answer) when an operation was identified, plus any fields an error adds (for example `node`).
Nothing here knows about Falcon: `cobrowse.web.errors` maps these to HTTP answers in one place.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with an HTTP status and a JSON body."""

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errorMessage": self.message}
        if self.operation:
            body["request"] = self.operation
        body.update(self.extra)
        return body


class BadRequestError(ApiError):
    """400: the request is malformed."""


class UnauthorizedError(ApiError):
    """401: the session this Controller token named has ended (the polling API's answer)."""

    status_code = 401


class ForbiddenError(ApiError):
    """403: the origin, the operation or the CSRF token is refused."""

    status_code = 403


class NotFoundError(ApiError):
    """404: no such live session."""

    status_code = 404


class RequestTimeoutError(ApiError):
    """408: the request did not arrive whole in time (a slow or stalled client)."""

    status_code = 408


class ConflictError(ApiError):
    """409: the requested state change is impossible from the current state."""

    status_code = 409


class PayloadTooLargeError(ApiError):
    """413: the body is over the configured limit."""

    status_code = 413


class MisdirectedError(ApiError):
    """421: the token belongs to another node, and that node has no serverUrl to redirect to."""

    status_code = 421


class RateLimitedError(ApiError):
    """429: the client is in quarantine for this operation."""

    status_code = 429


class UnavailableError(ApiError):
    """503: the node cannot serve this now."""

    status_code = 503


class UnsupportedMediaTypeError(BadRequestError):
    """415: the body is not JSON."""

    status_code = 415


class HostedElsewhereError(Exception):
    """The token belongs to another node of the cluster (307 to it, or 421 without its URL)."""

    def __init__(self, node: str, server_url: str | None) -> None:
        super().__init__(node)
        self.node = node
        self.server_url = server_url
