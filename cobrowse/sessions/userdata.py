"""Attached data: key/value strings given at Create Session, read by agents, set by the customer.

After the Service Client API's `user-data.read-allowed` and `write-allowed`
(`[security] userData.readAllowed` / `userData.writeAllowed`): agents see only readable keys;
the customer may change only writable keys over the channel. `*` allows every key; by default
none is readable and none writable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cobrowse.errors import BadRequestError

MAX_KEYS = 32
MAX_KEY = 64
MAX_VALUE = 1024
ALL_KEYS = "*"


def allowed(key: str, keys: frozenset[str]) -> bool:
    return ALL_KEYS in keys or key in keys


def readable(data: Mapping[str, str | None], keys: frozenset[str]) -> dict[str, str | None]:
    """Return the entries agents may read."""
    return {key: value for key, value in data.items() if allowed(key, keys)}


def parse(value: Any, operation: str, *, deletions: bool = False) -> dict[str, str | None]:
    """Return attached data from a request, or raise 400: an object of short strings."""
    if not isinstance(value, dict):
        raise BadRequestError("userData must be an object of strings.", operation=operation)
    if len(value) > MAX_KEYS:
        raise BadRequestError(f"userData has at most {MAX_KEYS} keys.", operation=operation)
    parsed: dict[str, str | None] = {}
    for key, item in value.items():
        if not key or len(key) > MAX_KEY:
            raise BadRequestError(
                f"A userData key has 1 to {MAX_KEY} characters.", operation=operation
            )
        if item is None and deletions:
            parsed[key] = None
            continue
        if not isinstance(item, str) or len(item) > MAX_VALUE:
            raise BadRequestError(
                f"userData values are strings of at most {MAX_VALUE} characters ({key!r} is not).",
                operation=operation,
            )
        parsed[key] = item
    return parsed
