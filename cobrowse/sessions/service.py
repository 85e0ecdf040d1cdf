"""Session rules, independent of HTTP: create, look up, stop, and where a token lives.

The rules themselves are plain synchronous code (token formats, the CSRF pair, screen-capture
transitions, ring ownership, token drawing); the methods are coroutines only because they ask
the store, which may have to wait.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cobrowse.clock import Clock
from cobrowse.config.settings import NodeSettings
from cobrowse.errors import (
    BadRequestError,
    ForbiddenError,
    HostedElsewhereError,
    NotFoundError,
    UnauthorizedError,
)
from cobrowse.observe.metrics import SessionEvents
from cobrowse.sessions import screencapture
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.tokens import SESSION_TOKEN, USER_TOKEN, TokenIssuer

if TYPE_CHECKING:
    from cobrowse.store.live import LiveEntry
from cobrowse.store import (
    RateLimitStore,
    Session,
    SessionNotFoundError,
    SessionStore,
    StopResult,
    TokenConflictError,
)

MAX_CREATE_ATTEMPTS = 20


Announce = Callable[[str, "list[LiveEntry]"], Awaitable[None]]


async def _nobody(session_key: str, entries: list[LiveEntry]) -> None:
    """Announce to nobody: for apps without realtime channels (tests of the REST API alone)."""


@dataclass(slots=True)
class Sweeper:
    """End timed-out sessions, purge old history and stale rate-limit counters.

    At most once per interval per process: every worker sweeps, and sweeping twice is harmless.
    """

    store: SessionStore
    rate_limits: RateLimitStore
    clock: Clock
    events: SessionEvents
    interval_s: float
    retention_ms: int
    next_due_ms: int = 0
    announce: Announce = _nobody  # tells the channels of each session it ends

    async def maybe_sweep(self) -> None:
        """Sweep if this process has not swept for `interval_s` seconds."""
        now_ms = self.clock.now_ms()
        if now_ms < self.next_due_ms:
            return
        self.next_due_ms = now_ms + round(self.interval_s * 1000)
        swept = await self.store.sweep(now_ms, self.retention_ms)
        self.events.stopped("timeout", swept.timed_out)
        for session_key, entries in swept.ended:
            await self.announce(session_key, entries)
        await self.rate_limits.forget_before(now_ms)


class SessionService:
    """Create and manage the sessions hosted on this node."""

    def __init__(
        self,
        settings: NodeSettings,
        store: SessionStore,
        ring: ClusterRing,
        issuer: TokenIssuer,
        clock: Clock,
        *,
        events: SessionEvents,
        announce: Announce = _nobody,
    ) -> None:
        self.settings = settings
        self.events = events
        self.announce = announce  # tells the channels of a session that ends
        self.store = store
        self.ring = ring
        self.issuer = issuer
        self.clock = clock
        self.timeout_ms = round(settings.cluster.session.inactivity_timeout * 1000)
        # With a shared store every node sees every session: a miss is a miss everywhere.
        self.shared_store = settings.cluster.store.shared
        self.server_urls = {node.name: node.server_url for node in settings.cluster.nodes}

    async def create(
        self, *, with_csrf_token: bool = False, user_data: dict[str, str] | None = None
    ) -> Session:
        """Create a live session with fresh tokens owned by this node."""
        csrf_token = self.issuer.csrf_token() if with_csrf_token else None
        customer_id = self.issuer.user_id()
        for _ in range(MAX_CREATE_ATTEMPTS):
            now = self.clock.now_ms()
            session = Session(
                session_token=self.issuer.session_token(),
                user_token=self.issuer.user_token(),
                activation_time=now,
                expires_at=now + self.timeout_ms,
                csrf_token=csrf_token,
                customer_id=customer_id,
                user_data=user_data,
            )
            try:
                await self.store.create(session)
            except TokenConflictError:
                continue  # another live session drew the same token: draw again
            self.events.created()
            return session
        raise TokenConflictError("could not draw an unused sessionToken")

    def locate(self, token: str) -> None:
        """Raise HostedElsewhereError when another node owns `token` (and stores its session)."""
        if self.shared_store:
            return
        owner = self.ring.owner(token)
        if owner is not None and owner != self.settings.name:
            raise HostedElsewhereError(owner, self.server_urls.get(owner))

    async def get_live(self, session_token: str) -> Session:
        """Return the live session with this sessionToken, or raise NotFoundError."""
        if not SESSION_TOKEN.fullmatch(session_token):
            raise BadRequestError("A sessionToken is exactly 9 digits.", operation="sessions.get")
        session = await self.store.get_live(session_token, self.clock.now_ms())
        if session is None:
            # Only a miss needs the ring: a session stored here is hosted here, whatever the ring.
            self.locate(session_token)
            raise NotFoundError("No live session has this sessionToken.", operation="sessions.get")
        return session

    async def stop(self, user_token: str, csrf_token: str | None = None) -> StopResult:
        """End the session of `user_token`; repeated calls return the recorded times."""
        await self.controller_session(user_token, csrf_token, "sessions.stop")
        try:
            result = await self.store.stop(user_token, self.clock.now_ms())
        except SessionNotFoundError:
            raise NotFoundError(
                "No session has this userToken.", operation="sessions.stop"
            ) from None
        if result.ended_now:
            self.events.stopped(result.session.end_reason or "stop")
            await self.announce(user_token, result.entries)
        return result

    async def ping(self, user_token: str, csrf_token: str | None = None) -> Session:
        """Keep a live session alive; 401 once it has ended (by timeout or stop)."""
        await self.controller_session(user_token, csrf_token, "sessions.ping")
        now = self.clock.now_ms()
        session = await self.store.touch(user_token, now, now + self.timeout_ms)
        if session is None:
            raise UnauthorizedError(
                "The session has ended: create a new one.",
                operation="sessions.ping",
                headers={"WWW-Authenticate": 'Cobrowse realm="cobrowse", error="session_ended"'},
            )
        return session

    async def screen_capture(
        self, user_token: str, action: str, csrf_token: str | None = None
    ) -> str:
        """Apply a screen-capture action to a live session; return the resulting state."""
        await self.controller_session(user_token, csrf_token, screencapture.OPERATION)
        now = self.clock.now_ms()
        session = await self.store.change_screen_capture(
            user_token,
            now,
            now + self.timeout_ms,
            lambda state: screencapture.apply(state, action),
        )
        if session is None:
            raise NotFoundError(
                "No live session has this userToken.", operation=screencapture.OPERATION
            )
        return session.screen_capture

    async def controller_session(
        self, user_token: str, csrf_token: str | None, operation: str
    ) -> Session:
        """Return the session of a Controller call, after checking the token and CSRF pair.

        A session created with `X-Support-CSRFP: true` accepts Controller calls only with the
        same `X-CSRF-Token` it was given; the comparison takes constant time.
        """
        if not USER_TOKEN.fullmatch(user_token):
            raise BadRequestError(
                "A userToken is at most 64 URL-safe characters (letters, digits, - and _).",
                operation=operation,
            )
        session = await self.store.get_by_user_token(user_token)
        if session is None:
            self.locate(user_token)  # as for Get Session: only a miss needs the ring
            raise NotFoundError("No session has this userToken.", operation=operation)
        if session.csrf_token is not None and not hmac.compare_digest(
            session.csrf_token.encode(), (csrf_token or "").encode()
        ):
            raise ForbiddenError(
                "This session requires its X-CSRF-Token header.", operation=operation
            )
        return session
