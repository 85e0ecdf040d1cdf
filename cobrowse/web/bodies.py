"""Read request bodies within the configured size limit."""

from __future__ import annotations

import json
from typing import Any

import falcon.asgi

from cobrowse.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError


async def read_json_object(
    req: falcon.asgi.Request, limit: int, operation: str, *, required: bool
) -> dict[str, Any] | None:
    """Return the body as a JSON object, None when empty and not required.

    Raise 413 above `limit` bytes, 415 for a non-JSON content type, 400 for anything that is not
    one JSON object.
    """
    length = req.content_length
    if length is not None and length > limit:
        raise PayloadTooLargeError(f"The body is over the {limit}-byte limit.", operation=operation)
    try:
        # The server decodes chunked bodies; a slow body is cut off by the server (408).
        raw: bytes = await req.stream.read(limit + 1) if length != 0 else b""
    except Exception as error:
        # The server could not decode the body: a malformed chunk, or a client that left.
        raise BadRequestError("The body could not be read.", operation=operation) from error
    if length is not None and len(raw) < length:
        # The client left (or was cut off) before its whole body arrived.
        raise BadRequestError("The body could not be read.", operation=operation)
    if len(raw) > limit:
        raise PayloadTooLargeError(f"The body is over the {limit}-byte limit.", operation=operation)
    if not raw.strip():
        if required:
            raise BadRequestError("This request needs a JSON object body.", operation=operation)
        return None
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError("The body must be application/json.", operation=operation)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("The body is not valid JSON.", operation=operation) from None
    except RecursionError:
        # A few thousand `[` fit in any body limit and exhaust the decoder's stack.
        raise BadRequestError("The body is nested too deeply.", operation=operation) from None
    if not isinstance(body, dict):
        raise BadRequestError("The body must be a JSON object.", operation=operation)
    return body
