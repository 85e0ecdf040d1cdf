"""`cobrowse cluster`."""

from __future__ import annotations

import argparse
from pathlib import Path

from cobrowse.commands import load_or_exit


def run(args: argparse.Namespace) -> int:
    """Run a whole local cluster: the nodes and the load balancer, until Ctrl-C."""
    from cobrowse.ops.cluster import generate_cluster, run_cluster

    data_dir = Path(args.data_dir)
    demo_port = None if args.no_demo else args.demo_port
    if args.config:
        config_path = Path(args.config)
        load_or_exit(args.config)  # report mistakes before starting anything
    else:
        config_path = generate_cluster(data_dir, args.nodes, args.port, demo_port=demo_port)
        print(f"generated {config_path} ({args.nodes} nodes, {args.lb} on port {args.port})")
    return run_cluster(config_path, data_dir / "logs", args.lb, demo_port)


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
    cluster.set_defaults(handler=run)
