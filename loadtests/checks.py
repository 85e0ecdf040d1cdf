"""Validate the cluster's answers the way the real clients rely on them.

Pure Python (no Locust import): each check takes a status and a body and returns None when the
answer is right, or a `Problem` saying what is wrong and whether it is a misroute. Messages name
no token or time: Locust groups failures by message, and one row per token would be useless.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

STICKY_COOKIE = "gcbSessionServer"
SESSION_TOKEN = re.compile(r"[0-9]{9}")
# A node that does not host a token answers 307 (or 421 without serverUrl): a request the load
# balancer should have sent elsewhere.
MISROUTE_STATUSES = frozenset({307, 308, 421})
# Stop times come from the node's clock, compared with this machine's: both are local here, but
# allow for a clock that ticks a little differently.
CLOCK_SKEW_MS = 5_000


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an answer is wrong; `misroute` when the request reached a node that is not the host."""

    message: str
    misroute: bool = False


@dataclass(frozen=True, slots=True)
class Created:
    """What a customer keeps from Create Session."""

    session_token: str
    node: str
    user_token: str


def _json_object(body: str | bytes | None) -> dict[str, Any] | None:
    try:
        payload = json.loads(body or b"")
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def cookie_value(set_cookie_headers: Iterable[str], name: str = STICKY_COOKIE) -> str | None:
    """Return the value the `Set-Cookie` headers give cookie `name`, or None."""
    found = None
    for header in set_cookie_headers:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        if name in jar:
            found = jar[name].value
    return found


def check_created(
    status: int, body: str | bytes | None, cookie: str | None, header: str | None
) -> Created | Problem:
    """Check Create Session: a 9-digit token, and cookie and header naming the same node."""
    if status != 200:
        return Problem(f"create: status {status}")
    payload = _json_object(body)
    if payload is None:
        return Problem("create: the body is not a JSON object")
    token, node, user_token = (
        payload.get("sessionToken"),
        payload.get("sessionServerName"),
        payload.get("userToken"),
    )
    wrong = _created_problem(token, node, user_token, cookie, header)
    if wrong is not None:
        return Problem(f"create: {wrong}")
    return Created(str(token), str(node), str(user_token))


def _created_problem(
    token: object, node: object, user_token: object, cookie: str | None, header: str | None
) -> str | None:
    if not isinstance(token, str) or not SESSION_TOKEN.fullmatch(token):
        return "sessionToken is not 9 digits"
    if not isinstance(node, str) or not node:
        return "sessionServerName is not a node name"
    if not isinstance(user_token, str) or not user_token:
        return "no userToken"
    if cookie != node:
        return f"cookie {STICKY_COOKIE}={cookie!r} but sessionServerName {node!r}"
    if header != node:
        return f"header {STICKY_COOKIE}: {header!r} but sessionServerName {node!r}"
    return None


def check_session(
    status: int, body: str | bytes | None, token: str, expected_node: str
) -> Problem | None:
    """Check Get Session: the session exists and the node that created it answered."""
    if status in MISROUTE_STATUSES:
        return Problem(f"misroute: {status} from a node, for a session of {expected_node}", True)
    if status != 200:
        return Problem(f"get: status {status}")
    payload = _json_object(body)
    if payload is None:
        return Problem("get: the body is not a JSON object")
    if payload.get("sessionToken") != token:
        return Problem("get: the answer is about another sessionToken")
    node = payload.get("sessionServerName")
    if node != expected_node:
        return Problem(f"misroute: {node!r} answered for a session of {expected_node}", True)
    return None


def check_stopped(
    status: int, body: str | bytes | None, created_ms: int, now_ms: int
) -> Problem | None:
    """Check Stop Session: integer UTC ms, activation <= deactivation, neither in the future."""
    if status in MISROUTE_STATUSES:
        return Problem(f"misroute: stop answered {status}", True)
    if status != 200:
        return Problem(f"stop: status {status}")
    payload = _json_object(body)
    if payload is None:
        return Problem("stop: the body is not a JSON object")
    wrong = _times_problem(
        payload.get("activationTime"), payload.get("deactivationTime"), created_ms, now_ms
    )
    return Problem(f"stop: {wrong}") if wrong else None


def _times_problem(
    activation: object, deactivation: object, created_ms: int, now_ms: int
) -> str | None:
    if type(activation) is not int or type(deactivation) is not int:  # a bool is no time either
        return "activationTime and deactivationTime are not both integers"
    if activation > deactivation:
        return "activationTime is after deactivationTime"
    if activation < created_ms - CLOCK_SKEW_MS:
        return "activationTime is before the create was sent"
    if deactivation > now_ms + CLOCK_SKEW_MS:
        return "deactivationTime is in the future"
    return None
