"""Pieces that both generators share: time units, addresses and the explanatory header."""

from __future__ import annotations

import math

from cobrowse.config.settings import ClusterConfig, split_bind

CREATE_PATH = "/rest/live/sessions"  # under the context path; POST creates a session
# The realtime channel, a WebSocket (REALTIME.md), under the context path.
CHANNEL_PATH_REGEX = "/rest/live/users/[^/]+/channel$"
# A WebSocket tunnel one side has half-closed: how long the other side has to close too.
HALF_CLOSED_TIMEOUT_S = 5.0

PRECEDENCE = (
    "Requests go where the router would send them (ARCHITECTURE invariant 3):",
    "  1. a URL prefix /<node>/... (the sessionServerUrl a node advertises) goes to that node,",
    "     with the prefix removed;",
    "  2. the gcbSessionServer cookie, else the gcbSessionServer request header (browsers that",
    "     block third-party cookies send it), sticks to the node it names;",
    "  3. a token in the path cannot be placed here (no hash ring): the request is spread, and a",
    "     node that does not host the token answers 307 to the owner's serverUrl, which is rule 1;",
    "  4. anything else is spread over the nodes that take new sessions.",
    "WebSockets (the realtime channel) follow the same rules, but a browser's WebSocket can",
    "neither follow a 307 nor carry a custom header, and third-party cookies may be blocked:",
    "it sticks by its URL prefix (browsers open it under the sessionServerUrl).",
)

SHARED = (
    "The shared store ([store] backend = redis): any node serves any session. The rules above",
    "still choose the preferred node, but a token is served where it lands (no 307), and a",
    "request whose preferred node is down, or refuses the connection, goes to another node.",
)


def milliseconds(seconds: float) -> str:
    """Return a duration as whole milliseconds, which HAProxy and nginx both accept."""
    return f"{max(1, round(seconds * 1000))}ms"


def whole_seconds(seconds: float) -> str:
    """Return a duration rounded up to whole seconds (for settings that take no smaller unit)."""
    return f"{max(1, math.ceil(seconds))}s"


def host_port(bind: str) -> str:
    """Return `host:port` with an IPv6 host in brackets, as both programs write addresses."""
    host, port = split_bind(bind)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def header(title: str, config: ClusterConfig, command: str, check: str, reload: str) -> list[str]:
    """Return the comment block that opens a generated file: what it is and how to redo it."""
    nodes = ", ".join(node.name for node in config.nodes)
    return [
        f"# {title} for the Co-browse cluster {config.url}",
        f"# (nodes: {nodes}).",
        "#",
        "# Generated from the cluster file by:",
        f"#     {command}",
        "# Do not edit it by hand: change the cluster file and run that command again, then check",
        f"# the result with `{check}` and reload with `{reload}`.",
        "#",
        *(f"# {line}" for line in PRECEDENCE),
        *(f"# {line}" for line in (SHARED if config.store.shared else ())),
    ]
