"""Get Session through the router, directly to the node, and through HAProxy: one run.

    scripts/bench router [--rounds 3] [--duration 5] [--connections 16]

The same node (2 workers of the node's own worker class) and the same 1000 sessions serve all
three paths. Each round measures direct, HAProxy and router throughput at `--connections`, then
latency at one connection; medians over rounds are printed with ratios, and the CPU time that
the router and HAProxy spent per request. Goals (issue 3): router throughput >= 0.95x HAProxy's,
and p99 added over direct <= 1 ms at one connection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
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
    timeout tunnel 1h
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
    parser.add_argument(
        "--haproxy-config",
        choices=["generated", "minimal"],
        default="generated",
        help="generated: the haproxy.cfg that `cobrowse haproxy-config` writes, which does "
        "what the router does per request (X-Forwarded-*, X-Request-ID, one log line); "
        "minimal: a bare proxy (no logs, no request IDs), as measured before",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument(
        "--websocket", action="store_true", help="measure WebSocket echo traffic instead"
    )
    parser.add_argument("--clients", type=int, default=16, help="WebSocket connections")
    parser.add_argument("--message-size", type=int, default=64, help="WebSocket message bytes")
    args = parser.parse_args(argv)
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    proxy_cpus = SERVER_CPUS if args.proxy_cpu == "shared" else LOAD_CPUS
    print(
        f"proxies on CPUs {sorted(proxy_cpus)} ({args.proxy_cpu}), "
        f"{'echo server' if args.websocket else 'node'} on {sorted(SERVER_CPUS)}, "
        f"load on {sorted(LOAD_CPUS)}",
        file=sys.stderr,
    )
    if args.websocket:
        return websocket_main(args, haproxy, proxy_cpus)
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
            haproxy_config(args.haproxy_config, directory, node_port, haproxy_port)
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
    print(f"HAProxy configuration: {args.haproxy_config}")
    return report(throughput, latency, cpu_used, check=args.check)


def haproxy_config(kind: str, directory: Path, node_port: int, haproxy_port: int) -> str:
    """Return the haproxy.cfg of the run: the generated one, or a bare proxy."""
    if kind == "minimal":
        return HAPROXY_CONFIG.format(port=haproxy_port, node_port=node_port)
    from cobrowse.ops.lbconfig.haproxy import render_haproxy

    cluster = directory / "haproxy-cluster.ini"
    cluster.write_text(
        render_cluster_file(
            [GeneratedNode("node-1", node_port, 2)],
            router_port=haproxy_port,
            data_dir=directory / "data",
            allowed_origins=ORIGIN,
            sections={"lb": {"statsBind": f"127.0.0.1:{free_port()}"}},
        )
    )
    return render_haproxy(
        load_cluster(cluster),
        command="benchmarks/router.py",
        stats_socket=str(directory / "haproxy.sock"),
        user=None,
    )


def report(
    throughput: list[Summary],
    latency: list[Summary],
    cpu_used: dict[str, float],
    *,
    check: bool = False,
) -> int:
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
    missed = ratio < 0.95 or added > 1.0
    return 1 if errors or (check and missed) else 0


CHANNEL = "/cobrowse/rest/live/users/1BenchToken/channel"


@dataclass(frozen=True)
class EchoRun:
    """What one load run measured through one path."""

    label: str
    messages_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    messages: int


def run_echo_load(label: str, url: str, *, clients: int, duration: float, size: int) -> EchoRun:
    """Run the load generator on the load CPU against `url`; return what it measured."""
    load_cpus = LOAD_CPUS
    options = ["--clients", str(clients), "--duration", str(duration), "--size", str(size)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.wsbench", "load", "--url", url, *options],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, load_cpus),
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return EchoRun(
        label,
        result["messages"] / result["seconds"],
        result["p50_ms"],
        result["p99_ms"],
        result["errors"],
        result["messages"],
    )


def echo_rounds(
    baseline: str,
    others: list[str],
    urls: dict[str, str],
    *,
    rounds: int,
    duration: float,
    clients: int,
    size: int,
) -> dict[str, list[tuple[EchoRun, float]]]:
    """Interleave runs as `interleaved_rounds` does: (run, ratio to its round's baseline)."""
    results: dict[str, list[tuple[EchoRun, float]]] = {name: [] for name in [baseline, *others]}
    for index in range(rounds):
        order = others if index % 2 == 0 else list(reversed(others))

        def run(name: str) -> EchoRun:
            return run_echo_load(name, urls[name], clients=clients, duration=duration, size=size)

        before = run(baseline)
        measured = [run(name) for name in order]
        after = run(baseline)
        base = (before.messages_per_s + after.messages_per_s) / 2
        results[baseline] += [(before, before.messages_per_s / base), (after, 1.0)]
        for result in measured:
            results[result.label].append((result, result.messages_per_s / base))
        print(
            f"  round {index + 1}/{rounds}: {baseline} {base:.0f} msg/s, "
            + ", ".join(f"{r.label} {r.messages_per_s / base:.2f}x" for r in measured),
            file=sys.stderr,
        )
    return results


def echo_row(name: str, runs: list[tuple[EchoRun, float]], base: bool) -> tuple[str, float]:
    ratio = statistics.median(r for _, r in runs)
    rate = statistics.median(run.messages_per_s for run, _ in runs)
    p50 = statistics.median(run.p50_ms for run, _ in runs)
    p99 = statistics.median(run.p99_ms for run, _ in runs)
    errors = sum(run.errors for run, _ in runs)
    shown = "   base" if base else f"{ratio:6.2f}x"
    return (
        f"  {name:<10} {rate:>8.0f} msg/s {shown}  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  "
        f"errors {errors}",
        p99,
    )


def websocket_main(args: argparse.Namespace, haproxy: str, proxy_cpus: set[int]) -> int:
    """`--websocket`: echo traffic directly, through HAProxy and through the router."""
    with tempfile.TemporaryDirectory(prefix="cobrowse-bench-router-ws-") as scratch:
        directory = Path(scratch)
        echo_port, router_port, haproxy_port = free_port(), free_port(), free_port()
        config = directory / "cluster.ini"
        config.write_text(
            render_cluster_file(
                [GeneratedNode("node-1", echo_port, 1)],
                router_port=router_port,
                data_dir=directory / "data",
            )
        )
        (directory / "haproxy.cfg").write_text(
            HAPROXY_CONFIG.format(port=haproxy_port, node_port=echo_port)
        )
        urls = {
            "direct": f"ws://127.0.0.1:{echo_port}{CHANNEL}",
            "haproxy": f"ws://127.0.0.1:{haproxy_port}{CHANNEL}",
            "router": f"ws://127.0.0.1:{router_port}/node-1{CHANNEL}",  # prefix: a tunnel
        }
        health = "/cobrowse/health"
        with (
            running(
                [sys.executable, "-m", "benchmarks.wsbench", "echo", "--port", str(echo_port)],
                directory / "echo.log",
                f"http://127.0.0.1:{echo_port}{health}",
            ),
            running(
                [sys.executable, "-m", "cobrowse.cli", "router", "--config", str(config)],
                directory / "router.log",
                f"http://127.0.0.1:{router_port}/health",
                cpus=proxy_cpus,
            ) as router,
            running(
                [haproxy, "-f", str(directory / "haproxy.cfg"), "-db"],
                directory / "haproxy.log",
                f"http://127.0.0.1:{haproxy_port}{health}",
                cpus=proxy_cpus,
            ) as haproxy_process,
        ):
            size, duration, rounds = args.message_size, args.duration, args.rounds
            cpu_before = {
                "router": cpu_seconds(router.pid),
                "haproxy": cpu_seconds(haproxy_process.pid),
            }
            print(f"throughput, {args.clients} clients:", file=sys.stderr)
            throughput = echo_rounds(
                "haproxy",
                ["direct", "router"],
                urls,
                rounds=rounds,
                duration=duration,
                clients=args.clients,
                size=size,
            )
            cpu_used = {
                "router": cpu_seconds(router.pid) - cpu_before["router"],
                "haproxy": cpu_seconds(haproxy_process.pid) - cpu_before["haproxy"],
            }
            print("latency, 1 client:", file=sys.stderr)
            latency = echo_rounds(
                "direct",
                ["haproxy", "router"],
                urls,
                rounds=rounds,
                duration=duration,
                clients=1,
                size=size,
            )
    print(f"WebSocket echo, {size}-byte messages, {args.clients} clients (ratio to HAProxy):")
    for name in ("haproxy", "direct", "router"):
        print(echo_row(name, throughput[name], name == "haproxy")[0])
    for name, seconds in cpu_used.items():
        messages = sum(run.messages for run, _ in throughput[name])
        if messages:
            print(f"  {name} CPU per message (both ways): {seconds / messages * 1e6:.1f} us")
    print("WebSocket echo at 1 client (ratio to direct):")
    p99 = {}
    for name in ("direct", "haproxy", "router"):
        row, p99[name] = echo_row(name, latency[name], name == "direct")
        print(row)
    ratio = statistics.median(r for _, r in throughput["router"])
    print(
        f"router throughput: {ratio:.2f}x HAProxy (goal >= 0.95); p99 added over direct: "
        f"{p99['router'] - p99['direct']:.3f} ms (goal <= 1 ms; HAProxy "
        f"{p99['haproxy'] - p99['direct']:.3f} ms)"
    )
    errors = sum(
        run.errors for runs in [*throughput.values(), *latency.values()] for run, _ in runs
    )
    missed = ratio < 0.95 or p99["router"] - p99["direct"] > 1.0
    return 1 if errors or (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
