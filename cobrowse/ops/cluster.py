"""`cobrowse cluster`: run every node of a cluster and its load balancer, then stop them all."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cobrowse.config.clusterfile import GeneratedNode, render_cluster_file
from cobrowse.config.loader import load_cluster
from cobrowse.config.settings import ClusterConfig

START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 20.0


class StartError(Exception):
    """A part of the cluster did not start; the message holds its log tail."""


@dataclass
class Part:
    """One process of the local cluster."""

    name: str
    kind: str  # node | router | haproxy | demo | redis
    url: str
    health_url: str | None  # None: `ready` alone says whether it is up (not HTTP)
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    # Beyond a 200 from `health_url`: e.g. HAProxy's own probes have found every node up.
    ready: Callable[[], bool] | None = None
    # Stopped once every other part has exited (the shared store outlives the nodes).
    stop_last: bool = False

    def healthy(self) -> bool:
        if self.health_url is not None and health_status(self.health_url) != 200:
            return False
        return self.ready is None or self.ready()

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # Its own process group, so that stopping it also stops every Gunicorn worker.
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)


def health_status(url: str, timeout: float = 1.0) -> int | None:
    """Return the status of GET `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, urllib.error.URLError):
        return None


DEFAULT_ORIGINS = "http://localhost:8080, https://*.example.com"


def generate_cluster(
    directory: Path,
    nodes: int,
    port: int,
    workers: int = 2,
    *,
    demo_port: int | None = None,
    sections: dict[str, dict[str, str]] | None = None,
) -> Path:
    """Write a cluster file for `nodes` nodes on ports port+1.. behind a router on `port`.

    HAProxy's stats page, when HAProxy replaces the router, takes the port after the nodes'.
    The demo site's origin (`http://localhost:<demo_port>`) is allowed, and so is the router's
    own (the agent console's, with only what the console does).
    """
    directory.mkdir(parents=True, exist_ok=True)
    origins = DEFAULT_ORIGINS
    if demo_port is not None and f"http://localhost:{demo_port}," not in origins:
        origins = f"http://localhost:{demo_port}, {origins}"
    chosen: dict[str, dict[str, str]] = {"lb": {"statsBind": f"127.0.0.1:{port + nodes + 1}"}}
    for section, options in (sections or {}).items():
        chosen.setdefault(section, {}).update(options)
    path = directory / "cluster.ini"
    path.write_text(
        render_cluster_file(
            [GeneratedNode(f"node-{i}", port + i, workers) for i in range(1, nodes + 1)],
            router_port=port,
            data_dir=directory.resolve(),
            allowed_origins=origins,
            sections=chosen,
        )
    )
    return path


def demo_part(config: ClusterConfig, port: int, log_dir: Path) -> Part:
    """The demo website on `port`: pages that include the customer script from the cluster."""
    return Part(
        "demo",
        "demo",
        f"http://localhost:{port}/",
        f"http://127.0.0.1:{port}/",
        [
            sys.executable,
            "-m",
            "cobrowse.ops.demo",
            "--port",
            str(port),
            "--cluster-url",
            config.url,
        ],
        log_dir / "demo.log",
    )


def console_url(config: ClusterConfig) -> str:
    """The agent console, through the load balancer."""
    host, _, port = config.router.bind.rpartition(":")
    return f"http://{host}:{port}{config.context_path}/agent/"


def cluster_parts(
    config: ClusterConfig,
    config_path: Path,
    log_dir: Path,
    lb: str = "router",
    demo_port: int | None = None,
) -> list[Part]:
    """Return the node processes, the load balancer (`router` or `haproxy`) and the demo site
    (when `demo_port` is given) of a cluster."""
    cobrowse = [sys.executable, "-m", "cobrowse.cli"]
    parts = [
        Part(
            node.name,
            "node",
            f"{node.base_url}{config.context_path}",
            f"{node.base_url}{config.context_path}/health",
            [*cobrowse, "node", "--config", str(config_path), "--name", node.name],
            log_dir / f"{node.name}.log",
        )
        for node in config.nodes
    ]
    host, _, port = config.router.bind.rpartition(":")
    lb_url = f"http://{host}:{port}"
    if lb == "haproxy":
        parts.append(haproxy_part(config, lb_url, log_dir))
    elif lb == "router":
        parts.append(
            Part(
                "router",
                "router",
                lb_url,
                f"{lb_url}/health",
                [*cobrowse, "router", "--config", str(config_path)],
                log_dir / "router.log",
            )
        )
    else:
        raise ValueError(f"unknown load balancer {lb!r} (router or haproxy)")
    if demo_port is not None:
        parts.append(demo_part(config, demo_port, log_dir))
    return parts


def haproxy_part(config: ClusterConfig, url: str, log_dir: Path) -> Part:
    """Write haproxy.cfg beside the logs and return HAProxy in the router's place."""
    from cobrowse.ops.lbconfig.haproxy import render_haproxy
    from cobrowse.ops.lbconfig.haproxy_stats import every_server_up

    log_dir.mkdir(parents=True, exist_ok=True)
    config_file = (log_dir / "haproxy.cfg").resolve()
    stats_socket = config_file.with_name("haproxy.sock")
    config_file.write_text(
        render_haproxy(
            config,
            command="cobrowse cluster --lb haproxy (written at each start)",
            stats_socket=str(stats_socket),
            user=None,  # stay the user who runs the cluster
        )
    )
    names = [node.name for node in config.nodes]
    return Part(
        "haproxy",
        "haproxy",
        url,
        f"{url}/health",  # HAProxy's monitor-uri: 200 while a node takes new sessions
        # -db: stay in the foreground, so that the part's process is HAProxy itself.
        [shutil.which("haproxy") or "/usr/sbin/haproxy", "-f", str(config_file), "-db"],
        log_dir / "haproxy.log",
        ready=lambda: every_server_up(stats_socket, names),
    )


class LocalCluster:
    """Start parts in order, wait for health, and always stop everything that was started."""

    def __init__(
        self,
        parts: Sequence[Part],
        ready_check: Callable[[], bool] | None = None,
        links: Sequence[tuple[str, str]] = (),
    ):
        self.parts = list(parts)
        self.ready_check = ready_check
        self.links = list(links)  # (name, url): pages served by the parts, in the table too

    def start(self, deadline: float = START_DEADLINE_S) -> None:
        """Start every part and wait until all answer 200; raise StartError (after stopping)."""
        try:
            for part in self.parts:
                part.start()
            self._wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, deadline: float) -> None:
        end = time.monotonic() + deadline
        pending = list(self.parts)
        while pending:
            for part in list(pending):
                if not part.alive():
                    raise StartError(f"{part.name} exited during start:\n{part.tail()}")
                if part.healthy():
                    pending.remove(part)
            if pending and time.monotonic() > end:
                names = ", ".join(part.name for part in pending)
                tails = "\n".join(f"--- {part.name} ---\n{part.tail()}" for part in pending)
                raise StartError(f"not healthy after {deadline:.0f}s: {names}\n{tails}")
            time.sleep(0.1)
        while self.ready_check is not None and not self.ready_check():
            if time.monotonic() > end:
                raise StartError("the load balancer does not see every node up")
            time.sleep(0.1)

    def stop(self, deadline: float = STOP_DEADLINE_S) -> None:
        """SIGTERM every part (load balancer first, the shared store once the rest has
        exited), SIGKILL what is left after `deadline`."""
        end = time.monotonic() + deadline
        for last in (False, True):
            parts = [part for part in self.parts if part.stop_last is last]
            for part in reversed(parts):
                part.signal_group(signal.SIGTERM)
            for part in parts:
                if part.process is None:
                    continue
                try:
                    part.process.wait(max(0.1, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    part.signal_group(signal.SIGKILL)
                    part.process.wait(5)
                # Workers whose master died first would be orphans: the group takes them too.
                part.signal_group(signal.SIGKILL)

    def table(self) -> str:
        rows = [("part", "url", "pid", "state")]
        for part in self.parts:
            if part.health_url is None:
                state = "up" if part.alive() and part.healthy() else "down"
            else:
                status = health_status(part.health_url)
                state = {200: "up", 404: "draining", 503: "not ready", None: "down"}.get(
                    status, str(status)
                )
            rows.append((part.name, part.url, str(part.pid), state))
        for name, url in self.links:
            rows.append((name, url, "-", "up" if health_status(url) == 200 else "down"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        )


def redis_argv(directory: Path, port: int) -> list[str]:
    """`redis-server` on loopback, its data in `directory`, the append-only file fsynced at
    every write (`appendfsync always`): what it acknowledged survives a crash of Redis."""
    return [
        shutil.which("redis-server") or "/usr/bin/redis-server",
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(directory.resolve()),
        "--appendonly", "yes",
        "--appendfsync", "always",
        "--save", "",
        "--protected-mode", "yes",
    ]  # fmt: skip


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    """Return whether a Redis on 127.0.0.1:`port` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_part(data_dir: Path, port: int, log_dir: Path) -> Part:
    """A local redis-server for the cluster's shared store: data in `<data_dir>/redis`."""
    directory = data_dir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    return Part(
        "redis",
        "redis",
        f"redis://127.0.0.1:{port}/0",
        None,
        redis_argv(directory, port),
        log_dir / "redis.log",
        ready=lambda: redis_ping(port),
        stop_last=True,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_cluster(
    config_path: Path,
    log_dir: Path,
    lb: str = "router",
    demo_port: int | None = None,
    before: Sequence[Part] = (),
) -> int:
    """Run the cluster in the foreground until Ctrl-C or SIGTERM; return the exit status.

    `before`: parts started ahead of the nodes (the shared store's Redis)."""
    config = load_cluster(config_path)
    console = console_url(config)
    parts = [*before, *cluster_parts(config, config_path, log_dir, lb, demo_port)]
    cluster = LocalCluster(parts, links=[("agent console", console)])
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops us like Ctrl-C, even mid-start
    reported: set[str] = set()
    try:
        cluster.start()
        print(cluster.table())
        if lb == "haproxy":
            print(f"\nHAProxy stats: http://{config.router.stats_bind}/stats")
        if demo_port is not None:
            print(
                f"\nCo-browse: open the demo site http://localhost:{demo_port}/ in one window "
                f"(the customer: press Co-browse)\nand the agent console {console} in another "
                "(the agent: enter the code)."
            )
        print(f"\ncluster URL: {config.url} — logs in {log_dir} — Ctrl-C stops everything")
        while True:
            time.sleep(1.0)
            for part in cluster.parts:
                if not part.alive() and part.name not in reported:
                    reported.add(part.name)
                    print(f"{part.name} exited:\n{part.tail(10)}", file=sys.stderr)
    except StartError as error:
        print(f"cluster failed to start: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        print("stopping the cluster…", file=sys.stderr)
        cluster.stop()
    return 0
