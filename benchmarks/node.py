"""Node throughput against Falcon "hello world", both under the node's own Gunicorn settings.

    scripts/bench node [--duration 10] [--connections 16] [--workers 2] [--worker-class gthread]

Measures create, get, stop and health on one node, and a hello-world app before and after (the
baseline is their mean), all in one run, then prints requests per second and the ratios. The
issue's targets: create >= 0.7x and get >= 0.85x hello world (`--check` turns them into the exit
status).
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Scenario, Summary, interleaved_rounds, lua_cycle, running
from cobrowse.config.clusterfile import GeneratedNode, free_port, render_cluster_file
from cobrowse.config.loader import load_cluster
from cobrowse.config.settings import NodeSettings
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.tokens import TokenIssuer
from cobrowse.store import Session, TokenConflictError
from cobrowse.store.sqlite import SqliteSessionStore

TARGETS = {"create": 0.70, "get": 0.85}
ORIGIN = "http://localhost:8080"


def serve(kind: str, config: Path, overrides: dict[str, object]) -> None:
    """Run the node or the hello-world app under the node's Gunicorn options (blocks)."""
    from benchmarks.hello import create_hello_app
    from cobrowse.ops.node import GunicornServer, gunicorn_options
    from cobrowse.web.app import create_app

    settings = load_cluster(config).node_settings("node-1")
    options = {**gunicorn_options(settings), **overrides}
    if kind == "hello":
        options["bind"] = [f"127.0.0.1:{settings.node.port + 1}"]
        options["proc_name"] = "cobrowse-bench-hello"
        GunicornServer(options, create_hello_app).run()
    else:
        GunicornServer(options, lambda: create_app(settings)).run()


def seed_sessions(settings: NodeSettings, count: int) -> list[Session]:
    """Insert `count` live sessions straight into the node's database, before it starts."""
    store = SqliteSessionStore.at(settings.database_path)
    issuer = TokenIssuer(ClusterRing(settings.cluster.nodes), settings.name, random.Random(42))
    sessions = []
    while len(sessions) < count:
        session = Session(
            issuer.session_token(), issuer.user_token(), 10**13, 10**13 + 3_600_000_000
        )
        try:
            store.create(session)
        except TokenConflictError:
            continue  # birthday collisions among 10**8 tokens: draw again, as the node does
        sessions.append(session)
    store.database.close()
    return sessions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker-class", default=None, help="override the node's worker class")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--serve", choices=["node", "hello"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    overrides: dict[str, object] = {
        "workers": args.workers,
        "threads": args.threads,
        "loglevel": "warning",
    }
    if args.worker_class:
        overrides["worker_class"] = args.worker_class
    if args.serve:
        serve(args.serve, args.config, overrides)
        return 0

    with tempfile.TemporaryDirectory(prefix="cobrowse-bench-") as scratch:
        results = measure(Path(scratch), args, overrides)
    return report(results, args.check)


def measure(
    directory: Path, args: argparse.Namespace, overrides: dict[str, object]
) -> list[Summary]:
    port = free_port()
    while True:  # the hello app listens on the next port: both must be free
        hello_port = port + 1
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", hello_port))
            break
        except OSError:
            port = free_port()
    config = directory / "cluster.ini"
    config.write_text(
        render_cluster_file(
            [GeneratedNode("node-1", port, args.workers)],
            router_port=free_port(),
            data_dir=directory / "data",
            allowed_origins=ORIGIN,
        )
    )
    settings = load_cluster(config).node_settings("node-1")
    seeded = seed_sessions(settings, 1000 + 40_000)
    for_get, for_stop = seeded[:1000], seeded[1000:]
    node_url = f"http://127.0.0.1:{port}/cobrowse"
    hello_url = f"http://127.0.0.1:{hello_port}/hello"
    extra = [f"--workers={args.workers}", f"--threads={args.threads}"]
    if args.worker_class:
        extra.append(f"--worker-class={args.worker_class}")
    server = [sys.executable, "-m", "benchmarks.node", "--config", str(config), *extra]
    per_round = len(for_stop) // args.rounds
    with (
        running([*server, "--serve", "hello"], directory / "hello.log", hello_url) as hello,
        running([*server, "--serve", "node"], directory / "node.log", f"{node_url}/health") as node,
    ):
        # Each server runs in a process group of its own (master and workers): meter its CPU.
        on_node = {"cpu_group": node.pid}
        scenarios = [
            Scenario(
                "create", f"{node_url}/rest/live/sessions", 'wrk.method = "POST"\n', **on_node
            ),
            Scenario(
                "get",
                node_url,
                lua_cycle(
                    "GET",
                    [f"/cobrowse/rest/live/sessions/{s.session_token}" for s in for_get],
                    {"Origin": ORIGIN},
                ),
                **on_node,
            ),
            Scenario(
                "stop",
                node_url,
                # Each round stops sessions of its own: the first stop of a session is the write.
                lambda index: lua_cycle(
                    "GET",
                    [
                        f"/cobrowse/rest/live/users/{s.user_token}/session/stop"
                        for s in for_stop[index * per_round : (index + 1) * per_round]
                    ],
                ),
                **on_node,
            ),
            Scenario("health", f"{node_url}/health", **on_node),
        ]
        return interleaved_rounds(
            Scenario("hello world", hello_url, cpu_group=hello.pid),
            scenarios,
            rounds=args.rounds,
            duration=args.duration,
            connections=args.connections,
        )


def report(summaries: list[Summary], check: bool) -> int:
    print(f"{'':<26} {'median of rounds':>16}")
    status = 0
    for summary in summaries:
        target = TARGETS.get(summary.label)
        verdict = ""
        if target is not None and summary.ratio is not None:
            met = summary.ratio >= target
            verdict = f"  target >= {target:.2f}x: {'met' if met else 'MISSED'}"
            if check and not met:
                status = 1
        print(summary.row() + verdict)
        if summary.errors:
            print(f"  {summary.label}: {summary.errors} errors", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
