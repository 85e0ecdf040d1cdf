"""Get Session through the router, directly to the node, and through HAProxy: one run.

    scripts/bench router [--rounds 3] [--duration 5] [--connections 16]

The same node (2 gthread workers) and the same 1000 sessions serve all three paths. Each round
measures direct, HAProxy and router throughput at `--connections`, then latency at one
connection; medians over rounds are printed with ratios, and the CPU time that the router and
HAProxy spent per request. Goals (issue 3): router throughput >= 0.95x HAProxy's, and p99 added
over direct <= 1 ms at one connection.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.common import (
    LOAD_CPUS,
    SERVER_CPUS,
    Scenario,
    Summary,
    cpu_seconds,
    interleaved_rounds,
    lua_cycle,
    running,
)
from benchmarks.node import ORIGIN, seed_sessions
from cobrowse.config.clusterfile import GeneratedNode, free_port, render_cluster_file
from cobrowse.config.loader import load_cluster

HAPROXY_CONFIG = """\
global
    maxconn 8192
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse safe
frontend bench
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    server node-1 127.0.0.1:{node_port}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--proxy-cpu",
        choices=["shared", "separate"],
        default="shared",
        help="shared: the proxies run on the node's CPU, so their cost takes the node's time "
        "(strict); separate: on the load generator's CPU, as a load balancer on its own machine",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    proxy_cpus = SERVER_CPUS if args.proxy_cpu == "shared" else LOAD_CPUS
    print(
        f"proxies on CPUs {sorted(proxy_cpus)} ({args.proxy_cpu}), node on "
        f"{sorted(SERVER_CPUS)}, wrk on {sorted(LOAD_CPUS)}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="cobrowse-bench-router-") as scratch:
        directory = Path(scratch)
        node_port, router_port, haproxy_port = free_port(), free_port(), free_port()
        config = directory / "cluster.ini"
        config.write_text(
            render_cluster_file(
                [GeneratedNode("node-1", node_port, 2)],
                router_port=router_port,
                data_dir=directory / "data",
                allowed_origins=ORIGIN,
            )
        )
        (directory / "haproxy.cfg").write_text(
            HAPROXY_CONFIG.format(port=haproxy_port, node_port=node_port)
        )
        sessions = seed_sessions(load_cluster(config).node_settings("node-1"), 1000)
        paths = [f"/cobrowse/rest/live/sessions/{s.session_token}" for s in sessions]
        script = lua_cycle("GET", paths, {"Origin": ORIGIN})
        cobrowse = [sys.executable, "-m", "cobrowse.cli"]
        urls = {
            "direct": f"http://127.0.0.1:{node_port}",
            "haproxy": f"http://127.0.0.1:{haproxy_port}",
            "router": f"http://127.0.0.1:{router_port}",
        }
        with (
            running(
                [*cobrowse, "node", "--config", str(config), "--name", "node-1"],
                directory / "node.log",
                f"{urls['direct']}/cobrowse/health",
            ),
            running(
                [*cobrowse, "router", "--config", str(config)],
                directory / "router.log",
                f"{urls['router']}/health",
                cpus=proxy_cpus,
            ) as router,
            running(
                [haproxy, "-f", str(directory / "haproxy.cfg"), "-db"],
                directory / "haproxy.log",
                f"{urls['haproxy']}/cobrowse/health",
                cpus=proxy_cpus,
            ) as haproxy_process,
        ):
            scenarios = [
                Scenario(name, url, script) for name, url in urls.items() if name != "haproxy"
            ]
            baseline = Scenario("haproxy", urls["haproxy"], script)
            cpu_before = {
                "router": cpu_seconds(router.pid),
                "haproxy": cpu_seconds(haproxy_process.pid),
            }
            print(f"throughput, {args.connections} connections:", file=sys.stderr)
            throughput = interleaved_rounds(
                baseline,
                scenarios,
                rounds=args.rounds,
                duration=args.duration,
                connections=args.connections,
            )
            cpu_used = {
                "router": cpu_seconds(router.pid) - cpu_before["router"],
                "haproxy": cpu_seconds(haproxy_process.pid) - cpu_before["haproxy"],
            }
            print("latency, 1 connection:", file=sys.stderr)
            latency = interleaved_rounds(
                Scenario("direct", urls["direct"], script),
                [Scenario(name, url, script) for name, url in urls.items() if name != "direct"],
                rounds=args.rounds,
                duration=args.duration,
                connections=1,
            )
    return report(throughput, latency, cpu_used)


def report(throughput: list[Summary], latency: list[Summary], cpu_used: dict[str, float]) -> int:
    by_label = {summary.label: summary for summary in throughput}
    print("Get Session throughput (ratio to HAProxy):")
    for summary in throughput:
        print("  " + summary.row())
    requests = {name: by_label[name].requests_total for name in ("router", "haproxy")}
    for name, seconds in cpu_used.items():
        if requests[name]:
            print(f"  {name} CPU per request: {seconds / requests[name] * 1e6:.1f} us")
    print("Get Session latency at 1 connection (ratio to direct):")
    for summary in latency:
        print("  " + summary.row())
    direct = next(s for s in latency if s.label == "direct")
    router = next(s for s in latency if s.label == "router")
    added = router.p99_ms - direct.p99_ms
    ratio = by_label["router"].ratio or 0.0
    print(
        f"router throughput: {ratio:.2f}x HAProxy (goal >= 0.95); "
        f"p99 added over direct: {added:.2f} ms (goal <= 1 ms)"
    )
    errors = sum(s.errors for s in throughput + latency)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
