"""What metrics cost: Get Session with `[metrics] enabled` on and off, node and router, one run.

    scripts/bench metrics_cost [--rounds 3] [--duration 5] [--connections 16] [--same]

Two nodes serve the same 1000 sessions, identical but for `[metrics] enabled`; two routers, one
with metrics and one without, front the metrics-on node. Each round measures every path
(bracketed by the baseline, order alternating); medians over rounds. The budget (issue 8):
metrics may take at most 5% off Get Session throughput, on the node and through the router.
The router counts requests (latency histogram, per-node counters) whether or not it exposes
them, because its status page uses them: `enabled` only adds `/lb/metrics`. So the in-process
timing of that counting, printed at the end with the node's, is its true per-request cost.
`--same` switches metrics off on both sides (an A/A run): what it reports is the benchmark's own
bias between two identical processes, the floor under which a cost cannot be told from noise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Scenario, interleaved_rounds, lua_cycle, running
from benchmarks.node import ORIGIN, seed_sessions
from cobrowse.config.clusterfile import GeneratedNode, free_port, render_cluster_file
from cobrowse.config.loader import load_cluster

BUDGET = 0.95
CALLS = 100_000
ROUTE = "/cobrowse/rest/live/sessions/{session_token}"


def node_metrics_microseconds() -> float:
    """Time the node's per-request metric work (multiprocess mode), in a fresh interpreter.

    prometheus_client picks its value class when imported, so the multiprocess directory must
    be set before that: hence a child process.
    """
    with tempfile.TemporaryDirectory(prefix="cobrowse-bench-mp-") as multiprocess_dir:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.metrics_cost", "--time-node-metrics"],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": multiprocess_dir},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
    return float(done.stdout)


def time_node_metrics() -> float:
    from cobrowse.clock import SystemClock
    from cobrowse.observe.metrics import NodeMetrics

    metrics = NodeMetrics(store=None, clock=SystemClock())  # type: ignore[arg-type]
    return best_microseconds(lambda: metrics.request_done(ROUTE, "GET", 200, 0.0012))


def router_metrics_microseconds() -> float:
    """Time the router's per-request metric work: its histogram and its request counter."""
    from lb.observe import LatencyHistogram

    histogram, requests = LatencyHistogram(), Counter[tuple[str, str]]()

    def count() -> None:
        histogram.observe(0.0012)
        requests[("node-1", "token")] += 1

    return best_microseconds(count)


def best_microseconds(call: Callable[[], object]) -> float:
    """Return the best of three timings of `CALLS` calls, in µs per call."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(CALLS):
            call()
        timings.append((time.perf_counter() - started) / CALLS * 1e6)
    return min(timings)


def write_config(
    directory: Path, name: str, node_port: int, router_port: int, enabled: bool
) -> Path:
    path = directory / f"{name}.ini"
    path.write_text(
        render_cluster_file(
            [GeneratedNode("node-1", node_port, 2)],
            router_port=router_port,
            data_dir=directory / name,
            allowed_origins=ORIGIN,
            sections={"metrics": {"enabled": "true" if enabled else "false"}},
        )
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--same", action="store_true", help="metrics off on both sides (A/A)")
    parser.add_argument("--time-node-metrics", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.time_node_metrics:
        print(f"{time_node_metrics():.3f}")
        return 0
    with tempfile.TemporaryDirectory(prefix="cobrowse-bench-metrics-") as scratch:
        directory = Path(scratch)
        ports = {key: free_port() for key in ("node_on", "node_off", "router_on", "router_off")}
        on = write_config(
            directory, "on", ports["node_on"], ports["router_on"], enabled=not args.same
        )
        off = write_config(directory, "off", ports["node_off"], ports["router_off"], enabled=False)
        # The metrics-off router fronts the metrics-on node: only the router's metrics differ.
        off_router = write_config(
            directory, "off-router", ports["node_on"], ports["router_off"], enabled=False
        )
        sessions = seed_sessions(load_cluster(on).node_settings("node-1"), 1000)
        seeded_off = seed_sessions(load_cluster(off).node_settings("node-1"), 1000)
        assert [s.session_token for s in sessions] == [s.session_token for s in seeded_off]
        script = lua_cycle(
            "GET",
            [f"/cobrowse/rest/live/sessions/{s.session_token}" for s in sessions],
            {"Origin": ORIGIN},
        )
        cobrowse = [sys.executable, "-m", "cobrowse.cli"]
        url = {key: f"http://127.0.0.1:{port}" for key, port in ports.items()}
        with (
            running(
                [*cobrowse, "node", "--config", str(on), "--name", "node-1"],
                directory / "node-on.log",
                f"{url['node_on']}/cobrowse/health",
            ) as node_on,
            running(
                [*cobrowse, "node", "--config", str(off), "--name", "node-1"],
                directory / "node-off.log",
                f"{url['node_off']}/cobrowse/health",
            ) as node_off,
            running(
                [*cobrowse, "router", "--config", str(on)],
                directory / "router-on.log",
                f"{url['router_on']}/health",
            ) as router_on,
            running(
                [*cobrowse, "router", "--config", str(off_router)],
                directory / "router-off.log",
                f"{url['router_off']}/health",
            ) as router_off,
        ):
            run = {
                "rounds": args.rounds,
                "duration": args.duration,
                "connections": args.connections,
            }
            second = "metrics off (A/A)" if args.same else "metrics on"
            print("node:", file=sys.stderr)
            node = interleaved_rounds(
                Scenario("node, metrics off", url["node_off"], script, node_off.pid),
                [Scenario(f"node, {second}", url["node_on"], script, node_on.pid)],
                **run,
            )
            print("router:", file=sys.stderr)
            router = interleaved_rounds(
                # CPU: the router's own (the node behind both routers is the same one).
                Scenario("router, metrics off", url["router_off"], script, router_off.pid),
                [Scenario(f"router, {second}", url["router_on"], script, router_on.pid)],
                **run,
            )
    status = 0
    in_process = {"node": node_metrics_microseconds(), "router": router_metrics_microseconds()}
    for kind, summaries in (("node", node), ("router", router)):
        for summary in summaries:
            print(summary.row())
        ratio = summaries[1].ratio or 0.0
        verdict = "within" if ratio >= BUDGET else "OVER"
        print(f"  metrics cost: {(1 - ratio) * 100:.1f}% of throughput ({verdict} the 5% budget)")
        if summaries[1].cpu_ratio is not None:
            print(f"  in CPU per request: {(1 / summaries[1].cpu_ratio - 1) * 100:+.1f}%")
        base_cpu = summaries[0].cpu_us
        if base_cpu:
            share = in_process[kind] / base_cpu * 100
            print(
                f"  in-process: {in_process[kind]:.2f} µs of metric work per request, "
                f"{share:.1f}% of the {base_cpu:.0f} µs of CPU a request costs the {kind}"
            )
        status |= any(s.errors for s in summaries)
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
