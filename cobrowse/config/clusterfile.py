"""Write cluster files: for `cobrowse cluster --nodes N`, and for tests and benchmarks."""

from __future__ import annotations

import random
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now, below the ephemeral range.

    A port the kernel hands out for `bind(0)` comes from the ephemeral range, which outgoing
    connections also draw from: between choosing it and listening on it, a busy machine's client
    sockets can take it. Ports below that range are only ever taken by listeners.
    """
    low = _ephemeral_start()
    for _ in range(200):
        port = random.randrange(max(1024, low - 20_000), low)  # noqa: S311 - not a secret
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # crowded: fall back to the kernel's choice
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
        return chosen


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass(frozen=True, slots=True)
class GeneratedNode:
    """A node to write into a generated cluster file."""

    name: str
    port: int
    workers: int = 2
    options: Mapping[str, str] = field(default_factory=dict)


CONSOLE_OPERATIONS = "(sessions.get, sessions.join, sessions.channel, health)"


def console_origins(host: str, port: int) -> list[str]:
    """The `allowedOrigins` entries of an agent console served at `http://host:port`.

    Only what the console does: find a session, join it, open its channel, check health.
    """
    hosts = [host, "localhost"] if host == "127.0.0.1" else [host]
    return [f"http://{name}:{port} {CONSOLE_OPERATIONS}" for name in hosts]


def render_cluster_file(
    nodes: Sequence[GeneratedNode],
    *,
    router_port: int,
    data_dir: Path,
    host: str = "127.0.0.1",
    context_path: str = "/cobrowse",
    allowed_origins: str = "http://localhost:8080, https://*.example.com",
    sections: Mapping[str, Mapping[str, str]] | None = None,
    console: bool = True,
) -> str:
    """Return a cluster file whose nodes advertise `serverUrl` through the router's prefixes.

    With `console`, the router's own origin may find, join and watch sessions: the agent
    console is served by the nodes through it (`<ctx>/agent/`), so its requests carry it.
    """
    origin = f"http://{host}:{router_port}"
    if console:
        allowed_origins = ", ".join([allowed_origins, *console_origins(host, router_port)])
    chosen: dict[str, dict[str, str]] = {
        "cluster": {"url": f"{origin}{context_path}"},
        "cross-origin": {"allowedOrigins": allowed_origins},
        "lb": {"bind": f"{host}:{router_port}"},
    }
    for section, options in (sections or {}).items():
        chosen.setdefault(section, {}).update(options)
    lines: list[str] = []
    for section, options in chosen.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in options.items())
        lines.append("")
    for node in nodes:
        lines.append(f"[node:{node.name}]")
        node_options = {
            "bind": f"{host}:{node.port}",
            "serverUrl": f"{origin}/{node.name}{context_path}",
            "dataDir": str(data_dir / node.name),
            "workers": str(node.workers),
            **node.options,
        }
        lines.extend(f"{key} = {value}" for key, value in node_options.items())
        lines.append("")
    return "\n".join(lines)
