"""`cobrowse cluster`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cobrowse.commands import load_or_exit


def run(args: argparse.Namespace) -> int:
    """Run a whole local cluster: the nodes and the load balancer, until Ctrl-C."""
    from cobrowse.ops.cluster import Part, generate_cluster, redis_part, run_cluster

    data_dir = Path(args.data_dir)
    demo_port = None if args.no_demo else args.demo_port
    before: list[Part] = []
    if args.config:
        if args.store != "sqlite":
            print(
                "--store redis generates the cluster file; with --config, set [store] in the "
                "file and run its Redis yourself",
                file=sys.stderr,
            )
            return 2
        config_path = Path(args.config)
        load_or_exit(args.config)  # report mistakes before starting anything
    else:
        sections: dict[str, dict[str, str]] = {}
        if args.store == "redis":
            # After the nodes' ports and HAProxy's stats page (port + nodes + 1).
            redis = redis_part(data_dir, args.port + args.nodes + 2, data_dir / "logs")
            before.append(redis)
            sections["store"] = {"backend": "redis", "url": redis.url}
        config_path = generate_cluster(
            data_dir, args.nodes, args.port, demo_port=demo_port, sections=sections
        )
        print(
            f"generated {config_path} ({args.nodes} nodes, {args.lb} on port {args.port}, "
            f"{args.store} store)"
        )
    return run_cluster(config_path, data_dir / "logs", args.lb, demo_port, before)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = commands.add_parser("cluster", help="run a local cluster until Ctrl-C")
    source = cluster.add_mutually_exclusive_group()
    source.add_argument("--config", help="a cluster file (default: generate one)")
    source.add_argument("--nodes", type=int, default=3, help="nodes to generate (default 3)")
    cluster.add_argument(
        "--port",
        type=int,
        default=8700,
        help="load-balancer port of a generated cluster (default 8700)",
    )
    cluster.add_argument(
        "--lb",
        choices=["router", "haproxy"],
        default="router",
        help="the load balancer in front of the nodes: our router, or a real HAProxy with a "
        "generated haproxy.cfg, on the same port (default %(default)s)",
    )
    cluster.add_argument(
        "--data-dir", default="data/cluster", help="data and logs (default %(default)s)"
    )
    cluster.add_argument(
        "--demo-port",
        type=int,
        default=8080,
        help="port of the demo website, a customer's site with the co-browse script "
        "(default %(default)s; its origin must be allowed: generated cluster files do it)",
    )
    cluster.add_argument("--no-demo", action="store_true", help="do not run the demo website")
    cluster.add_argument(
        "--store",
        choices=["sqlite", "redis"],
        default="sqlite",
        help="where sessions live: each node's SQLite file, or a shared Redis that any node "
        "serves every session from (a local redis-server on port port+nodes+2, data in "
        "<data-dir>/redis, appendonly with appendfsync always), started and stopped with the "
        "cluster (default %(default)s)",
    )
    cluster.set_defaults(handler=run)
