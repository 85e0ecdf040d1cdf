"""`cobrowse loadtest`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def _duration(text: str) -> str:
    from cobrowse.loadtest.runner import timespan_s

    try:
        timespan_s(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value

    return parse


def _load(args: argparse.Namespace) -> tuple[int, float]:
    """Locust users and spawn rate: with --live, pairs (a customer and an agent) count twice."""
    if args.live:
        if args.users is not None:
            raise SystemExit("--users counts REST users; with --live, give --pairs")
        return 2 * args.pairs, 2 * args.spawn_rate
    return (args.rest_users if args.users is None else args.users), args.spawn_rate


def run(args: argparse.Namespace) -> int:
    """Load-test a local cluster with the Locust scenarios; exit non-zero when an SLO is missed."""
    if args.idle_sessions:
        from cobrowse.loadtest.idle import IdleOptions, run_idle

        return run_idle(
            IdleOptions(
                sessions=args.idle_sessions, workers=args.workers, results=Path(args.results)
            )
        )
    from cobrowse.loadtest.runner import LoadTestOptions, run_loadtest

    extra = list(args.locust_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    users, spawn_rate = _load(args)
    return run_loadtest(
        LoadTestOptions(
            nodes=args.nodes,
            users=users,
            spawn_rate=spawn_rate,
            duration=args.duration,
            lb=args.lb,
            results=Path(args.results),
            shape=args.shape or "",
            workers=args.workers,
            locust_args=tuple(extra),
            live=args.live,
            speed=args.speed,
        )
    )


def soak(args: argparse.Namespace) -> int:
    """Hold moderate load on a local cluster for a long time; report RSS, errors, p99 trend."""
    from cobrowse.loadtest.runner import LoadTestOptions
    from cobrowse.loadtest.soak import run_soak

    users, spawn_rate = _load(args)
    return run_soak(
        LoadTestOptions(
            nodes=args.nodes,
            users=users,
            spawn_rate=spawn_rate,
            duration=args.duration,
            lb=args.lb,
            results=Path(args.results),
            live=args.live,
            speed=args.speed,
        )
    )


def _add_live(parser: argparse.ArgumentParser, pairs: int) -> None:
    group = parser.add_argument_group(
        "live sessions",
        "customers stream a real page recording over the realtime channel to agents who check "
        "every message (loadtests/live.py)",
    )
    group.add_argument(
        "--live", action="store_true", help="the live-session scenarios instead of REST calls"
    )
    group.add_argument(
        "--pairs",
        type=_positive(int),
        default=pairs,
        help="live sessions: customer and agent pairs (default %(default)s); --spawn-rate then "
        "counts pairs per second",
    )
    group.add_argument(
        "--speed",
        type=_positive(float),
        default=1.0,
        help="live sessions: the recording's pace multiple (default %(default)s)",
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
        "--users", type=int, help="peak Locust users of the REST scenarios (default 50)"
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
    _add_live(loadtest, pairs=25)
    loadtest.add_argument(
        "--idle-sessions",
        type=_positive(int),
        metavar="N",
        help="instead of Locust: memory per idle live session, N sessions with a customer and "
        "an agent connected and silent on one node of --workers workers",
    )
    loadtest.add_argument("locust_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    loadtest.set_defaults(handler=run, rest_users=50)

    soak_parser = commands.add_parser(
        "soak",
        help="moderate load for a long time (default 10 minutes): RSS, errors, p99 trend",
    )
    soak_parser.add_argument("--nodes", type=int, default=3)
    soak_parser.add_argument("--users", type=int, help="REST scenarios' users (default 20)")
    soak_parser.add_argument("--spawn-rate", type=float, default=5.0)
    soak_parser.add_argument(
        "--duration", type=_duration, default="10m", help="run time (default %(default)s)"
    )
    soak_parser.add_argument("--lb", choices=["router", "haproxy"], default="router")
    soak_parser.add_argument("--results", default="results")
    _add_live(soak_parser, pairs=10)
    soak_parser.set_defaults(handler=soak, rest_users=20)
