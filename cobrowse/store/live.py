"""The live-session store interface: participants, the live log, and what changes them at once.

Every operation that assigns a `seq` is atomic in the store: the log's order is the order of
`seq`, whichever worker (or, with a shared store, node) wrote. A message is stored as a `Draft`:
its bytes before and after the seq (`head` + seq + `tail`), so that a backend can assign the
seq and write the payload in one step (a SQLite transaction under the write lock, or a Redis
script).

A session is named by its customer's userToken (`session_key`): unlike a sessionToken it is
never drawn again after its session ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# Who may see an entry of the log.
ALL = "all"  # the customer and accepted agents
AGENTS = "agents"  # accepted agents only
CUSTOMER = "customer"
USER = "user:"  # prefix: one participant, by userId

# Kinds of entries a full snapshot makes obsolete: trimmed when a new one is stored. Control
# entries (joined, mode, input...) are small and stay until the session ends.
TRANSIENT_KINDS = ("events", "pointer")


@dataclass(frozen=True, slots=True)
class Draft:
    """A message to store: its payload is `head` + the seq it is given + `tail`."""

    kind: str
    audience: str
    head: bytes
    tail: bytes
    snapshot: bool = False

    def payload(self, seq: int) -> bytes:
        return b"%s%d%s" % (self.head, seq, self.tail)


@dataclass(frozen=True, slots=True)
class LiveEntry:
    """A stored message of the live log."""

    seq: int
    kind: str
    audience: str
    payload: bytes  # the whole text frame, seq included
    stored_at: int  # UTC ms
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class Participant:
    """The customer or an agent of a session."""

    user_token: str
    user_id: str
    role: str  # customer | agent
    name: str
    state: str  # accepted | pending | declined | left

    def public(self) -> dict[str, str]:
        return {"userId": self.user_id, "role": self.role, "name": self.name, "state": self.state}


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A session as the channel sees it."""

    session_key: str  # the customer's userToken
    session_token: str
    customer_id: str
    mode: str  # pointer | write
    last_seq: int
    snapshot_seq: int  # 0: no full snapshot yet
    csrf_token: str | None
    end_reason: str | None  # None while live
    expires_at: int
    user_data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Joined:
    """What a join did: the agent, and the messages it caused."""

    session: LiveSession
    agent: Participant
    entries: list[LiveEntry]


@dataclass(frozen=True, slots=True)
class EventsOutcome:
    """What storing a customer's batch did."""

    stored: LiveEntry | None  # None: a duplicate (already stored), or refused
    entries: list[LiveEntry]  # everything appended (the batch, and a snapshot-request)
    refused: str | None = None  # why the batch was not stored


class JoinRefusedError(Exception):
    """The session cannot take another agent now (`[session] maxAgents`)."""


class LiveStore(Protocol):
    """What the realtime channel needs from a backend."""

    async def resolve(self, user_token: str, now_ms: int) -> tuple[LiveSession, Participant] | None:
        """Return the session and participant of a customer's or agent's token, or None."""

    async def session(self, session_key: str) -> LiveSession | None:
        """Return a session by its key, ended or not."""

    async def participants(self, session_key: str) -> list[Participant]:
        """Return the customer and the agents who wait or are accepted."""

    async def join(
        self,
        session_token: str,
        agent: Participant,
        drafts: list[Draft],
        now_ms: int,
        *,
        max_agents: int,
        agent_timeout_ms: int,
    ) -> Joined | None:
        """Add an agent to a live session and append `drafts`; None when no such live session.

        Raise JoinRefusedError when the session already has `max_agents` agents holding a
        place (waiting or accepted, seen within `agent_timeout_ms`).
        """

    async def append(self, session_key: str, drafts: list[Draft], now_ms: int) -> list[LiveEntry]:
        """Append messages to a live session's log; empty when the session has ended."""

    async def append_events(
        self,
        session_key: str,
        cseq: int,
        draft: Draft,
        now_ms: int,
        *,
        max_log_bytes: int,
        snapshot_request: Draft,
    ) -> EventsOutcome:
        """Store a customer batch once (by `cseq`), trimming the log at a full snapshot.

        Past `max_log_bytes` the session gets `snapshot_request` (once until the next
        snapshot); past twice that, incremental batches are refused until a snapshot comes.
        """

    async def decide(
        self, session_key: str, agent_id: str, accept: bool, drafts: list[Draft], now_ms: int
    ) -> list[LiveEntry] | None:
        """Accept or decline a waiting agent and append `drafts`; None when it is not waiting."""

    async def set_mode(
        self, session_key: str, mode: str, draft: Draft, now_ms: int
    ) -> list[LiveEntry]:
        """Set pointer or write mode and append `draft`; empty when the mode was already so."""

    async def update_user_data(
        self, session_key: str, changes: dict[str, str | None], drafts: list[Draft], now_ms: int
    ) -> list[LiveEntry]:
        """Apply attached-data changes (None deletes) and append `drafts`."""

    async def leave(self, agent_token: str, drafts: list[Draft], now_ms: int) -> list[LiveEntry]:
        """Mark an agent as gone and append `drafts` (once); the mode returns to pointer."""

    async def end(self, session_key: str, reason: str, now_ms: int) -> list[LiveEntry]:
        """End a live session (once): append `ended`, drop its live content."""

    async def entries_after(self, session_key: str, seq: int, limit: int) -> list[LiveEntry]:
        """Return up to `limit` entries with a seq above `seq`, in order."""

    async def heartbeat(
        self, customers: list[str], agents: list[str], now_ms: int, expires_at: int
    ) -> None:
        """Record open channels: customers' sessions stay alive, agents keep their place."""


def ended_draft(reason: str) -> Draft:
    """Return the `ended` message: every channel of the session gets it, then closes (4410)."""
    return Draft("ended", ALL, b'{"type":"ended","seq":', b',"reason":"%s"}' % reason.encode())
