"""The app's own cost per request, without a server: the node's ASGI app against hello world.

    scripts/bench inprocess [--requests 5000] [--rounds 3] [--profile get]

Calls each ASGI app directly in this process, on uvloop as the node's worker does, with a
hand-built scope, a `receive` that hands over the (empty) body and a `send` that only checks the
status: no sockets, no Gunicorn, no Uvicorn, so the difference to hello world is exactly the
per-request work of the node's app (routing, CORS, the store, JSON, metrics in multiprocess
mode as under Gunicorn, the access log written to /dev/null). The apps go through ASGI lifespan
startup first, as under Uvicorn (the store opens, the loop-lag monitor runs). Prints the best of
the rounds, in µs per request.

Then where the time goes, for get and create (the issue's targets), by timing variants:

- the store call alone (`await store.get_live(...)`, `await store.create(...)`);
- the session service alone (`await service.get_live(...)`, `await service.create()`): the rules
  around the store call;
- the app without any middleware: Falcon, the resource, the service and the store;
- the full app, and the full app without each middleware in turn: what each one costs.

`--profile NAME` then runs that request under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.hello import create_hello_app
from benchmarks.node import ORIGIN, seed_sessions_async
from cobrowse.config.clusterfile import GeneratedNode, render_cluster_file
from cobrowse.config.loader import load_cluster
from cobrowse.config.settings import NodeSettings
from cobrowse.observe.accesslog import AccessLog
from cobrowse.store import Session, TokenConflictError

AsgiApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
ScopeFactory = Callable[[int], dict[str, Any]]
Call = Callable[[int], Awaitable[object]]
HOST = ("127.0.0.1", 18701)
REQUEST = {"type": "http.request", "body": b"", "more_body": False}
LAYER_ROUNDS = 5  # at least, for the differences between variants


def http_scope(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> dict:
    """Return an ASGI HTTP scope as Uvicorn builds it for a bodiless request from wrk."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": HOST,
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", f"{HOST[0]}:{HOST[1]}".encode()),
            *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items()),
        ],
        "state": {},
    }


async def receive() -> dict[str, Any]:
    return REQUEST


class Statuses:
    """The ASGI `send` of the benchmark: it keeps nothing but refuses an unexpected status."""

    def __init__(self, expected: int) -> None:
        self.expected = expected

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != self.expected:
            raise RuntimeError(f"unexpected answer {message['status']}, not {self.expected}")


def request_call(app: AsgiApp, scopes: list[dict[str, Any]], status: int = 200) -> Call:
    """Return a call that sends the i-th request (of `scopes`, cycled) to `app`."""
    send = Statuses(status)
    count = len(scopes)

    async def call(index: int) -> None:
        await app(dict(scopes[index % count]), receive, send)

    return call


async def microseconds_per_call(call: Call, requests: int, start: int = 0) -> float:
    """Await `call(start)` ... `call(start + requests - 1)`; return the mean wall time, in µs."""
    started = time.perf_counter()
    for index in range(start, start + requests):
        await call(index)
    return (time.perf_counter() - started) / requests * 1e6


class Lifespan:
    """Run an ASGI app's lifespan startup, and its shutdown at the end, as Uvicorn does."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        answer = await self.outbox.get()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {answer}")

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        if self.task is not None:
            await self.task


class Bench:
    """Build the apps and the calls to time; time them."""

    def __init__(self, settings: NodeSettings, args: argparse.Namespace, devnull: int) -> None:
        self.settings = settings
        self.args = args
        self.devnull = devnull
        self.lifespans: list[Lifespan] = []
        self.context = settings.context_path
        self.live = f"{settings.context_path}/rest/live"

    async def node_app(self) -> Any:
        """Return the node's app, started (one per process: its realtime hub binds a socket)."""
        from cobrowse.web.app import create_app

        app = create_app(self.settings, access_log=AccessLog(descriptor=self.devnull))
        return await self.started(app)

    async def started(self, app: Any) -> Any:
        lifespan = Lifespan(app)
        await lifespan.start()
        self.lifespans.append(lifespan)
        return app

    async def best(self, call: Call, requests: int | None = None) -> float:
        """Warm up, then return the best of the rounds, in µs per call."""
        requests = requests or self.args.requests
        # Indices past the rounds' own: a call may use up what it is given (a stop's session).
        await microseconds_per_call(call, max(1, requests // 5), requests * self.args.rounds)
        timings = []
        for round_index in range(self.args.rounds):
            timings.append(await microseconds_per_call(call, requests, requests * round_index))
        return min(timings)

    async def seed(self, count: int, seed: int) -> list[Session]:
        return await seed_sessions_async(self.settings, count, seed)

    def get_scopes(self, tokens: list[str]) -> list[dict[str, Any]]:
        return [
            http_scope(f"{self.live}/sessions/{token}", headers={"Origin": ORIGIN})
            for token in tokens
        ]

    def create_scopes(self) -> list[dict[str, Any]]:
        return [http_scope(f"{self.live}/sessions", "POST")]

    def user_scopes(self, sessions: list[Session], path: str) -> list[dict[str, Any]]:
        return [http_scope(f"{self.live}/users/{s.user_token}/{path}") for s in sessions]


async def run(settings: NodeSettings, args: argparse.Namespace, devnull: int) -> None:
    from cobrowse.web.cors import CorsMiddleware
    from cobrowse.web.observability import ObservabilityMiddleware
    from cobrowse.web.ratelimit import RateLimitMiddleware

    bench = Bench(settings, args, devnull)
    tokens = [session.session_token for session in await bench.seed(1000, 42)]
    for_ping = await bench.seed(1000, 43)
    # Every stop is a first stop (the write): as many sessions as stops, warm-up included.
    stops = args.requests * args.rounds + max(1, args.requests // 5)
    for_stop = await bench.seed(stops, 44)
    node = await bench.node_app()
    hello = await bench.started(create_hello_app())
    cases: dict[str, Call] = {
        "hello": request_call(hello, [http_scope("/hello")]),
        "get": request_call(node, bench.get_scopes(tokens)),
        "create": request_call(node, bench.create_scopes()),
        "stop": request_call(node, bench.user_scopes(for_stop, "session/stop")),
        "ping": request_call(node, bench.user_scopes(for_ping, "ping")),
        "health": request_call(node, [http_scope(f"{bench.context}/health")]),
    }
    print(f"{'request':<10} {'µs per request':>15} {'over hello world':>17}")
    best: dict[str, float] = {}
    for name, call in cases.items():
        best[name] = await bench.best(call)
        print(f"{name:<10} {best[name]:15.1f} {best[name] - best['hello']:+16.1f}", flush=True)

    middleware = (ObservabilityMiddleware, CorsMiddleware, RateLimitMiddleware)
    rows, rounds = await layers(bench, node, tokens, middleware)
    print_layers(rows, rounds, middleware, best["hello"])

    if args.profile:
        profiled = cases[args.profile]
        if args.profile == "stop":  # fresh sessions: a repeated stop is only a read
            fresh = await bench.seed(args.requests, 45)
            profiled = request_call(node, bench.user_scopes(fresh, "session/stop"))
        profiler = cProfile.Profile()
        profiler.enable()
        await microseconds_per_call(profiled, args.requests)
        profiler.disable()
        stats = pstats.Stats(profiler)
        print(f"\nprofile of {args.profile}, {args.requests} requests, by cumulative time:")
        stats.sort_stats("cumulative").print_stats(30)
        print(f"profile of {args.profile}, by own time:")
        stats.sort_stats("tottime").print_stats(20)

    for lifespan in reversed(bench.lifespans):
        await lifespan.stop()


def direct_calls(
    node: Any, get_path: str, tokens: list[str], draws: int
) -> dict[str, dict[str, Call]]:
    """Return get and create as the store alone and as the session service alone."""
    service = node._router.find(get_path)[0].service  # Get Session's resource
    store, clock, issuer = service.store, service.clock, service.issuer
    # Sessions for the store's create alone, drawn beforehand: drawing is the service's work.
    now = clock.now_ms()
    fresh = [
        Session(issuer.session_token(), issuer.user_token(), now, now + 60_000)
        for _ in range(draws)
    ]
    count = len(tokens)

    async def store_get(index: int) -> object:
        return await store.get_live(tokens[index % count], clock.now_ms())

    async def service_get(index: int) -> object:
        return await service.get_live(tokens[index % count])

    async def store_create(index: int) -> None:
        session = fresh[index % draws]
        while True:
            try:
                return await store.create(session)
            except TokenConflictError:  # a birthday collision (rare): draw again, as the node
                session = replace(session, session_token=issuer.session_token())

    async def service_create(index: int) -> object:
        return await service.create()

    return {
        "get": {"store": store_get, "service": service_get},
        "create": {"store": store_create, "service": service_create},
    }


def middleware_chains(node: Any, middleware: tuple[type, ...]) -> dict[str, Any]:
    """Return Falcon's prepared chains: the full one, none, and each without one middleware."""
    removals: dict[str, tuple[type, ...]] = {"bare": middleware}
    removals.update({f"without {kind.__name__}": (kind,) for kind in middleware})
    chains = {"full": node._middleware}
    for variant, removed in removals.items():
        chains[variant] = node._prepare_middleware(
            [m for m in node._unprepared_middleware if not isinstance(m, removed)],
            independent_middleware=node._independent_middleware,
        )
    return chains


async def layers(
    bench: Bench, node: Any, tokens: list[str], middleware: tuple[type, ...]
) -> tuple[dict[str, dict[str, float]], int]:
    """Time get and create through fewer and fewer layers; return the best µs, and the rounds.

    Variants are interleaved, round after round, and the best of the rounds kept: the table
    grows with every create, and a slower moment of the machine then hits every variant alike.
    """
    requests, rounds = bench.args.requests, max(bench.args.rounds, LAYER_ROUNDS)
    get_path = f"{bench.live}/sessions/{tokens[0]}"
    alone = direct_calls(node, get_path, tokens, draws=requests * (rounds + 1))
    chains = middleware_chains(node, middleware)
    full_chain = node._middleware
    through_app = {
        "get": request_call(node, bench.get_scopes(tokens)),
        "create": request_call(node, bench.create_scopes()),
    }
    rows: dict[str, dict[str, float]] = {"get": {}, "create": {}}
    for round_index in range(-1, rounds):  # round -1 warms up
        size = max(1, requests // 5) if round_index < 0 else requests
        start = requests * rounds if round_index < 0 else requests * round_index
        for kind in ("get", "create"):
            timings = {}
            for variant, call in alone[kind].items():
                timings[variant] = await microseconds_per_call(call, size, start)
            for variant, chain in chains.items():
                node._middleware = chain  # Falcon runs the chain it prepared: swap it
                try:
                    timings[variant] = await microseconds_per_call(through_app[kind], size, start)
                finally:
                    node._middleware = full_chain
            if round_index >= 0:
                for variant, timing in timings.items():
                    rows[kind][variant] = min(rows[kind].get(variant, timing), timing)
    return rows, rounds


def print_layers(
    rows: dict[str, dict[str, float]], rounds: int, middleware: tuple[type, ...], hello: float
) -> None:
    def line(label: str, values: list[float], note: str = "") -> None:
        cells = "".join(f"{value:10.1f}" for value in values)
        print(f"{label:<38}{cells}  {note}")

    kinds = ("get", "create")
    title = f"where the time goes (µs per request, best of {rounds} interleaved rounds)"
    print(f"\n{title}\n{'':<38}{'get':>10}{'create':>10}")
    line("full app", [rows[k]["full"] for k in kinds])
    line(
        "  middleware chain",
        [rows[k]["full"] - rows[k]["bare"] for k in kinds],
        "full - app without middleware",
    )
    for kind in middleware:
        line(
            f"    {kind.__name__}",
            [rows[k]["full"] - rows[k][f"without {kind.__name__}"] for k in kinds],
            "full - full without it",
        )
    line("  app without middleware", [rows[k]["bare"] for k in kinds])
    line(
        "    falcon + resource",
        [rows[k]["bare"] - rows[k]["service"] for k in kinds],
        "app without middleware - service call",
    )
    line(
        "    service rules",
        [rows[k]["service"] - rows[k]["store"] for k in kinds],
        "service call - store call",
    )
    line("    store call", [rows[k]["store"] for k in kinds], "await store.get_live/create")
    line("hello world (falcon asgi floor)", [hello] * 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000, help="per round and request type")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=["hello", "get", "create", "stop", "ping", "health"])
    args = parser.parse_args(argv)

    import uvloop

    from cobrowse.observe.metrics import prepare_multiprocess_dir

    with tempfile.TemporaryDirectory(prefix="cobrowse-inprocess-") as scratch:
        directory = Path(scratch)
        # Metrics as under Gunicorn: multiprocess mode, set before prometheus_client is imported.
        if "prometheus_client" in sys.modules:
            print("prometheus_client imported too early: metrics not in multiprocess mode")
        prepare_multiprocess_dir(str(directory / "metrics"))
        config = directory / "cluster.ini"
        config.write_text(
            render_cluster_file(
                [GeneratedNode("node-1", HOST[1], 1)],
                router_port=HOST[1] - 1,
                data_dir=directory / "data",
                allowed_origins=ORIGIN,
            )
        )
        settings = load_cluster(config).node_settings("node-1")
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(run(settings, args, devnull))
        finally:
            os.close(devnull)
    return 0


if __name__ == "__main__":
    sys.exit(main())
