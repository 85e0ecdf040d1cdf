"""`/lb/metrics`: the router's Prometheus metrics, read from its counters at scrape time.

The hot path only bumps plain counters (and one histogram bisect); the families are built here,
when Prometheus asks. Labels are node names, rules, error kinds and tunnel close reasons: never a
token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from lb.backends import State
from lb.state import RouterState

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


class RouterCollector:
    """A prometheus_client collector over the router's state."""

    def __init__(self, state: RouterState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        state = self.state
        requests = CounterMetricFamily(
            "cobrowse_lb_requests",
            "Requests routed to each node, by the rule that chose it.",
            labels=["node", "rule"],
        )
        for (node, rule), count in sorted(state.requests.items()):
            requests.add_metric([node, rule], count)
        yield requests

        errors = CounterMetricFamily(
            "cobrowse_lb_upstream_errors",
            "Failed exchanges with nodes: connect, reset or timeout.",
            labels=["node", "kind"],
        )
        for (node, kind), count in sorted(state.upstream_errors.items()):
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
        for name, backend in state.backends.items():
            up.add_metric([name], 0 if backend.state is State.DOWN else 1)
            draining.add_metric([name], 1 if backend.state is State.DRAINING else 0)
        yield up
        yield draining

        tunnels = state.tunnels
        open_now = GaugeMetricFamily(
            "cobrowse_lb_tunnels", "WebSocket tunnels open to each node.", labels=["node"]
        )
        opened = CounterMetricFamily(
            "cobrowse_lb_tunnels_opened",
            "WebSocket tunnels opened to each node (handshakes the node answered with 101).",
            labels=["node"],
        )
        for name in state.backends:
            open_now.add_metric([name], tunnels.count(name))
        for name, count in sorted(tunnels.opened.items()):
            opened.add_metric([name], count)
        closed = CounterMetricFamily(
            "cobrowse_lb_tunnels_closed",
            "WebSocket tunnels closed, by reason: client, node (that side closed), idle "
            "([lb] tunnelTimeout), node_down, removed (by a reload), stopping (the router).",
            labels=["node", "reason"],
        )
        for (name, reason), count in sorted(tunnels.closed.items()):
            closed.add_metric([name, reason], count)
        yield open_now
        yield opened
        yield closed

        latency = state.observer.latency
        yield HistogramMetricFamily(
            "cobrowse_lb_request_duration_seconds",
            "Time from a complete request to its answer, through the router.",
            buckets=latency.cumulative(),
            sum_value=latency.total_seconds,
        )


def exposition(state: RouterState) -> tuple[bytes, str]:
    """Return the router's metrics in the Prometheus text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(RouterCollector(state))
    return generate_latest(registry), CONTENT_TYPE_LATEST
