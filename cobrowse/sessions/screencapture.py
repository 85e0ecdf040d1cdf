"""Screen-capture control, after the vendor's third-party screen recording control.

Actions are `start`, `stop`, `pause`, `resume` and `query`; states are `enabled`, `disabled` and
`paused`. Repeating an action that is already in effect is harmless; a transition that makes no
sense (resuming what was never started, pausing what is off, starting what is paused) is a 409.
"""

from __future__ import annotations

from cobrowse.errors import BadRequestError, ConflictError

OPERATION = "sessions.screen-capture"
ACTIONS = ("start", "stop", "pause", "resume", "query")

# (state, action) -> new state; a missing pair is an impossible transition.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("disabled", "start"): "enabled",
    ("enabled", "start"): "enabled",
    ("disabled", "stop"): "disabled",
    ("enabled", "stop"): "disabled",
    ("paused", "stop"): "disabled",
    ("enabled", "pause"): "paused",
    ("paused", "pause"): "paused",
    ("paused", "resume"): "enabled",
    ("enabled", "resume"): "enabled",
    **{(state, "query"): state for state in ("enabled", "disabled", "paused")},
}


def parse_action(body: dict[str, object] | None) -> str:
    """Return the action of a request body, or raise 400."""
    action = (body or {}).get("screen-capture")
    if action not in ACTIONS:
        raise BadRequestError(
            'The body must be {"screen-capture": "start" | "stop" | "pause" | "resume" | "query"}.',
            operation=OPERATION,
        )
    return str(action)


def apply(state: str, action: str) -> str:
    """Return the state after `action`, or raise 409 when it cannot happen from `state`."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise ConflictError(
            f"Cannot {action} screen capture while it is {state}.",
            operation=OPERATION,
            extra={"screen-capture": state},
        ) from None
