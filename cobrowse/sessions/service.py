"""Session rules, independent of HTTP: create, look up, stop, and where a token lives."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cobrowse.clock import Clock
from cobrowse.config.settings import NodeSettings
from cobrowse.errors import BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError
from cobrowse.observe.metrics import SessionEvents
from cobrowse.sessions import screencapture
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.tokens import SESSION_TOKEN, USER_TOKEN, TokenIssuer
from cobrowse.store import (
    RateLimitStore,
    Session,
    SessionNotFoundError,
    SessionStore,
    StopResult,
    TokenConflictError,
)

MAX_CREATE_ATTEMPTS = 20


class HostedElsewhereError(Exception):
    """The token belongs to another node of the cluster."""

    def __init__(self, node: str, server_url: str | None) -> None:
        super().__init__(node)
        self.node = node
        self.server_url = server_url


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

    def maybe_sweep(self) -> None:
        """Sweep if this process has not swept for `interval_s` seconds."""
        now_ms = self.clock.now_ms()
        if now_ms < self.next_due_ms:
            return
        self.next_due_ms = now_ms + round(self.interval_s * 1000)
        swept = self.store.sweep(now_ms, self.retention_ms)
        self.events.stopped("timeout", swept.timed_out)
        self.rate_limits.forget_before(now_ms)


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
    ) -> None:
        self.settings = settings
        self.events = events
        self.store = store
        self.ring = ring
        self.issuer = issuer
        self.clock = clock
        self.timeout_ms = round(settings.cluster.session.inactivity_timeout * 1000)
        self.server_urls = {node.name: node.server_url for node in settings.cluster.nodes}

    def create(self, *, with_csrf_token: bool = False) -> Session:
        """Create a live session with fresh tokens owned by this node."""
        csrf_token = self.issuer.csrf_token() if with_csrf_token else None
        for _ in range(MAX_CREATE_ATTEMPTS):
            now = self.clock.now_ms()
            session = Session(
                session_token=self.issuer.session_token(),
                user_token=self.issuer.user_token(),
                activation_time=now,
                expires_at=now + self.timeout_ms,
                csrf_token=csrf_token,
            )
            try:
                self.store.create(session)
            except TokenConflictError:
                continue  # another live session drew the same token: draw again
            self.events.created()
            return session
        raise TokenConflictError("could not draw an unused sessionToken")

    def locate(self, token: str) -> None:
        """Raise HostedElsewhereError when another node owns `token`."""
        owner = self.ring.owner(token)
        if owner is not None and owner != self.settings.name:
            raise HostedElsewhereError(owner, self.server_urls.get(owner))

    def get_live(self, session_token: str) -> Session:
        """Return the live session with this sessionToken, or raise NotFoundError."""
        if not SESSION_TOKEN.fullmatch(session_token):
            raise BadRequestError("A sessionToken is exactly 9 digits.", operation="sessions.get")
        session = self.store.get_live(session_token, self.clock.now_ms())
        if session is None:
            # Only a miss needs the ring: a session stored here is hosted here, whatever the ring.
            self.locate(session_token)
            raise NotFoundError("No live session has this sessionToken.", operation="sessions.get")
        return session

    def stop(self, user_token: str, csrf_token: str | None = None) -> StopResult:
        """End the session of `user_token`; repeated calls return the recorded times."""
        self.controller_session(user_token, csrf_token, "sessions.stop")
        try:
            result = self.store.stop(user_token, self.clock.now_ms())
        except SessionNotFoundError:
            raise NotFoundError(
                "No session has this userToken.", operation="sessions.stop"
            ) from None
        if result.ended_now:
            self.events.stopped(result.session.end_reason or "stop")
        return result

    def ping(self, user_token: str, csrf_token: str | None = None) -> Session:
        """Keep a live session alive; 401 once it has ended (by timeout or stop)."""
        self.controller_session(user_token, csrf_token, "sessions.ping")
        now = self.clock.now_ms()
        session = self.store.touch(user_token, now, now + self.timeout_ms)
        if session is None:
            raise UnauthorizedError(
                "The session has ended: create a new one.",
                operation="sessions.ping",
                headers={"WWW-Authenticate": 'Cobrowse realm="cobrowse", error="session_ended"'},
            )
        return session

    def screen_capture(self, user_token: str, action: str, csrf_token: str | None = None) -> str:
        """Apply a screen-capture action to a live session; return the resulting state."""
        self.controller_session(user_token, csrf_token, screencapture.OPERATION)
        now = self.clock.now_ms()
        session = self.store.change_screen_capture(
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

    def controller_session(
        self, user_token: str, csrf_token: str | None, operation: str
    ) -> Session:
        """Return the session of a Controller call, after checking the token and CSRF pair.

        A session created with `X-Support-CSRFP: true` accepts Controller calls only with the
        same `X-CSRF-Token` it was given; the comparison takes constant time.
        """
        if not USER_TOKEN.fullmatch(user_token):
            raise BadRequestError(
                "A userToken is a digit followed by 22 URL-safe characters.", operation=operation
            )
        session = self.store.get_by_user_token(user_token)
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
