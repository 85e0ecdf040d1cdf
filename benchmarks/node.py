"""Node throughput against Falcon "hello world" (ASGI) under the node's own Gunicorn settings.

    scripts/bench node [--rounds 3] [--duration 5] [--connections 16] [--workers 2] [--check]
                       [--store sqlite|redis]

Serves, in one run, three servers on the servers' CPU:

- an ASGI Falcon hello world (one JSON route) under exactly the node's Gunicorn options, its
  worker class (`NodeWorker`: Uvicorn, uvloop, httptools) and `--workers`: the baseline;
- the previous baseline, a WSGI Falcon hello world under Gunicorn's plain gthread worker,
  `--workers` workers of 1 thread (the node's setting before the ASGI move): its ratio shows
  what the move gained;
- the node itself, measured on create, get, stop, ping and health.

Every round measures the baseline, then each other row (order alternating between rounds),
then the baseline again; ratios are to the mean of the round's two baseline runs, and medians
over rounds are printed with requests per second and the server's CPU time per request.

The issue's targets: create >= 0.35x and get >= 0.6x the ASGI hello world, and an event loop that
never stalls: the p99 of `cobrowse_event_loop_lag_seconds` (a 20 ms timer per worker, read from
the node's `<context>/metrics` right before and right after each create run, the bucket deltas
summed over rounds) under 5 ms; the same is reported for get. `--check` turns the targets into
the exit status. When one is missed, `scripts/bench inprocess` says where the time goes.

`--store redis` also runs the node on the shared store: a second node, its sessions in a local
`redis-server` the benchmark starts (on the servers' CPU, AOF with `appendfsync always`, as
`cobrowse cluster --store redis` runs it), measured on create and get in the same rounds. The
report adds each backend's create and get and the ratio redis/sqlite (target: >= 0.7x SQLite's
throughput), and Redis's own CPU per request, which the node's CPU column leaves out.

Get cycles through 1000 seeded sessions; stop and ping use sessions of their own in each round
(stop's seeded right before its run, so that every stop is a first stop, the write). The machine
is shared: the last line on stderr says how much of the servers' and of wrk's CPU went to other
processes during the run; a run where they took much is not worth comparing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    LOAD_CPUS,
    SERVER_CPUS,
    Scenario,
    Server,
    Summary,
    cpus_busy_seconds,
    group_cpu_seconds,
    interleaved_rounds,
    lua_cycle,
    running,
)
from cobrowse.config.clusterfile import GeneratedNode, free_port, render_cluster_file
from cobrowse.config.loader import load_cluster
from cobrowse.config.settings import NodeSettings
from cobrowse.sessions.ring import ClusterRing
from cobrowse.sessions.tokens import TokenIssuer
from cobrowse.store import Session, SessionStore, TokenConflictError
from cobrowse.store.sqlite import SqliteSessionStore

TARGETS = {"create": 0.35, "get": 0.6}
REDIS_TARGET = 0.7  # the shared store's throughput over SQLite's, create and get
REDIS = " (redis)"  # the label suffix of the node on the shared store
LOOP_LAG_TARGET_S = 0.005
ORIGIN = "http://localhost:8080"
BASELINE = "asgi hello world"
PREVIOUS_BASELINE = "wsgi gthread hello (previous baseline)"
LABEL_WIDTH = len(PREVIOUS_BASELINE)
GET_SESSIONS = 1000
# Ping renews a session (its inactivity deadline becomes now + 60 s): sessions pinged in one
# round could expire before the next. Each round pings sessions of its own, as stop does.
PING_SESSIONS_PER_ROUND = 1000
# Each round stops sessions of its own, seeded right before it (a pool seeded up front would
# keep ~100 000 sessions live all along, and the node counts live sessions at every health
# check), enough that every stop is a first stop (a write) at up to this many requests/s.
STOP_RATE_PER_S = 10_000
LOOP_LAG_METRIC = "cobrowse_event_loop_lag_seconds"
_BUCKET = re.compile(
    rf'^{LOOP_LAG_METRIC}_bucket\{{(?:[^}}]*,)?le="([^"]+)"[^}}]*\}} (\S+)$', re.MULTILINE
)


def serve(kind: str, config: Path, port: int, workers: int, name: str = "node-1") -> None:
    """Run the node or a hello-world app under the node's Gunicorn options (blocks)."""
    from benchmarks.hello import create_hello_app, create_wsgi_hello_app
    from cobrowse.ops.node import GunicornServer, gunicorn_options, prepare_node_process
    from cobrowse.web.app import create_app

    settings = load_cluster(config).node_settings(name)
    options = {
        **gunicorn_options(settings),
        "bind": [f"127.0.0.1:{port}"],
        "workers": workers,
        "loglevel": "warning",
    }
    if kind == "node":
        # As `cobrowse node` does before forking: the metrics directory (multiprocess mode, so
        # that /metrics sums every worker's loop lag), the data directory and the logs.
        prepare_node_process(settings)
        GunicornServer(options, lambda: create_app(settings)).run()
    elif kind == "hello":
        options["proc_name"] = "cobrowse-bench-hello"
        GunicornServer(options, create_hello_app).run()
    else:  # the previous node's worker: plain gthread, one thread per worker
        options.update(proc_name="cobrowse-bench-wsgi-hello", worker_class="gthread", threads=1)
        GunicornServer(options, create_wsgi_hello_app).run()


async def seed_sessions_async(settings: NodeSettings, count: int, seed: int = 42) -> list[Session]:
    """Insert `count` live sessions (alive for a day) into the node's store (its database, or
    the shared Redis).

    The node may be running: the store's writes queue on its write lock like the node's own.
    """
    store: SessionStore
    if settings.cluster.store.shared:
        from cobrowse.backends import open_backend

        store = open_backend(settings).store
        await store.open()
    else:
        store = SqliteSessionStore.at(settings.database_path)
    issuer = TokenIssuer(ClusterRing(settings.cluster.nodes), settings.name, random.Random(seed))
    now_ms = int(time.time() * 1000)
    sessions: list[Session] = []
    try:
        while len(sessions) < count:
            session = Session(
                issuer.session_token(), issuer.user_token(), now_ms, now_ms + 86_400_000
            )
            try:
                await store.create(session)
            except TokenConflictError:
                continue  # birthday collisions among 10**8 tokens: draw again, as the node does
            sessions.append(session)
    finally:
        await store.close()
    return sessions


def seed_sessions(settings: NodeSettings, count: int, seed: int = 42) -> list[Session]:
    """Seed `count` live sessions (see `seed_sessions_async`); the same seed, the same tokens."""
    return asyncio.run(seed_sessions_async(settings, count, seed))


class LoopLagMeter:
    """Sum the node's event-loop lag histogram over the measurements it is wrapped around."""

    def __init__(self, metrics_url: str) -> None:
        self.metrics_url = metrics_url
        self.buckets: Counter[float] = Counter()  # upper bound (s) -> samples, cumulative

    def scrape(self) -> dict[float, float]:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as answer:
            text = answer.read().decode()
        return {float(le): float(value) for le, value in _BUCKET.findall(text)}

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        before = self.scrape()
        yield
        for bound, count in self.scrape().items():
            self.buckets[bound] += count - before.get(bound, 0.0)

    def p99(self) -> tuple[float, int]:
        """Return the upper bound (s) of the bucket holding the 99th percentile, and the count."""
        total = self.buckets.get(math.inf, 0.0)
        for bound in sorted(self.buckets):
            if total and self.buckets[bound] >= 0.99 * total:
                return bound, round(total)
        return math.inf, round(total)

    def distribution(self) -> str:
        """Return the share of samples at or under each bucket's bound, up to all of them."""
        total = self.buckets.get(math.inf, 0.0)
        shares = []
        for bound in sorted(self.buckets):
            if not total or bound == math.inf:
                break
            shares.append(f"<={bound * 1000:g} ms {self.buckets[bound] / total:.1%}")
            if self.buckets[bound] >= total:
                break
        return ", ".join(shares)

    def line(self, label: str, target_s: float | None) -> tuple[str, bool]:
        """Return the report line and whether the target (if any) is met."""
        bound, samples = self.p99()
        if not samples:
            return f"loop lag p99 under {label}: no samples (metrics off?)", target_s is None
        shown = f"<= {bound * 1000:g} ms" if bound != math.inf else "> 1000 ms"
        text = f"loop lag p99 under {label}: {shown} ({samples} samples)"
        if target_s is None:
            return text, True
        met = bound <= target_s
        verdict = "met" if met else "MISSED"
        return f"{text}, target < {target_s * 1000:g} ms: {verdict}", met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="workers of every server")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--store",
        choices=["sqlite", "redis"],
        default="sqlite",
        help="redis: also measure create and get on the shared store (a local redis-server), "
        "and print the ratio redis/sqlite (default %(default)s: SQLite only)",
    )
    parser.add_argument("--serve", choices=["node", "hello", "wsgi-hello"], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="node-1", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.config, args.port, args.workers, args.name)
        return 0

    with tempfile.TemporaryDirectory(prefix="cobrowse-bench-") as scratch:
        results, lag, redis_cpu_us = measure(Path(scratch), args)
    return report(results, lag, args, redis_cpu_us)


def other_load(groups: tuple[int, ...]) -> tuple[float, float]:
    """Return the CPU seconds used so far on the servers' and on wrk's CPUs by anything else
    than the servers' process groups, this process and its finished children (wrk)."""
    ours = os.times()
    servers = cpus_busy_seconds(SERVER_CPUS) - sum(map(group_cpu_seconds, groups))
    load = cpus_busy_seconds(LOAD_CPUS) - (
        ours.user + ours.system + ours.children_user + ours.children_system
    )
    return servers, load


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def measure(
    directory: Path, args: argparse.Namespace
) -> tuple[list[Summary], dict[str, LoopLagMeter], float | None]:
    """Run every scenario; return the summaries, the loop-lag meters and, with `--store
    redis`, Redis's own CPU time per request to the node on it (µs)."""
    port, hello_port, wsgi_port, router_port = distinct_free_ports(4)
    config = directory / "cluster.ini"
    config.write_text(
        render_cluster_file(
            [GeneratedNode("node-1", port, args.workers)],
            router_port=router_port,
            data_dir=directory / "data",
            allowed_origins=ORIGIN,
        )
    )
    settings = load_cluster(config).node_settings("node-1")
    # This process only seeds and scrapes between runs: keep it off the servers' CPU.
    os.sched_setaffinity(0, LOAD_CPUS)
    stop_per_round = max(1000, round(args.duration * STOP_RATE_PER_S))
    ping_per_round = PING_SESSIONS_PER_ROUND
    seeded = seed_sessions(settings, GET_SESSIONS + args.rounds * ping_per_round)
    for_get, for_ping = seeded[:GET_SESSIONS], seeded[GET_SESSIONS:]
    node_url = f"http://127.0.0.1:{port}{settings.context_path}"
    live = f"{settings.context_path}/rest/live"
    lag = {
        "create": LoopLagMeter(f"{node_url}/metrics"),
        "get": LoopLagMeter(f"{node_url}/metrics"),
    }
    server = [
        sys.executable,
        "-m",
        "benchmarks.node",
        "--config",
        str(config),
        f"--workers={args.workers}",
    ]

    def users(sessions: list[Session], path: str) -> str:
        return lua_cycle("GET", [f"{live}/users/{s.user_token}/{path}" for s in sessions])

    def stop_script(index: int) -> str:
        # Seeded right before the round's stop run, while the node runs (not metered).
        return users(seed_sessions(settings, stop_per_round, seed=1000 + index), "session/stop")

    with (
        contextlib.ExitStack() as extra,
        running(
            [*server, "--serve", "hello", f"--port={hello_port}"],
            directory / "hello.log",
            f"http://127.0.0.1:{hello_port}/hello",
        ) as hello,
        running(
            [*server, "--serve", "wsgi-hello", f"--port={wsgi_port}"],
            directory / "wsgi-hello.log",
            f"http://127.0.0.1:{wsgi_port}/hello",
        ) as wsgi_hello,
        running(
            [*server, "--serve", "node", f"--port={port}"],
            directory / "node.log",
            f"{node_url}/health",
        ) as node,
    ):
        # Each server runs in a process group of its own (master and workers): meter its CPU.
        on_node = {"cpu_group": node.pid}
        scenarios = [
            Scenario(
                PREVIOUS_BASELINE,
                f"http://127.0.0.1:{wsgi_port}/hello",
                cpu_group=wsgi_hello.pid,
            ),
            Scenario(
                "create",
                f"{node_url}/rest/live/sessions",
                'wrk.method = "POST"\n',
                around=lag["create"].around,
                **on_node,
            ),
            Scenario(
                "get",
                node_url,
                lua_cycle(
                    "GET",
                    [f"{live}/sessions/{s.session_token}" for s in for_get],
                    {"Origin": ORIGIN},
                ),
                around=lag["get"].around,
                **on_node,
            ),
            # Each round stops sessions of its own: the first stop of a session is the write.
            Scenario("stop", node_url, stop_script, **on_node),
            Scenario(
                "ping",
                node_url,
                lambda index: users(
                    for_ping[index * ping_per_round : (index + 1) * ping_per_round], "ping"
                ),
                **on_node,
            ),
            Scenario("health", f"{node_url}/health", **on_node),
        ]
        groups: tuple[int, ...] = (hello.pid, wsgi_hello.pid, node.pid)
        if args.store == "redis":
            on_redis = shared_store_node(directory, args, extra, lag)
            scenarios += on_redis.scenarios
            groups += on_redis.groups
        before = other_load(groups)
        redis_cpu_before = group_cpu_seconds(groups[-1]) if args.store == "redis" else 0.0
        redis_cpu_us: float | None = None
        started = time.monotonic()
        summaries = interleaved_rounds(
            Scenario(BASELINE, f"http://127.0.0.1:{hello_port}/hello", cpu_group=hello.pid),
            scenarios,
            rounds=args.rounds,
            duration=args.duration,
            connections=args.connections,
        )
        if args.store == "redis":
            redis_requests = sum(x.requests_total for x in summaries if x.label.endswith(REDIS))
            redis_cpu_us = (
                (group_cpu_seconds(groups[-1]) - redis_cpu_before) / max(1, redis_requests) * 1e6
            )
        # The machine is shared: say how much of its CPUs went to anything else.
        elapsed = time.monotonic() - started
        servers, load = (a - b for a, b in zip(other_load(groups), before, strict=True))
        print(
            f"  other processes took {servers / elapsed / len(SERVER_CPUS):.0%} of the "
            f"servers' CPU and {load / elapsed / len(LOAD_CPUS):.0%} of wrk's",
            file=sys.stderr,
        )
    stops = next(s for s in summaries if s.label == "stop").requests_total
    if stops > args.rounds * stop_per_round:
        print(
            f"  stop: {stops} requests for {args.rounds * stop_per_round} sessions: some stops "
            "were repeats "
            "(reads, not writes); raise STOP_RATE_PER_S",
            file=sys.stderr,
        )
    return summaries, lag, redis_cpu_us


@dataclass
class SharedStoreNode:
    """The node on the shared store: its scenarios, and the process groups it adds (Redis
    last)."""

    scenarios: list[Scenario]
    groups: tuple[int, ...]


def shared_store_node(
    directory: Path,
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    lag: dict[str, LoopLagMeter],
) -> SharedStoreNode:
    """Start a local redis-server and a node on it (stopped with `stack`); seed its sessions."""
    from cobrowse.ops.cluster import redis_argv, redis_ping

    redis_port, port, router_port = distinct_free_ports(3)
    (directory / "redis").mkdir()
    redis = Server(redis_argv(directory / "redis", redis_port), directory / "redis.log")
    stack.callback(redis.stop)
    end = time.monotonic() + 30
    while not redis_ping(redis_port):
        if time.monotonic() > end or redis.popen.poll() is not None:
            raise RuntimeError(f"redis-server did not start: see {directory / 'redis.log'}")
        time.sleep(0.05)
    config = directory / "cluster-redis.ini"
    config.write_text(
        render_cluster_file(
            [GeneratedNode("redis-node", port, args.workers)],
            router_port=router_port,
            data_dir=directory / "data-redis",
            allowed_origins=ORIGIN,
            sections={"store": {"backend": "redis", "url": f"redis://127.0.0.1:{redis_port}/0"}},
        )
    )
    settings = load_cluster(config).node_settings("redis-node")
    for_get = seed_sessions(settings, GET_SESSIONS)
    node_url = f"http://127.0.0.1:{port}{settings.context_path}"
    node = stack.enter_context(
        running(
            [
                sys.executable, "-m", "benchmarks.node", "--config", str(config),
                f"--workers={args.workers}", "--name", "redis-node", "--serve", "node",
                f"--port={port}",
            ],
            directory / "node-redis.log",
            f"{node_url}/health",
        )
    )  # fmt: skip
    lag["create" + REDIS] = LoopLagMeter(f"{node_url}/metrics")
    live = f"{settings.context_path}/rest/live"
    scenarios = [
        Scenario(
            "create" + REDIS,
            f"{node_url}/rest/live/sessions",
            'wrk.method = "POST"\n',
            around=lag["create" + REDIS].around,
            cpu_group=node.pid,
        ),
        Scenario(
            "get" + REDIS,
            node_url,
            lua_cycle(
                "GET", [f"{live}/sessions/{s.session_token}" for s in for_get], {"Origin": ORIGIN}
            ),
            cpu_group=node.pid,
        ),
    ]
    return SharedStoreNode(scenarios, (node.pid, redis.pid))


def report(
    summaries: list[Summary],
    lag: dict[str, LoopLagMeter],
    args: argparse.Namespace,
    redis_cpu_us: float | None = None,
) -> int:
    print(f"{'':<{LABEL_WIDTH}} {'median of rounds':>16}")
    status = 0
    for summary in summaries:
        target = TARGETS.get(summary.label)
        verdict = ""
        if target is not None and summary.ratio is not None:
            met = summary.ratio >= target
            verdict = f"  target >= {target:.2f}x: {'met' if met else 'MISSED'}"
            if args.check and not met:
                status = 1
        print(summary.row(LABEL_WIDTH) + verdict)
        if summary.errors:
            print(f"  {summary.label}: {summary.errors} errors", file=sys.stderr)
            status = 1
    line, met = lag["create"].line("create", LOOP_LAG_TARGET_S)
    print(line)
    if args.check and not met:
        status = 1
    print(lag["get"].line("get", None)[0])
    if "create" + REDIS in lag:
        print(lag["create" + REDIS].line("create" + REDIS, None)[0])
    for label, meter in lag.items():
        print(f"  {label} loop lag samples: {meter.distribution()}")
    if args.store == "redis":
        status |= report_shared_store(summaries, args, redis_cpu_us)
    return status


def report_shared_store(
    summaries: list[Summary], args: argparse.Namespace, redis_cpu_us: float | None
) -> int:
    """Print each backend's create and get, and the ratio redis/sqlite."""
    by_label = {summary.label: summary for summary in summaries}
    status = 0
    for operation in ("create", "get"):
        sqlite, redis = by_label[operation], by_label[operation + REDIS]
        # Both are medians of ratios to the same rounds' baselines: their quotient compares
        # the backends without the host's drift between runs.
        assert sqlite.ratio
        assert redis.ratio is not None
        ratio = redis.ratio / sqlite.ratio
        met = ratio >= REDIS_TARGET
        print(
            f"{operation}: sqlite {sqlite.requests_per_s:.0f} req/s, redis "
            f"{redis.requests_per_s:.0f} req/s: redis/sqlite {ratio:.2f}x, target >= "
            f"{REDIS_TARGET:.2f}x: {'met' if met else 'MISSED'}"
        )
        if args.check and not met:
            status = 1
    if redis_cpu_us is not None:
        print(f"  redis-server's own CPU: {redis_cpu_us:.0f} µs per request to the node on it")
    return status


if __name__ == "__main__":
    sys.exit(main())
