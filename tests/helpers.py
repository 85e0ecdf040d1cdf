"""Test helpers: fake clocks and random sources, free ports, real processes with deadlines."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cobrowse.config.clusterfile import GeneratedNode, free_port, render_cluster_file

REPO = Path(__file__).resolve().parents[1]
COBROWSE = str(Path(sys.executable).with_name("cobrowse"))


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.current_ms = start_ms

    def now_ms(self) -> int:
        return self.current_ms

    def advance(self, seconds: float) -> None:
        self.current_ms += round(seconds * 1000)


def free_port_block(count: int) -> int:
    """Return a port P such that P .. P+count-1 are all free now (for `--port` offsets)."""
    import socket

    for _ in range(50):
        base = free_port()
        probes = []
        try:
            for offset in range(count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return base
    raise RuntimeError(f"no block of {count} free ports")


def wait_until(
    condition: Callable[[], Any], deadline: float, what: str, interval: float = 0.05
) -> Any:
    """Poll `condition` until it returns something truthy; raise TimeoutError after `deadline` s."""
    end = time.monotonic() + deadline
    last_error: Exception | None = None
    while time.monotonic() < end:
        try:
            result = condition()
        except Exception as error:
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not true after {deadline}s (last error: {last_error!r})")


def http_status(url: str, timeout: float = 2.0) -> int:
    """Return the status of GET `url` (errors included), or raise on connection failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def wait_until_responds(url: str, deadline: float, expect: int = 200) -> None:
    """Wait until GET `url` answers `expect`; raise TimeoutError after `deadline` seconds."""
    wait_until(lambda: http_status(url, timeout=1.0) == expect, deadline, f"GET {url} -> {expect}")


class Process:
    """A real child process with a log file, always stopped by the test that started it."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=REPO,
            start_new_session=True,  # its own process group: stop() reaps every child
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, signum)

    def stop(self, deadline: float = 15.0) -> int:
        """SIGTERM, then SIGKILL the whole group after `deadline` seconds; return the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(deadline)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Leftovers in the group: workers orphaned by a kill -9 of their master.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.log.close()
        return self.popen.returncode

    def kill(self) -> None:
        """kill -9 the process group, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def tail(self, lines: int = 40) -> str:
        if not self.log.closed:
            self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def children_of(pid: int) -> list[int]:
    """Return the pids whose parent is `pid` (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def write_cluster(
    directory: Path,
    nodes: int | Sequence[GeneratedNode] = 1,
    *,
    workers: int = 2,
    sections: dict[str, dict[str, str]] | None = None,
    router_port: int | None = None,
) -> Path:
    """Write a cluster file with free ports under `directory`; return its path."""
    if isinstance(nodes, int):
        nodes = [
            GeneratedNode(f"node-{index}", free_port(), workers) for index in range(1, nodes + 1)
        ]
    # Nodes stop at once in tests (no not-ready period after SIGTERM), unless a test asks.
    combined: dict[str, dict[str, str]] = {"cluster": {"shutdownDelay": "0"}}
    for section, options in (sections or {}).items():
        combined.setdefault(section, {}).update(options)
    path = directory / "cluster.ini"
    path.write_text(
        render_cluster_file(
            nodes,
            router_port=router_port or free_port(),
            data_dir=directory / "data",
            sections=combined,
        )
    )
    return path


def start_node(config: Path, name: str, log_dir: Path, *args: str) -> Process:
    """Start `cobrowse node` for `name` and return it once its /health answers 200."""
    from cobrowse.config.loader import load_cluster

    spec = load_cluster(config).node(name)
    process = Process(
        [COBROWSE, "node", "--config", str(config), "--name", name, *args],
        log_dir / f"{name}.log",
    )
    try:
        wait_until_responds(f"{spec.base_url}/cobrowse/health", deadline=20)
        # Every worker booted: a SIGTERM while Gunicorn is still spawning makes it wait out
        # its graceful timeout for the worker being born.
        wait_until(lambda: len(children_of(process.pid)) >= spec.workers, 20, "workers booted")
    except TimeoutError:
        process.stop()
        raise TimeoutError(f"node {name} did not become healthy:\n{process.tail()}") from None
    return process


class RunningCluster:
    """A real local cluster (nodes and router) on free ports, for one test."""

    def __init__(
        self, directory: Path, nodes: int = 3, workers: int = 2, **sections: dict[str, str]
    ):
        from cobrowse.config.loader import load_cluster
        from cobrowse.ops.cluster import LocalCluster, cluster_parts

        self.directory = directory
        self.config_path = write_cluster(
            directory,
            nodes,
            workers=workers,
            sections={k.replace("_", "-"): v for k, v in sections.items()},
        )
        self.config = load_cluster(self.config_path)
        self.parts = {
            part.name: part
            for part in cluster_parts(self.config, self.config_path, directory / "logs")
        }
        self.cluster = LocalCluster(list(self.parts.values()))
        self.router_url = self.parts["router"].url
        self.api = f"{self.router_url}/cobrowse/rest/live"

    def __enter__(self) -> RunningCluster:
        self.cluster.start(deadline=40)
        self.wait_states({node.name: "up" for node in self.config.nodes})
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.stop()

    def status(self) -> dict[str, Any]:
        import requests

        return requests.get(f"{self.router_url}/lb/status", timeout=5).json()

    def states(self) -> dict[str, str]:
        return {node["name"]: node["state"] for node in self.status()["nodes"]}

    def wait_states(self, wanted: dict[str, str], deadline: float = 10.0) -> float:
        """Wait until the router reports `wanted` node states; return the seconds it took."""
        start = time.monotonic()
        wait_until(
            lambda: all(self.states().get(name) == state for name, state in wanted.items()),
            deadline,
            f"router sees {wanted}",
        )
        return time.monotonic() - start


def start_cluster_command(output_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """Run `cobrowse cluster ARGS`, its output to `output_path`; return once its table is out.

    The caller stops it (SIGTERM, then wait) in a `finally`.
    """
    with output_path.open("wb") as output_file:
        command = subprocess.Popen(
            [sys.executable, "-m", "cobrowse.cli", "cluster", *args],
            stdout=output_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "cluster URL" in output_path.read_text(), 40, "cluster table printed")
    except BaseException:
        command.send_signal(signal.SIGTERM)
        command.wait(30)
        raise
    return command
