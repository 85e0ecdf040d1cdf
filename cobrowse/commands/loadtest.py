"""`cobrowse loadtest`."""

from __future__ import annotations

import argparse
from pathlib import Path


def _duration(text: str) -> str:
    from cobrowse.loadtest.runner import timespan_s

    try:
        timespan_s(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def run(args: argparse.Namespace) -> int:
    """Load-test a local cluster with the Locust scenarios; exit non-zero when an SLO is missed."""
    from cobrowse.loadtest.runner import LoadTestOptions, run_loadtest

    extra = list(args.locust_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return run_loadtest(
        LoadTestOptions(
            nodes=args.nodes,
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration=args.duration,
            lb=args.lb,
            results=Path(args.results),
            shape=args.shape or "",
            workers=args.workers,
            locust_args=tuple(extra),
        )
    )


def soak(args: argparse.Namespace) -> int:
    """Hold moderate load on a local cluster for a long time; report RSS, errors, p99 trend."""
    from cobrowse.loadtest.runner import LoadTestOptions
    from cobrowse.loadtest.soak import run_soak

    return run_soak(
        LoadTestOptions(
            nodes=args.nodes,
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration=args.duration,
            lb=args.lb,
            results=Path(args.results),
        )
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    loadtest = commands.add_parser(
        "loadtest",
        help="run the Locust scenarios against a fresh local cluster and report",
        description="Start a local cluster on free ports, run Locust headless against it, stop "
        "the cluster, and write CSV, HTML and a summary under the results folder. Arguments "
        "after `--` go to Locust (e.g. -- --customer-weight 3 --slo-p95-ms 200).",
    )
    loadtest.add_argument("--nodes", type=int, default=3, help="nodes (default %(default)s)")
    loadtest.add_argument(
        "--workers", type=int, default=2, help="Gunicorn workers per node (default %(default)s)"
    )
    loadtest.add_argument(
        "--users", type=int, default=50, help="peak Locust users (default %(default)s)"
    )
    loadtest.add_argument(
        "--spawn-rate",
        type=float,
        default=10.0,
        help="users started per second (default %(default)s)",
    )
    loadtest.add_argument(
        "--duration", type=_duration, default="60s", help="run time (default %(default)s)"
    )
    loadtest.add_argument(
        "--lb",
        choices=["router", "haproxy"],
        default="router",
        help="the load balancer in front of the nodes (default %(default)s)",
    )
    loadtest.add_argument(
        "--results", default="results", help="results root; each run gets a timestamped folder"
    )
    loadtest.add_argument(
        "--shape",
        choices=["ramp", "spike"],
        help="a load shape from loadtests/shapes.py, sized by --users, --spawn-rate, --duration",
    )
    loadtest.add_argument("locust_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    loadtest.set_defaults(handler=run)

    soak_parser = commands.add_parser(
        "soak",
        help="moderate load for a long time (default 10 minutes): RSS, errors, p99 trend",
    )
    soak_parser.add_argument("--nodes", type=int, default=3)
    soak_parser.add_argument("--users", type=int, default=20, help="(default %(default)s)")
    soak_parser.add_argument("--spawn-rate", type=float, default=5.0)
    soak_parser.add_argument(
        "--duration", type=_duration, default="10m", help="run time (default %(default)s)"
    )
    soak_parser.add_argument("--lb", choices=["router", "haproxy"], default="router")
    soak_parser.add_argument("--results", default="results")
    soak_parser.set_defaults(handler=soak)
