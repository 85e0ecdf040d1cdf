"""Read request bodies within the configured size limit."""

from __future__ import annotations

import json
from typing import Any

import falcon

from cobrowse.errors import BadRequestError, PayloadTooLargeError


class UnsupportedMediaTypeError(BadRequestError):
    """415: the body is not JSON."""

    status, status_code = falcon.HTTP_415, 415


def read_json_object(
    req: falcon.Request, limit: int, operation: str, *, required: bool
) -> dict[str, Any] | None:
    """Return the body as a JSON object, None when empty and not required.

    Raise 413 above `limit` bytes, 415 for a non-JSON content type, 400 for anything that is not
    one JSON object.
    """
    length = req.content_length
    if length is not None and length > limit:
        raise PayloadTooLargeError(f"The body is over the {limit}-byte limit.", operation=operation)
    raw = req.bounded_stream.read(limit + 1) if length != 0 else b""
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
    if not isinstance(body, dict):
        raise BadRequestError("The body must be a JSON object.", operation=operation)
    return body
