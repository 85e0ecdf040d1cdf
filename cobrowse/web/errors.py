"""The one place where errors become HTTP answers, all in the one JSON error shape.

Domain errors (`cobrowse.errors`) carry their status and body; store failures answer 503;
Falcon's own errors (unknown route, 405, bad JSON) are serialised in the same shape. No stack
trace ever reaches a client: unexpected exceptions answer 500 with a generic message and are
logged once, with their traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon
import falcon.asgi

from cobrowse.errors import ApiError, HostedElsewhereError, NotFoundError
from cobrowse.store import SessionNotFoundError, StoreUnavailableError

log = logging.getLogger("cobrowse.errors")

Request = falcon.asgi.Request
Response = falcon.asgi.Response


def _respond(resp: Response, status: int, body: dict[str, Any]) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)


async def handle_api_error(
    req: Request, resp: Response, error: ApiError, params: dict[str, Any]
) -> None:
    """Answer a domain error with its JSON body; log it once."""
    level = logging.WARNING if error.status_code >= 500 else logging.INFO
    log.log(
        level,
        "%s %s -> %d: %s",
        req.method,
        req.uri_template or "unmatched",
        error.status_code,
        error.message,
    )
    for name, value in error.headers.items():
        resp.set_header(name, value)
    _respond(resp, error.status_code, error.body())


async def handle_store_unavailable(
    req: Request, resp: Response, error: Exception, params: dict[str, Any]
) -> None:
    """Answer 503 when the store cannot serve: read-only, full, locked or missing."""
    log.warning(
        "%s %s -> 503: session store unavailable: %s",
        req.method,
        req.uri_template or "unmatched",
        error,
    )
    resp.set_header("Retry-After", "5")
    _respond(
        resp, 503, {"errorMessage": "The session store is temporarily unavailable. Retry later."}
    )


async def handle_session_not_found(
    req: Request, resp: Response, error: Exception, params: dict[str, Any]
) -> None:
    """Answer 404 for a token the store does not know."""
    await handle_api_error(req, resp, NotFoundError("No session has this token."), params)


async def handle_unexpected(
    req: Request, resp: Response, error: Exception, params: dict[str, Any]
) -> None:
    """Answer 500 without details and log the traceback once."""
    log.error(
        "%s %s -> 500: unexpected error",
        req.method,
        req.uri_template or "unmatched",
        exc_info=error,
    )
    _respond(resp, 500, {"errorMessage": "Internal server error."})


def serialize_http_error(req: Request, resp: Response, error: falcon.HTTPError) -> None:
    """Render Falcon's own errors (unknown route, 405, 415, bad JSON) in our shape."""
    message = error.title or "Error"
    if error.description:
        message = f"{message}: {error.description}"
    log.info("%s %s -> %s: %s", req.method, req.uri_template or "unmatched", error.status, message)
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps({"errorMessage": message})


def redirect_to_owner(context_path: str) -> Any:
    """Build the handler that sends a client to the node that hosts its token."""

    async def handle(
        req: Request, resp: Response, error: HostedElsewhereError, params: Any
    ) -> None:
        body = {"errorMessage": f"This token is hosted on node {error.node}.", "node": error.node}
        if error.server_url is None:
            resp.status = 421
        else:
            # 307 keeps the method and body; serverUrl reaches the owner through the LB prefix.
            location = error.server_url + req.path[len(context_path) :]
            if req.query_string:
                location += "?" + req.query_string
            resp.status = 307
            resp.location = location
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(body)

    return handle


def install(app: falcon.asgi.App[Request, Response], context_path: str) -> None:
    """Register the error handlers and the serializer on `app`."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(ApiError, handle_api_error)
    app.add_error_handler(StoreUnavailableError, handle_store_unavailable)
    app.add_error_handler(SessionNotFoundError, handle_session_not_found)
    app.add_error_handler(HostedElsewhereError, redirect_to_owner(context_path))
    app.set_error_serializer(serialize_http_error)
