"""The session store interface: what the session rules need from a backend.

`cobrowse.store.sqlite` is the embedded backend (one SQLite file per node). A shared Redis store
is planned: a second module implementing the same protocols.

The methods are coroutines because a node's event loop must never wait on I/O that can wait: a
shared store is a network round trip. The SQLite backend answers reads inline (microseconds) and
only awaits when a write has to wait for the node-wide write lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cobrowse.store.live import LiveEntry

SCREEN_CAPTURE_STATES = ("enabled", "disabled", "paused")


@dataclass(frozen=True, slots=True)
class Session:
    """One co-browse session as stored. Times are UTC milliseconds."""

    session_token: str
    user_token: str
    activation_time: int
    expires_at: int
    deactivation_time: int | None = None
    end_reason: str | None = None  # "stop" | "timeout"
    csrf_token: str | None = None
    screen_capture: str = "disabled"
    # Written at creation only (reads leave them out): the customer's public id on the
    # channel, and the attached data given to Create Session.
    customer_id: str = ""
    user_data: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StopResult:
    """What a stop found: the recorded session, and whether this call ended it."""

    session: Session
    ended_now: bool
    # What ending it appended to the live log (`ended`), for the channels to hear.
    entries: list[LiveEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NodeState:
    """Node-wide switches shared by every worker: drain and shutdown."""

    draining: bool = False
    stopping: bool = False


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a sweep did: sessions it ended by inactivity, ended sessions it deleted."""

    timed_out: int
    purged: int
    # For each session it ended: its key and what ending it appended to the live log.
    ended: list[tuple[str, list[LiveEntry]]] = field(default_factory=list)


class StoreError(Exception):
    """Base of store errors."""


class TokenConflictError(StoreError):
    """A token is already taken by a live session; draw another one."""


class SessionNotFoundError(StoreError):
    """No session has this token."""


class StoreUnavailableError(StoreError):
    """The store cannot serve this request now (read-only, full, locked or missing)."""


class SessionStore(Protocol):
    """Persist sessions so that every worker of a node, and every restart, sees the same ones."""

    async def open(self) -> None:
        """Connect and bring the schema up to date, before the first request."""

    async def close(self) -> None:
        """Release connections and background threads."""

    async def create(self, session: Session) -> None:
        """Insert a new live session; raise TokenConflictError when a token is taken."""

    async def get_live(self, session_token: str, now_ms: int) -> Session | None:
        """Return the live session with this sessionToken, or None."""

    async def get_by_user_token(self, user_token: str) -> Session | None:
        """Return the session (live or ended) of this userToken, or None."""

    async def stop(self, user_token: str, now_ms: int) -> StopResult:
        """End the session of this userToken once; later calls return the recorded times."""

    async def touch(self, user_token: str, now_ms: int, expires_at: int) -> Session | None:
        """Record Controller activity on a live session; None when it is not live."""

    async def change_screen_capture(
        self, user_token: str, now_ms: int, expires_at: int, change: Callable[[str], str]
    ) -> Session | None:
        """Apply `change` to a live session's screen-capture state atomically, and count it as
        Controller activity; None when the session is not live. `change` may raise to refuse."""

    async def sweep(self, now_ms: int, retention_ms: int) -> PurgeResult:
        """End sessions past their inactivity deadline and delete history past retention."""

    async def live_count(self, now_ms: int) -> int:
        """Return the number of live sessions."""

    async def node_state(self) -> NodeState:
        """Return the node-wide drain and shutdown switches; raise StoreUnavailableError."""

    async def set_node_state(
        self, *, draining: bool | None = None, stopping: bool | None = None
    ) -> None:
        """Change the node-wide switches."""

    async def check_writable(self) -> None:
        """Raise StoreUnavailableError unless a write would succeed now."""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request may run; when not, for how long its client stays in quarantine."""

    allowed: bool
    retry_after_s: int | None = None  # None with allowed=False: quarantined forever


class RateLimitStore(Protocol):
    """Count requests per client and operation in fixed one-minute windows, node-wide."""

    async def hit(
        self, client: str, operation: str, now_ms: int, limit: int, quarantine_ms: int
    ) -> RateDecision:
        """Count one request; refuse it when the client is, or now goes, in quarantine.

        `quarantine_ms` 0 means forever.
        """

    async def forget_before(self, now_ms: int) -> int:
        """Delete counters of past windows whose quarantine is over; return how many."""
