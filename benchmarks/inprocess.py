"""The app's own cost per request, without a server: the node's app against hello world.

    scripts/bench inprocess [--requests 5000] [--rounds 3] [--profile get]

Calls each WSGI app directly in this process (no sockets, no Gunicorn), so the difference to
hello world is exactly the per-request work of the node's app: routing, CORS, the store, JSON,
metrics and the access log (written to /dev/null here). Prints the best of the rounds, in µs.
`--profile NAME` then runs that request under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.hello import create_hello_app
from benchmarks.node import ORIGIN, seed_sessions
from cobrowse.config.clusterfile import GeneratedNode, render_cluster_file
from cobrowse.config.loader import load_cluster
from cobrowse.observe.accesslog import AccessLog
from cobrowse.web.app import create_app

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
EnvironFactory = Callable[[int], dict[str, Any]]


def environ(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> dict:
    """Return a WSGI environ as Gunicorn would build it for a bodiless request."""
    built = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8701",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8701",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        built[f"HTTP_{name.upper().replace('-', '_')}"] = value
    return built


def microseconds_per_request(app: WsgiApp, make: EnvironFactory, requests: int) -> float:
    """Call `app` `requests` times and return the mean wall time per call, in µs."""

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        if not status.startswith(("200", "404")):
            raise RuntimeError(f"unexpected answer {status}")

    started = time.perf_counter()
    for index in range(requests):
        body = app(make(index), start_response)
        b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - started) / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000, help="per round and request type")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=["hello", "get", "create", "health"])
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cobrowse-inprocess-") as scratch:
        directory = Path(scratch)
        config = directory / "cluster.ini"
        config.write_text(
            render_cluster_file(
                [GeneratedNode("node-1", 18701, 1)],
                router_port=18700,
                data_dir=directory / "data",
                allowed_origins=ORIGIN,
            )
        )
        settings = load_cluster(config).node_settings("node-1")
        tokens = [session.session_token for session in seed_sessions(settings, 1000)]
        devnull = os.open(os.devnull, os.O_WRONLY)
        node = create_app(settings, access_log=AccessLog(descriptor=devnull))
        context = settings.context_path
        cases: dict[str, tuple[WsgiApp, EnvironFactory]] = {
            "hello": (create_hello_app(), lambda index: environ("/hello")),
            "get": (
                node,
                lambda index: environ(
                    f"{context}/rest/live/sessions/{tokens[index % len(tokens)]}",
                    headers={"Origin": ORIGIN},
                ),
            ),
            "create": (node, lambda index: environ(f"{context}/rest/live/sessions", "POST")),
            "health": (node, lambda index: environ(f"{context}/health")),
        }
        print(f"{'request':<10} {'µs per request':>15} {'over hello world':>17}")
        best: dict[str, float] = {}
        for name, (app, make) in cases.items():
            microseconds_per_request(app, make, args.requests // 5)  # warm up
            best[name] = min(
                microseconds_per_request(app, make, args.requests) for _ in range(args.rounds)
            )
            extra = best[name] - best["hello"]
            print(f"{name:<10} {best[name]:15.1f} {extra:+16.1f}")
        if args.profile:
            app, make = cases[args.profile]
            profiler = cProfile.Profile()
            profiler.runcall(microseconds_per_request, app, make, args.requests)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        os.close(devnull)
    return 0


if __name__ == "__main__":
    sys.exit(main())
