"""Choose a node for a request: URL prefix, then cookie or header, then token, then spread.

This is ARCHITECTURE invariant 3. Everything here is pure and cheap: a few byte searches and,
for token routing, one ring lookup. No node is ever asked where a session lives.

With the shared store (`[store] backend = redis`), any node serves any session: the prefix,
cookie or token still says which node to prefer, so that a healthy cluster keeps each session on
one node, but a request whose node is down fails over to another node that is up instead of
getting the 503 naming it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from itertools import count

from cobrowse.sessions.ring import ClusterRing
from lb.backends import Backend

COOKIE = b"gcbSessionServer="
MAX_CACHED_OWNERS = 65536  # token -> node answers remembered (a ring lookup hashes with md5)


class Rule(enum.Enum):
    """Which rule chose the node (also a metrics label)."""

    URL = "url"
    COOKIE = "cookie"
    HEADER = "header"
    TOKEN = "token"  # noqa: S105 - a rule name, not a secret
    SPREAD = "spread"
    FAILOVER = "failover"  # shared store: the node that prefix, cookie or token named is down


@dataclass(slots=True)
class Route:
    """Where a request goes, why, and the target to send (URL prefix removed).

    Treated as immutable; not a frozen dataclass, whose __init__ costs more on every request.
    """

    backend: Backend
    rule: Rule
    target: bytes


class UnavailableError(Exception):
    """No node can take this request; `node` names the one that should have (503)."""

    def __init__(self, node: str | None) -> None:
        super().__init__(node)
        self.node = node


def sticky_cookie_values(cookie_header: bytes) -> list[bytes]:
    """Return every gcbSessionServer value of a Cookie header, in order."""
    values = []
    start = cookie_header.find(COOKIE)
    while start != -1:
        if start == 0 or cookie_header[start - 1 : start] in (b" ", b";"):
            value_start = start + len(COOKIE)
            end = cookie_header.find(b";", value_start)
            values.append(cookie_header[value_start : None if end == -1 else end].strip())
        start = cookie_header.find(COOKIE, start + 1)
    return values


class RoutingTable:
    """The routing decision for one cluster definition."""

    def __init__(
        self,
        context_path: str,
        ring: ClusterRing,
        backends: dict[str, Backend],
        shared: bool = False,
    ) -> None:
        self.ring = ring
        self.shared = shared  # the shared store: any node serves any session
        self.backends = backends
        self.by_bytes = {name.encode(): backend for name, backend in backends.items()}
        context = context_path.encode()
        self.create_path = context + b"/rest/live/sessions"
        self.sessions_prefix = context + b"/rest/live/sessions/"
        self.users_prefix = context + b"/rest/live/users/"
        # Round-robin over this list honours `weight`: a node of weight 2 appears twice.
        self.primaries = [
            b for b in backends.values() if not b.backup for _ in range(b.spec.weight)
        ]
        self.backups = [b for b in backends.values() if b.backup for _ in range(b.spec.weight)]
        self._turn = count()
        self._owners: dict[bytes, str] = {}  # this ring's answers per token ("" for none)

    def route(
        self,
        method: bytes,
        target: bytes,
        cookie: bytes | None = None,
        sticky_header: bytes | None = None,
    ) -> Route:
        """Return where to send a request; raise UnavailableError (503) when nowhere."""
        # 1. URL-based stickiness: /<node>/... is that node, with the prefix removed.
        prefixed, target = self._strip_prefix(target)
        is_create = self.is_create(method, target)
        if prefixed is not None:
            route = self._sticky(prefixed, Rule.URL, target, is_create, explicit=True)
            if route is not None:
                return route
        # 2. Cookie, then header: a known node that is up.
        route = self._cookie_or_header(cookie, sticky_header, target, is_create)
        if route is not None:
            return route
        # 3. The token in the path names its node through the ring.
        if not is_create:
            owner = self._owner(target)
            if owner is not None:
                backend = self.backends.get(owner)
                if backend is not None and backend.up:
                    return Route(backend, Rule.TOKEN, target)
                if self.shared:
                    return Route(self.failover({owner}), Rule.FAILOVER, target)
                raise UnavailableError(owner)
        # 4. Spread new work over the nodes that take new sessions.
        return Route(self.spread(), Rule.SPREAD, target)

    def _strip_prefix(self, target: bytes) -> tuple[Backend | None, bytes]:
        end = len(target)
        for stop in (target.find(b"/", 1), target.find(b"?", 1)):
            if stop != -1:
                end = min(end, stop)
        backend = self.by_bytes.get(target[1:end])
        if backend is None:
            return None, target
        rest = target[end:]
        if not rest.startswith(b"/"):
            rest = b"/" + rest
        return backend, rest

    def _cookie_or_header(
        self, cookie: bytes | None, header: bytes | None, target: bytes, is_create: bool
    ) -> Route | None:
        if cookie:
            for value in sticky_cookie_values(cookie):
                backend = self.by_bytes.get(value)
                if backend is not None:  # the first value naming a node decides
                    return self._sticky(backend, Rule.COOKIE, target, is_create)
        if header:
            backend = self.by_bytes.get(header.strip())
            if backend is not None:
                return self._sticky(backend, Rule.HEADER, target, is_create)
        return None

    def is_create(self, method: bytes, target: bytes) -> bool:
        """Return whether a request (after prefix removal) is a Create Session."""
        query = target.find(b"?")
        return method == b"POST" and (target if query == -1 else target[:query]) == self.create_path

    def _sticky(
        self, backend: Backend, rule: Rule, target: bytes, is_create: bool, explicit: bool = False
    ) -> Route | None:
        """Honour stickiness unless the node cannot take this request."""
        if is_create:
            # A create never sticks to a node that is down or draining: redispatch it.
            return Route(backend, rule, target) if backend.takes_new_sessions else None
        if backend.up:
            return Route(backend, rule, target)
        if explicit:
            if self.shared:
                return Route(self.failover({backend.name}), Rule.FAILOVER, target)
            raise UnavailableError(backend.name)
        return None  # a stale cookie: the token, if any, decides

    def _owner(self, target: bytes) -> str | None:
        query = target.find(b"?")
        path = target if query == -1 else target[:query]
        # /sessions/{sessionToken}[/join] and /users/{userToken}/...: the first segment.
        if path.startswith(self.sessions_prefix):
            rest = path[len(self.sessions_prefix) :]
        elif path.startswith(self.users_prefix):
            rest = path[len(self.users_prefix) :]
        else:
            return None
        slash = rest.find(b"/")
        token = rest if slash == -1 else rest[:slash]
        owners = self._owners
        cached = owners.get(token)
        if cached is not None:
            return cached or None
        if not token or b"/" in token or not token.isascii():
            return None
        if len(owners) >= MAX_CACHED_OWNERS:
            owners.clear()
        found = self.ring.owner(token.decode("ascii"))
        owners[token] = found or ""
        return found

    def spread(self) -> Backend:
        """Round-robin over primaries that take new sessions, else backups; raise when none."""
        for pool in (self.primaries, self.backups):
            eligible = [backend for backend in pool if backend.takes_new_sessions]
            if eligible:
                return eligible[next(self._turn) % len(eligible)]
        raise UnavailableError(None)

    def failover(self, excluded: set[str]) -> Backend:
        """Pick a node for a request whose preferred node is down or refused the connection
        (shared store only): round-robin over the primaries that take new sessions, else those
        that are up but draining, else the backups likewise; raise (503 naming the preferred
        node, or none) when no node is up."""
        for pool in (self.primaries, self.backups):
            for eligible in (
                [b for b in pool if b.takes_new_sessions and b.name not in excluded],
                [b for b in pool if b.up and b.name not in excluded],
            ):
                if eligible:
                    return eligible[next(self._turn) % len(eligible)]
        raise UnavailableError(next(iter(excluded)) if len(excluded) == 1 else None)

    def spread_excluding(self, excluded: set[str]) -> Backend:
        """Pick another node for a create whose first node refused the connection."""
        for pool in (self.primaries, self.backups):
            eligible = [b for b in pool if b.takes_new_sessions and b.name not in excluded]
            if eligible:
                return eligible[next(self._turn) % len(eligible)]
        raise UnavailableError(None)
