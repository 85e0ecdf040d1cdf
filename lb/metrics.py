"""`/lb/metrics`: the router's Prometheus metrics, read from its counters at scrape time.

The hot path only bumps plain counters (and one histogram bisect); the families are built here,
when Prometheus asks. Labels are node names, rules and error kinds: never a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from lb.backends import State

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from lb.router import Router


class RouterCollector:
    """A prometheus_client collector over the router's state."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        router = self.router
        requests = CounterMetricFamily(
            "cobrowse_lb_requests",
            "Requests routed to each node, by the rule that chose it.",
            labels=["node", "rule"],
        )
        for (node, rule), count in sorted(router.requests.items()):
            requests.add_metric([node, rule], count)
        yield requests

        errors = CounterMetricFamily(
            "cobrowse_lb_upstream_errors",
            "Failed exchanges with nodes: connect, reset or timeout.",
            labels=["node", "kind"],
        )
        for (node, kind), count in sorted(router.upstream_errors.items()):
            errors.add_metric([node, kind], count)
        yield errors

        up = GaugeMetricFamily(
            "cobrowse_lb_node_up",
            "1 when the node passes its health checks (draining included), else 0.",
            labels=["node"],
        )
        draining = GaugeMetricFamily(
            "cobrowse_lb_node_draining", "1 while the node's /health answers 404.", labels=["node"]
        )
        for name, backend in router.backends.items():
            up.add_metric([name], 0 if backend.state is State.DOWN else 1)
            draining.add_metric([name], 1 if backend.state is State.DRAINING else 0)
        yield up
        yield draining

        latency = router.observer.latency
        yield HistogramMetricFamily(
            "cobrowse_lb_request_duration_seconds",
            "Time from a complete request to its answer, through the router.",
            buckets=latency.cumulative(),
            sum_value=latency.total_seconds,
        )


def exposition(router: Router) -> tuple[bytes, str]:
    """Return the router's metrics in the Prometheus text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(RouterCollector(router))
    return generate_latest(registry), CONTENT_TYPE_LATEST
