"""The channel's wire format (REALTIME.md): frames in, frames and log drafts out, close codes.

Frames are UTF-8 JSON text, one object with a `type`. What the node forwards is built as
bytes around the sender's own JSON, re-encoded once with orjson: a customer's batch of rrweb
events is the bulk of the traffic.
"""

from __future__ import annotations

from typing import Any

import orjson

from cobrowse.store.live import AGENTS, ALL, CUSTOMER, USER, Draft, Participant

# Close codes (REALTIME.md "Close codes").
EXITED = 1000  # the client exited: do not reconnect
GOING_AWAY = 1001  # the node is stopping: resume with lastSeq
POLICY = 1008  # too many frames or bytes per second: reconnect after a delay
TOO_BIG = 1009  # a frame over [realtime] maxMessageSize
INTERNAL_ERROR = 1011  # the node failed to serve the channel (a store error): resume with lastSeq
RESTARTING = 1012  # the node's workers are being replaced (reload): resume with lastSeq
BAD_FRAME = 4400  # not a JSON object with a type, or anything but hello first
BAD_CSRF = 4401
UNKNOWN_TOKEN = 4404
NO_HELLO = 4408
ENDED = 4410

# rrweb event types.
RRWEB_FULL_SNAPSHOT = 2

MAX_NAME = 64  # an agent's display name
MAX_FIELDS_BYTES = 16_384  # what an agent may attach to a pointer, input or mode-request


class FrameError(Exception):
    """The frame breaks the protocol: the connection closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class RefusedError(Exception):
    """The frame is refused: the client gets an `error` frame and the socket stays open."""

    def __init__(self, message: str, request: str) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


def parse(text: str | bytes) -> dict[str, Any]:
    """Return a frame's object; raise FrameError (4400) unless it is an object with a type."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError(BAD_FRAME, "a frame must be JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError(BAD_FRAME, "a frame must be a JSON object with a type")
    return frame


def non_negative_int(frame: dict[str, Any], name: str, request: str) -> int:
    value = frame.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RefusedError(f"'{name}' must be a non-negative integer.", request)
    return value


# Frames that are not in the log (no seq).
def welcome(
    role: str,
    user_id: str,
    *,
    seq: int,
    mode: str,
    participants: list[Participant],
    user_data: dict[str, str],
) -> bytes:
    return orjson.dumps(
        {
            "type": "welcome",
            "role": role,
            "userId": user_id,
            "seq": seq,
            "mode": mode,
            "participants": [participant.public() for participant in participants],
            "userData": user_data,
        }
    )


def ack(cseq: int) -> bytes:
    return b'{"type":"ack","cseq":%d}' % cseq


def error(message: str, request: str) -> bytes:
    return orjson.dumps({"type": "error", "errorMessage": message, "request": request})


RESYNC = b'{"type":"resync"}'


def ended_frame(reason: str) -> bytes:
    """`ended` for a channel that connects after its session ended (no log entry left)."""
    return orjson.dumps({"type": "ended", "reason": reason})


# Drafts: what goes into the log, given its seq there.
def _draft(kind: str, audience: str, fields: dict[str, Any], snapshot: bool = False) -> Draft:
    body = orjson.dumps(fields)
    tail = b"}" if body == b"{}" else b"," + body[1:]
    return Draft(kind, audience, b'{"type":"%s","seq":' % kind.encode(), tail, snapshot)


def events(from_id: str, cseq: int, data: list[Any]) -> Draft:
    """A customer's batch of rrweb events, for accepted agents."""
    snapshot = any(
        isinstance(event, dict) and event.get("type") == RRWEB_FULL_SNAPSHOT for event in data
    )
    tail = b',"from":"%s","cseq":%d,"data":%s}' % (from_id.encode(), cseq, orjson.dumps(data))
    return Draft("events", AGENTS, b'{"type":"events","seq":', tail, snapshot)


def forwarded(kind: str, audience: str, from_id: str, fields: dict[str, Any]) -> Draft:
    """A participant's message for others: its own fields, plus `from`."""
    return _draft(kind, audience, {**fields, "from": from_id})


def join_request(agent: Participant) -> Draft:
    return _draft("join-request", CUSTOMER, {"userId": agent.user_id, "name": agent.name})


def joined(agent: Participant) -> Draft:
    return _draft("joined", ALL, {"userId": agent.user_id, "name": agent.name})


def left(agent_id: str, name: str) -> Draft:
    return _draft("left", ALL, {"userId": agent_id, "name": name})


def declined(agent_id: str) -> Draft:
    """`ended` for one agent the customer declined."""
    return _draft("ended", USER + agent_id, {"reason": "declined"})


def snapshot_request(reason: str) -> Draft:
    return _draft("snapshot-request", CUSTOMER, {"reason": reason})


def mode(new_mode: str, from_id: str) -> Draft:
    return _draft("mode", ALL, {"mode": new_mode, "from": from_id})


def user_data(changes: dict[str, str | None], from_id: str) -> Draft:
    return _draft("userData", AGENTS, {"userData": changes, "from": from_id})


def subject(payload: bytes) -> str | None:
    """Return the userId a control message is about (joined, left)."""
    user_id = orjson.loads(payload).get("userId")
    return user_id if isinstance(user_id, str) else None
