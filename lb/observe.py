"""What the router records per request: request IDs, latency, request rates, access log.

The access log is the costliest of these per request, so the router keeps a tuple per request
and renders the lines in batches, when they are written (at least every 0.2 s, or every
MAX_BUFFERED requests): the same JSON (or `key=value`) lines as
`cobrowse.observe.accesslog.AccessLog.record`, field for field (durations always with three
decimals), but from one string format instead of a dict through `json.dumps`. Only the values
that a client can choose go through the JSON string encoder; the others are known to be safe
(node names and rules from the cluster file, request IDs checked against SANE_REQUEST_ID,
numbers, socket addresses).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from json.encoder import encode_basestring_ascii

from cobrowse.config.settings import ClusterConfig
from cobrowse.observe.accesslog import MAX_BUFFERED, AccessLog, utc_timestamp
from cobrowse.observe.metrics import LATENCY_BUCKETS
from cobrowse.web.clientinfo import TrustedProxies
from lb.http import Request

SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9-]{1,255}$")
RATE_INTERVAL_S = 1.0

# Request IDs the router makes: 32 hex digits, a random half per process and a counter, as
# unique as random ones without a getrandom call per request.
_ID_PREFIX = os.urandom(8).hex().encode()
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(6), "big"))


def request_id_for(incoming: bytes) -> bytes:
    """Keep a client's X-Request-ID if sane (<= 255 letters, digits, dashes), else make one."""
    if incoming and SANE_REQUEST_ID.match(incoming):
        return incoming
    return b"%s%016x" % (_ID_PREFIX, next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF)


class _Stamp:
    """The last access-log timestamp made, and its epoch millisecond."""

    millisecond = -1
    text = ""


def log_timestamp(epoch_ns: int) -> str:
    """Return `utc_timestamp` of a time, formatted once per millisecond."""
    epoch_ms = epoch_ns // 1_000_000
    if _Stamp.millisecond != epoch_ms:
        seconds, millis = divmod(epoch_ms, 1000)
        _Stamp.text = f"{utc_timestamp(seconds)[:-5]}.{millis:03d}Z"
        _Stamp.millisecond = epoch_ms
    return _Stamp.text


# One answered request, as the access log keeps it until its line is rendered: (time ns,
# method, target, status, seconds, peer, client from a trusted X-Forwarded-For or None, node,
# rule, request ID).
Entry = tuple[int, bytes, bytes, int, float, str, str | None, str | None, str | None, bytes]


class RouterAccessLog(AccessLog):
    """The router's access log: request entries kept as tuples, rendered when written."""

    def __init__(self, render: Callable[[Entry], str], text_format: bool = False) -> None:
        super().__init__(text_format=text_format)
        self.render_entry = render
        self.entries: list[Entry | str] = []  # in order; a str is a line already rendered

    def record_entry(self, entry: Entry | str) -> None:
        if self.flusher_pid is None:  # the router never forks: one flusher, started once
            self._start_flusher()
        with self.lock:
            self.entries.append(entry)
            full = len(self.entries) >= MAX_BUFFERED
        if full:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            entries, self.entries = self.entries, []
        if entries:
            render = self.render_entry
            lines = [entry if isinstance(entry, str) else render(entry) for entry in entries]
            with self.lock:
                self.lines.extend(lines)
        super().flush()


_JSON_LINE = (
    '{"time":"%s","method":%s,"route":%s,"status":%d,"duration_ms":%.3f,"client":%s,'
    '"node":%s,"rule":%s,"request_id":"%s"}'
)
_TEXT_LINE = (
    'time="%s" method=%s route=%s status=%d duration_ms=%.3f client=%s node=%s rule=%s '
    'request_id="%s"'
)


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
        known = action in (b"session/stop", b"ping", b"screen-capture", b"channel")
        return (
            prefix
            + base
            + "/rest/live/users/{userToken}/"
            + (action.decode() if known else "other")
        )
    return prefix + "other"


class RouterObserver:
    """Latency histogram, per-node request rates, and the access log of the router."""

    def __init__(
        self,
        config: ClusterConfig,
        trusted: TrustedProxies,
        requests: Counter[tuple[str, str]],
    ) -> None:
        self.trusted = trusted
        self.requests = requests  # the router's (node, rule) counts, for the rates
        self.latency = LatencyHistogram()
        self.access_log: RouterAccessLog | None = None
        if logging.getLevelName(config.logging.level) <= logging.INFO:
            self.access_log = RouterAccessLog(
                self._request_line, text_format=config.logging.format == "text"
            )
        self.line_format = _TEXT_LINE if config.logging.format == "text" else _JSON_LINE
        self.encoded: dict[object, str] = {None: "null"}  # JSON strings of methods, routes, ...
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
        if self.access_log is not None:
            forwarded = None
            if request.forwarded_for and self.trusted.contains(peer):
                forwarded = self._client(request, peer)
            self.access_log.record_entry(
                (
                    time.time_ns(),
                    request.method,
                    request.target,
                    status,
                    seconds,
                    peer,
                    forwarded,
                    request.node,
                    request.rule,
                    request.request_id,
                )
            )

    def _request_line(self, entry: Entry) -> str:
        """Render one request's access-log line (when the log is written)."""
        epoch_ns, method, target, status, seconds, peer, forwarded, node, rule, request_id = entry
        encoded = self.encoded
        route = route_template(target, self.context, self.node_names)
        # A socket's address has nothing to escape; an X-Forwarded-For value may have anything.
        client = f'"{peer}"' if forwarded is None else encode_basestring_ascii(forwarded)
        return self.line_format % (
            log_timestamp(epoch_ns),
            encoded.get(method) or self._encode(method),
            encoded.get(route) or self._encode(route),
            status,
            seconds * 1000,
            client,
            encoded.get(node) or self._encode(node),
            encoded.get(rule) or self._encode(rule),
            request_id.decode("ascii"),
        )

    def _encode(self, value: str | bytes | None) -> str:
        """Return (and remember) a JSON string: methods, routes, node names and rules are few."""
        assert value is not None
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if len(self.encoded) > 4096:  # they are few; never let the cache grow without bound
            self.encoded = {None: "null"}
        self.encoded[value] = encoded = encode_basestring_ascii(text)
        return encoded

    def tunnel_closed(
        self,
        request: Request,
        peer: str,
        seconds: float,
        *,
        from_client: int,
        from_node: int,
        reason: str,
    ) -> None:
        """Log the end of a WebSocket tunnel: how long it lived, bytes each way, and why."""
        if self.access_log is None:
            return
        self.access_log.record_entry(
            self.access_log.render(
                {
                    "time": log_timestamp(time.time_ns()),
                    "event": "tunnel_closed",
                    "route": route_template(request.target, self.context, self.node_names),
                    "duration_ms": round(seconds * 1000, 3),
                    "bytes_from_client": from_client,
                    "bytes_from_node": from_node,
                    "reason": reason,
                    "client": self._client(request, peer),
                    "node": request.node,
                    "rule": request.rule,
                    "request_id": request.request_id.decode("latin-1"),
                }
            )
        )

    def _client(self, request: Request, peer: str) -> str:
        if request.forwarded_for and self.trusted.contains(peer):
            return request.forwarded_for.split(b",", 1)[0].strip().decode("latin-1")
        return peer

    def tick(self, now: float) -> None:
        """Refresh per-node request rates (requests per second over the last interval)."""
        elapsed = now - self._last_rate_at
        if elapsed < RATE_INTERVAL_S:
            return
        totals: dict[str, int] = {}
        for (node, _rule), count in self.requests.items():
            totals[node] = totals.get(node, 0) + count
        self.rates = {
            node: (total - self._last_totals.get(node, 0)) / elapsed
            for node, total in totals.items()
        }
        self._last_totals, self._last_rate_at = totals, now
