"""Read request bodies within the configured size limit."""

from __future__ import annotations

import json
from typing import Any

import falcon

from cobrowse.errors import ApiError, BadRequestError, PayloadTooLargeError


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
    try:
        raw = _read_at_most(req, length, limit + 1)
    except ApiError:
        raise  # the server's deadline on a slow client (cobrowse.ops.workers): 408
    except Exception as error:
        # The server could not decode the body: a malformed chunk, or a client that left.
        raise BadRequestError("The body could not be read.", operation=operation) from error
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


def _read_at_most(req: falcon.Request, length: int | None, size: int) -> bytes:
    if length is None and "chunked" in (req.get_header("Transfer-Encoding") or "").lower():
        # Falcon's bounded stream reads nothing without a Content-Length; the server decodes
        # the chunks, and its stream ends with the body.
        data: bytes = req.stream.read(size)
        return data
    return req.bounded_stream.read(size) if length != 0 else b""
