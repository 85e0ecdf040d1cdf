"""Prometheus metrics of a node, exact across Gunicorn workers.

Under Gunicorn, `cobrowse.ops.node` points `PROMETHEUS_MULTIPROC_DIR` at a per-node directory
(emptied at start) before any worker imports prometheus_client, and removes a dead worker's
files from `child_exit`: each worker counts into its own file, and a scrape sums them. Without
that variable (tests, `create_app` on its own) the metrics live in a registry of their own.

Labels never hold a token: routes are Falcon's URI templates.
"""

from __future__ import annotations

import os
import stat
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from cobrowse.clock import Clock
from cobrowse.store import SessionStore

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Event-loop lag: fine below 5 ms (the target under load), coarse above.
LOOP_LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class SessionEvents(Protocol):
    """What the session rules report: creations and endings."""

    def created(self) -> None: ...

    def stopped(self, reason: str, count: int = 1) -> None: ...


class HttpObserver(Protocol):
    """What the HTTP layer reports: one finished request."""

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None: ...


class LoopObserver(Protocol):
    """What the event-loop monitor reports: how late a timer fired."""

    def loop_lag(self, seconds: float) -> None: ...


class BatchedHistogram:
    """A histogram's observations counted in this process, added to a Prometheus histogram
    in one go (`flush_into`): the same totals as observing each value there."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def flush_into(self, histogram: Any) -> None:
        """Add the counts to a labelled prometheus_client Histogram and start over."""
        if not any(self.counts):
            return
        # prometheus_client keeps a histogram as non-cumulative bucket values and a sum, the
        # way `Histogram.observe` updates them; tests/test_metrics.py checks that both agree.
        histogram._sum.inc(self.total)
        for bucket, count in zip(histogram._buckets, self.counts, strict=True):
            if count:
                bucket.inc(count)
        self.counts = [0] * len(self.counts)
        self.total = 0.0


class NoMetrics:
    """Metrics switched off (`[metrics] enabled = false`)."""

    enabled = False

    def flush(self) -> None:
        pass

    def loop_lag(self, seconds: float) -> None:
        pass

    def created(self) -> None:
        pass

    def stopped(self, reason: str, count: int = 1) -> None:
        pass

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        pass


class NodeMetrics:
    """The node's counters and histograms, and the scrape that reads them."""

    enabled = True

    def __init__(self, store: SessionStore, clock: Clock) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV)
        # In multiprocess mode values go to per-process files; a registry would only hide them.
        self.registry = None if self.multiprocess_dir else CollectorRegistry()
        self.sessions_created = Counter(
            "cobrowse_sessions_created", "Sessions created on this node.", registry=self.registry
        )
        self.sessions_stopped = Counter(
            "cobrowse_sessions_stopped",
            "Sessions ended on this node, by Stop Session or by inactivity.",
            ["reason"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "cobrowse_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "cobrowse_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag_seconds = Histogram(
            "cobrowse_event_loop_lag_seconds",
            "How late the event loop of a worker ran a timer: time it spent unable to serve.",
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        )
        self._request_counts: dict[tuple[str, str, int], int] = {}
        self._durations: dict[str, BatchedHistogram] = {}
        self.live = LiveSessionsCollector(store, clock)
        if self.registry is not None:
            self.registry.register(self.live)
        self.realtime = RealtimeMetrics(self.registry)

    def created(self) -> None:
        self.sessions_created.inc()

    def loop_lag(self, seconds: float) -> None:
        self.loop_lag_seconds.observe(seconds)

    def stopped(self, reason: str, count: int = 1) -> None:
        if count:
            self.sessions_stopped.labels(reason).inc(count)

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        # Counted in this worker, added to the shared metric files by `flush` (once a second):
        # three locked writes to memory-mapped files per request cost more than the rest of
        # the observation.
        key = (route, method if method in KNOWN_METHODS else "OTHER", status)
        self._request_counts[key] = self._request_counts.get(key, 0) + 1
        histogram = self._durations.get(route)
        if histogram is None:
            histogram = self._durations[route] = BatchedHistogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def flush(self) -> None:
        """Add what this worker counted since the last flush to the shared metrics."""
        counts, self._request_counts = self._request_counts, {}
        for (route, method, status), count in counts.items():
            self.http_requests.labels(route, method, str(status)).inc(count)
        for route, histogram in self._durations.items():
            histogram.flush_into(self.http_duration.labels(route))
        self.realtime.flush()

    async def exposition(self) -> tuple[bytes, str]:
        """Return the text exposition of every worker's metrics, and its content type."""
        import asyncio

        self.flush()  # this worker's counts now; the others' within a second
        await self.live.refresh()
        # Reading every worker's metric files is file I/O: off the event loop.
        return await asyncio.to_thread(self._exposition)

    def _exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if self.registry is not None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()  # a fresh one per scrape, as prometheus_client advises
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        registry.register(self.live)
        return generate_latest(registry), CONTENT_TYPE_LATEST


# Message types as labels: the protocol's, everything else is "other".
MESSAGE_TYPES = frozenset(
    {
        "hello",
        "welcome",
        "events",
        "ack",
        "consent",
        "mode",
        "userData",
        "pointer",
        "input",
        "mode-request",
        "exit",
        "join-request",
        "joined",
        "left",
        "snapshot-request",
        "ended",
        "error",
        "resync",
    }
)
DELIVERY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 10.0)


class RealtimeMetrics:
    """The realtime channel's metrics (`cobrowse.realtime.observe.RealtimeObserver`)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.channels = Gauge(
            "cobrowse_realtime_channels",
            "Open realtime channels, by role.",
            ["role"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.messages = Counter(
            "cobrowse_realtime_messages",
            "Realtime messages, by direction (in: from clients, out: to clients) and type.",
            ["direction", "type"],
            registry=registry,
        )
        self.bytes = Counter(
            "cobrowse_realtime_bytes",
            "Bytes of realtime messages, by direction.",
            ["direction"],
            registry=registry,
        )
        self.delivery = Histogram(
            "cobrowse_realtime_delivery_lag_seconds",
            "From a message stored to its sending to a participant.",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.resyncs = Counter(
            "cobrowse_realtime_resyncs",
            "Participants restarted from the last full snapshot, by reason.",
            ["reason"],
            registry=registry,
        )
        self.refusals = Counter(
            "cobrowse_realtime_refusals",
            "Handshakes, frames and channels refused, by reason.",
            ["reason"],
            registry=registry,
        )
        # Messages are counted here and added to the shared metric files once a second
        # (`flush`): a thousand messages a second would otherwise cost thousands of writes.
        self._counts: dict[tuple[str, str], int] = {}
        self._bytes = {"in": 0, "out": 0}

    def _count(self, direction: str, kind: str, size: int) -> None:
        key = (direction, kind if kind in MESSAGE_TYPES else "other")
        self._counts[key] = self._counts.get(key, 0) + 1
        self._bytes[direction] += size

    def flush(self) -> None:
        """Add what was counted since the last flush to the shared metrics."""
        counts, self._counts = self._counts, {}
        for (direction, kind), count in counts.items():
            self.messages.labels(direction, kind).inc(count)
        for direction, size in self._bytes.items():
            if size:
                self.bytes.labels(direction).inc(size)
                self._bytes[direction] = 0

    def channel_opened(self, role: str) -> None:
        self.channels.labels(role).inc()

    def channel_closed(self, role: str) -> None:
        self.channels.labels(role).dec()

    def received(self, kind: str, size: int) -> None:
        self._count("in", kind, size)

    def sent(self, kind: str, size: int, lag_ms: int) -> None:
        self._count("out", kind, size)
        self.delivery.observe(max(lag_ms, 0) / 1000)

    def resync(self, reason: str) -> None:
        self.resyncs.labels(reason).inc()

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()


class LiveSessionsCollector:
    """`cobrowse_sessions_live`, read from the store at scrape time: the same for every worker."""

    def __init__(self, store: SessionStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.value = 0

    async def refresh(self) -> None:
        """Count the live sessions now, for the scrape that follows."""
        self.value = await self.store.live_count(self.clock.now_ms())

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily(
            "cobrowse_sessions_live", "Live sessions hosted on this node.", value=self.value
        )


def prepare_multiprocess_dir(directory: str) -> None:
    """Empty (or create) the directory and point prometheus_client at it: call before forking.

    It usually lives in a world-writable place (/dev/shm): refuse one that another user made.
    """
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{directory} is not a directory of this user: set [metrics] directory")
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))
    os.environ[MULTIPROC_ENV] = directory


def mark_worker_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (Gunicorn's `child_exit`); its counters stay summed."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
