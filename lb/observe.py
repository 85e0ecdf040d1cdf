"""What the router records per request: request IDs, latency, request rates, access log."""

from __future__ import annotations

import logging
import os
import re
import time
from bisect import bisect_left
from typing import TYPE_CHECKING

from cobrowse.config.settings import ClusterConfig
from cobrowse.observe.accesslog import AccessLog, utc_timestamp
from cobrowse.observe.metrics import LATENCY_BUCKETS
from lb.http import Request

if TYPE_CHECKING:
    from lb.router import Router

SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9-]{1,255}$")
RATE_INTERVAL_S = 1.0


def request_id_for(incoming: bytes) -> bytes:
    """Keep a client's X-Request-ID if sane (<= 255 letters, digits, dashes), else make one."""
    if incoming and SANE_REQUEST_ID.match(incoming):
        return incoming
    return os.urandom(16).hex().encode()


class LatencyHistogram:
    """A Prometheus-style histogram kept as plain counters: one bisect per request."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last slot is +Inf
        self.total_seconds = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total_seconds += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """Return (le, cumulative count) pairs, +Inf last."""
        pairs, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


def route_template(target: bytes, context: bytes, node_names: frozenset[bytes]) -> str:
    """Return the route of a request for logs: the template, never a token."""
    path = target.split(b"?", 1)[0]
    prefix = ""
    segment = path[1:].split(b"/", 1)[0]
    if segment in node_names:
        prefix, path = "/{node}", path[1 + len(segment) :] or b"/"
    if path in (b"/health", b"/lb/status", b"/lb/metrics"):
        return prefix + path.decode()
    if not path.startswith(context + b"/"):
        return prefix + "other"
    rest = path[len(context) :]
    base = context.decode()
    if rest in (b"/health", b"/metrics", b"/openapi.json", b"/rest/live/sessions"):
        return prefix + base + rest.decode()
    if rest.startswith(b"/rest/live/sessions/"):
        return prefix + base + "/rest/live/sessions/{sessionToken}"
    if rest.startswith(b"/rest/live/users/"):
        parts = rest.split(b"/", 5)
        action = b"/".join(parts[5:]) if len(parts) > 5 else b""
        known = action in (b"session/stop", b"ping", b"screen-capture")
        return (
            prefix
            + base
            + "/rest/live/users/{userToken}/"
            + (action.decode() if known else "other")
        )
    return prefix + "other"


class RouterObserver:
    """Latency histogram, per-node request rates, and the access log of the router."""

    def __init__(self, router: Router, config: ClusterConfig) -> None:
        self.router = router
        self.latency = LatencyHistogram()
        self.access_log: AccessLog | None = None
        if logging.getLevelName(config.logging.level) <= logging.INFO:
            self.access_log = AccessLog(text_format=config.logging.format == "text")
        self.context = config.context_path.encode()
        self.node_names = frozenset(node.name.encode() for node in config.nodes)
        self.rates: dict[str, float] = {}
        self._last_totals: dict[str, int] = {}
        self._last_rate_at = time.monotonic()

    def reconfigure(self, config: ClusterConfig) -> None:
        self.node_names = frozenset(node.name.encode() for node in config.nodes)

    def request_done(self, request: Request, status: int, peer: str) -> None:
        seconds = time.perf_counter() - request.started
        self.latency.observe(seconds)
        if self.access_log is None:
            return
        client = peer
        if request.forwarded_for and self.router.trusted.contains(peer):
            client = request.forwarded_for.split(b",", 1)[0].strip().decode("latin-1")
        self.access_log.record(
            {
                "time": utc_timestamp(time.time()),
                "method": request.method.decode("latin-1"),
                "route": route_template(request.target, self.context, self.node_names),
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client": client,
                "node": request.node,
                "rule": request.rule,
                "request_id": request.request_id.decode("latin-1"),
            }
        )

    def tick(self, now: float) -> None:
        """Refresh per-node request rates (requests per second over the last interval)."""
        elapsed = now - self._last_rate_at
        if elapsed < RATE_INTERVAL_S:
            return
        totals: dict[str, int] = {}
        for (node, _rule), count in self.router.requests.items():
            totals[node] = totals.get(node, 0) + count
        self.rates = {
            node: (total - self._last_totals.get(node, 0)) / elapsed
            for node, total in totals.items()
        }
        self._last_totals, self._last_rate_at = totals, now
