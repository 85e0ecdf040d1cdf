"""Session rules, independent of HTTP: create, look up, stop, and where a token lives."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cobrowse.clock import Clock
from cobrowse.errors import BadRequestError, NotFoundError
from cobrowse.ring import ClusterRing
from cobrowse.settings import NodeSettings
from cobrowse.store import (
    Session,
    SessionNotFoundError,
    SessionStore,
    StopResult,
    TokenConflictError,
)
from cobrowse.tokens import SESSION_TOKEN, USER_TOKEN, TokenIssuer

MAX_CREATE_ATTEMPTS = 20


class HostedElsewhereError(Exception):
    """The token belongs to another node of the cluster."""

    def __init__(self, node: str, server_url: str | None) -> None:
        super().__init__(node)
        self.node = node
        self.server_url = server_url


@dataclass(slots=True)
class Sweeper:
    """End timed-out sessions and purge old history, at most once per interval per process."""

    store: SessionStore
    clock: Clock
    interval_s: float
    retention_ms: int
    next_due: float = 0.0

    def maybe_sweep(self) -> None:
        """Sweep if this process has not swept for `interval_s` seconds."""
        now = time.monotonic()
        if now < self.next_due:
            return
        self.next_due = now + self.interval_s
        self.store.sweep(self.clock.now_ms(), self.retention_ms)


class SessionService:
    """Create and manage the sessions hosted on this node."""

    def __init__(
        self,
        settings: NodeSettings,
        store: SessionStore,
        ring: ClusterRing,
        issuer: TokenIssuer,
        clock: Clock,
    ) -> None:
        self.settings = settings
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
            return session
        raise TokenConflictError("could not draw an unused sessionToken")

    def locate(self, token: str) -> None:
        """Raise HostedElsewhereError when another node owns `token`."""
        owner = self.ring.owner(token)
        if owner is not None and owner != self.settings.name:
            raise HostedElsewhereError(owner, self.server_urls.get(owner))

    def get_live(self, session_token: str) -> Session:
        """Return the live session with this sessionToken, or raise NotFoundError."""
        if not SESSION_TOKEN.match(session_token):
            raise BadRequestError("A sessionToken is exactly 9 digits.", operation="sessions.get")
        self.locate(session_token)
        session = self.store.get_live(session_token, self.clock.now_ms())
        if session is None:
            raise NotFoundError("No live session has this sessionToken.", operation="sessions.get")
        return session

    def stop(self, user_token: str) -> StopResult:
        """End the session of `user_token`; repeated calls return the recorded times."""
        self.check_user_token(user_token, "sessions.stop")
        try:
            return self.store.stop(user_token, self.clock.now_ms())
        except SessionNotFoundError:
            raise NotFoundError(
                "No session has this userToken.", operation="sessions.stop"
            ) from None

    def check_user_token(self, user_token: str, operation: str) -> None:
        """Reject malformed userTokens and those hosted on another node."""
        if not USER_TOKEN.match(user_token):
            raise BadRequestError(
                "A userToken is a digit followed by 22 URL-safe characters.", operation=operation
            )
        self.locate(user_token)
