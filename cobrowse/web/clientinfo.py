"""Who is the client: the peer, or what a trusted proxy says about the client behind it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

import falcon.asgi


class TrustedProxies:
    """`[security] trustedProxies`: the peers whose X-Forwarded-* headers are believed."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
        # Peers are few (the load balancers): decide each address once.
        self.contains = lru_cache(maxsize=1024)(self._contains)

    def _contains(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class ClientResolver:
    """Resolve the client address and scheme, trusting X-Forwarded-* only from known proxies."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.is_trusted = TrustedProxies(trusted_proxies).contains

    def address(self, req: falcon.asgi.Request) -> str:
        """Return the client's address: the first X-Forwarded-For entry behind a trusted proxy."""
        return self.address_from(req.remote_addr or "", req.get_header("X-Forwarded-For"))

    def address_from(self, peer: str, forwarded_for: str | None) -> str:
        """Return the client's address from its peer address and its X-Forwarded-For."""
        if forwarded_for and self.is_trusted(peer):
            first = forwarded_for.split(",", 1)[0].strip()
            if first and len(first) <= 64:
                return first
        return peer

    def is_https(self, req: falcon.asgi.Request) -> bool:
        """Return whether the client reached us over HTTPS, directly or via a trusted proxy."""
        if req.scheme == "https":
            return True
        if self.is_trusted(req.remote_addr or ""):
            proto = req.get_header("X-Forwarded-Proto")
            return proto is not None and proto.split(",", 1)[0].strip().lower() == "https"
        return False
