"""Domain errors and their one JSON shape.

Every error answer is a JSON object with `errorMessage` (for people), plus `request` (the
operation name, as in the vendor's rate-limit answer) when an operation was identified, plus any
fields an error adds (for example `node`). No stack trace ever reaches a client: unexpected
exceptions answer 500 with a generic message and are logged once, with their traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from cobrowse.store import SessionNotFoundError, StoreUnavailableError

log = logging.getLogger("cobrowse.errors")


class ApiError(Exception):
    """An error with an HTTP status and a JSON body."""

    status = falcon.HTTP_400
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

    status, status_code = falcon.HTTP_401, 401


class ForbiddenError(ApiError):
    """403: the origin, the operation or the CSRF token is refused."""

    status, status_code = falcon.HTTP_403, 403


class NotFoundError(ApiError):
    """404: no such live session."""

    status, status_code = falcon.HTTP_404, 404


class RequestTimeoutError(ApiError):
    """408: the request did not arrive whole in time (a slow or stalled client)."""

    status, status_code = falcon.HTTP_408, 408


class ConflictError(ApiError):
    """409: the requested state change is impossible from the current state."""

    status, status_code = falcon.HTTP_409, 409


class PayloadTooLargeError(ApiError):
    """413: the body is over the configured limit."""

    status, status_code = falcon.HTTP_413, 413


class MisdirectedError(ApiError):
    """421: the token belongs to another node, and that node has no serverUrl to redirect to."""

    status, status_code = falcon.HTTP_421, 421


class RateLimitedError(ApiError):
    """429: the client is in quarantine for this operation."""

    status, status_code = falcon.HTTP_429, 429


class UnavailableError(ApiError):
    """503: the node cannot serve this now."""

    status, status_code = falcon.HTTP_503, 503


def _respond(resp: falcon.Response, status: str, body: dict[str, Any]) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)


def handle_api_error(
    req: falcon.Request, resp: falcon.Response, error: ApiError, params: dict[str, Any]
) -> None:
    """Answer a domain error with its JSON body; log it once."""
    level = logging.WARNING if error.status_code >= 500 else logging.INFO
    log.log(level, "%s %s -> %d: %s", req.method, req.path, error.status_code, error.message)
    for name, value in error.headers.items():
        resp.set_header(name, value)
    _respond(resp, error.status, error.body())


def handle_store_unavailable(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """Answer 503 when the store cannot serve: read-only, full, locked or missing."""
    log.warning("%s %s -> 503: session store unavailable: %s", req.method, req.path, error)
    resp.set_header("Retry-After", "5")
    _respond(
        resp,
        falcon.HTTP_503,
        {"errorMessage": "The session store is temporarily unavailable. Retry later."},
    )


def handle_session_not_found(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """Answer 404 for a token the store does not know."""
    handle_api_error(req, resp, NotFoundError("No session has this token."), params)


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """Answer 500 without details and log the traceback once."""
    log.error("%s %s -> 500: unexpected error", req.method, req.path, exc_info=error)
    _respond(resp, falcon.HTTP_500, {"errorMessage": "Internal server error."})


def serialize_http_error(
    req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError
) -> None:
    """Render Falcon's own errors (unknown route, 405, 415, bad JSON) in our shape."""
    message = error.title or "Error"
    if error.description:
        message = f"{message}: {error.description}"
    log.info("%s %s -> %s: %s", req.method, req.path, error.status, message)
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps({"errorMessage": message})


def install(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Register the error handlers and the serializer on `app`."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(ApiError, handle_api_error)
    app.add_error_handler(StoreUnavailableError, handle_store_unavailable)
    app.add_error_handler(SessionNotFoundError, handle_session_not_found)
    app.set_error_serializer(serialize_http_error)
