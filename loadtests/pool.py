"""Sessions that customers created and agents join: a bounded, race-free hand-over.

A customer publishes its session and waits (a bounded time) until an agent has read it; only
then does it stop the session. So an agent never reads a session its customer already stopped,
and a 404 seen by an agent is always a real failure. Locust runs every user of a process in one
thread of greenlets, and no method here yields between its check and its update, so the
hand-over needs no lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gevent.event import Event

DEFAULT_CAPACITY = 10_000


@dataclass(eq=False, slots=True)
class SharedSession:
    """A live session waiting for an agent, and how far the hand-over went."""

    session_token: str
    node: str
    joined: Event = field(default_factory=Event)
    claimed: bool = False  # an agent's read is in flight (or done)
    closed: bool = False  # the customer is stopping it: no agent may claim it any more


class SessionPool:
    """Published sessions no agent has claimed yet; the newest are claimed first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        # Bounded: when agents fall behind, the oldest sessions are dropped from the pool (their
        # customers stop them after their wait) instead of growing without end.
        self._waiting: deque[SharedSession] = deque(maxlen=capacity)
        self._published = Event()  # wakes idle agents instead of having them poll

    def __len__(self) -> int:
        return len(self._waiting)

    def clear(self) -> None:
        self._waiting.clear()

    def publish(self, session: SharedSession) -> None:
        self._waiting.append(session)
        self._published.set()

    def claim(self, timeout_s: float = 0.0) -> SharedSession | None:
        """Take the newest session whose customer has not closed it; wait up to `timeout_s`."""
        session = self._take()
        if session is None and timeout_s > 0:
            self._published.clear()
            self._published.wait(timeout_s)
            session = self._take()  # None when another agent was faster
        return session

    def _take(self) -> SharedSession | None:
        while self._waiting:
            session = self._waiting.pop()
            if not session.closed:
                session.claimed = True
                return session
        return None

    @staticmethod
    def close(session: SharedSession, hold_s: float, read_deadline_s: float) -> bool:
        """Wait up to `hold_s` for an agent, then close; return whether an agent read it.

        A read already in flight is awaited (up to `read_deadline_s`) so that the stop that
        follows cannot overtake it.
        """
        session.joined.wait(hold_s)
        session.closed = True
        if session.claimed:
            session.joined.wait(read_deadline_s)
        return bool(session.joined.is_set())
