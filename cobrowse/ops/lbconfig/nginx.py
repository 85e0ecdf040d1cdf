"""Write nginx.conf for a cluster: the router's stickiness with open-source nginx (1.22).

Open-source nginx has no active health checks and never reads `/health`: it notices a dead
node only when real requests to it fail (`max_fails`), and it cannot see a drain (README,
"Running behind a load balancer").
"""

from __future__ import annotations

import json

from cobrowse.config.settings import ClusterConfig, NodeSpec
from cobrowse.ops.lbconfig.common import (
    CHANNEL_PATH_REGEX,
    CREATE_PATH,
    header,
    host_port,
    milliseconds,
    whole_seconds,
)

SPREAD = "cobrowse_spread"
DEFAULT_USER = "www-data"  # Debian's nginx workers
KEEPALIVE_IDLE_S = 2  # below the nodes' 5 s keep-alive, so nginx closes idle connections first
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def only_upstream(node: str) -> str:
    """Return the upstream of a node's URL prefix (rule 1): that node and no other."""
    return f"cobrowse_only_{node}"


def sticky_upstream(node: str) -> str:
    """Return the upstream of a cookie or header naming `node` (rule 2): it, else the others."""
    return f"cobrowse_sticky_{node}"


def render_nginx(
    config: ClusterConfig,
    *,
    command: str,
    run_dir: str | None = None,
    drained: frozenset[str] = frozenset(),
) -> str:
    """Return a complete nginx.conf for `config`; `command` is how to regenerate it.

    Nodes in `drained` take no new sessions, while their URL prefixes and cookies still reach
    them: open-source nginx cannot see a drain from `/health`, so the operator says so here.
    With `run_dir`, nginx runs unprivileged from there (pid, temporary files, access log; errors
    on stderr), as the tests run it: `nginx -p DIR -c FILE -e stderr -g 'daemon off;'`.
    Without it, the paths are those of Debian's nginx package.
    """
    blocks = [
        header(
            "nginx configuration",
            config,
            command,
            check="nginx -t -c <file>",
            reload="systemctl reload nginx",
        ),
        _limits(),
        _main(config, run_dir),
        ["events {", "    worker_connections 1024;", "}"],
        [
            "http {",
            *_indent(_http_basics(run_dir)),
            "",
            *_indent(_forwarded(config)),
            "",
            *_indent(_upgrade_map()),
            "",
            *_indent(_sticky_maps(config, drained)),
            "",
            *_indent(_upstreams(config, drained)),
            "",
            *_indent(_server(config)),
            "}",
        ],
    ]
    return "\n\n".join("\n".join(lines) for lines in blocks) + "\n"


def _indent(lines: list[str]) -> list[str]:
    return [f"    {line}" if line else "" for line in lines]


def _limits() -> list[str]:
    return [
        "# What open-source nginx cannot do, and what it means:",
        "# - No active health checks: a dead node is only noticed when real requests to it fail",
        "#   ([lb] checkFall of them), each costing a connection attempt; the request itself goes",
        "#   on to another node when it can (creates, and cookies of a dead node).",
        "# - It never reads <context>/health, so a drain (404) is invisible: to drain a node,",
        "#   regenerate with `--drain NODE` (which marks it `down` for new sessions only) and",
        "#   reload nginx.",
    ]


def _main(config: ClusterConfig, run_dir: str | None) -> list[str]:
    shutdown = [
        "# On reload, old workers finish what they carry, but WebSocket tunnels could keep them",
        "# for days: after [lb] serverTimeout they close them, and those clients reconnect",
        "# (resuming at their lastSeq) through the new workers.",
        f"worker_shutdown_timeout {milliseconds(config.router.server_timeout)};",
    ]
    if run_dir is None:
        return [
            f"user {DEFAULT_USER};",
            "worker_processes auto;",
            "pid /run/nginx.pid;",
            "error_log /var/log/nginx/error.log;",
            *shutdown,
        ]
    return [
        "# Runs unprivileged from a directory of its own (as the tests run it).",
        "worker_processes 1;",
        f"pid {run_dir}/nginx.pid;",
        "error_log stderr;",
        *shutdown,
    ]


def _http_basics(run_dir: str | None) -> list[str]:
    if run_dir is None:
        lines = ["access_log /var/log/nginx/access.log;"]
    else:
        lines = [f"access_log {run_dir}/access.log;"]
        lines += [f"{kind}_temp_path {run_dir}/{kind}_temp;" for kind in TEMP_PATHS]
    return [*lines, "server_tokens off;"]


def _forwarded(config: ClusterConfig) -> list[str]:
    return [
        "# X-Forwarded-For and -Proto, as the router sets them: what a client says about itself",
        "# counts only when it is one of [security] trustedProxies.",
        "geo $cobrowse_trusted_proxy {",
        "    default 0;",
        *(f"    {proxy} 1;" for proxy in config.security.trusted_proxies),
        "}",
        "map $cobrowse_trusted_proxy $cobrowse_forwarded_for {",
        "    1 $proxy_add_x_forwarded_for;",
        "    default $remote_addr;",
        "}",
        'map "$cobrowse_trusted_proxy:$http_x_forwarded_proto" $cobrowse_forwarded_proto {',
        '    "~^1:\\s*(https?)" $1;',
        "    default $scheme;",
        "}",
    ]


def _upgrade_map() -> list[str]:
    return [
        "# WebSockets: a handshake's Upgrade goes to the node with `Connection: upgrade`. Any",
        '# other request sends no Connection field (""), so that upstream keep-alive works.',
        "map $http_upgrade $connection_upgrade {",
        "    default upgrade;",
        '    "" "";',
        "}",
    ]


def _sticky_maps(config: ClusterConfig, drained: frozenset[str]) -> list[str]:
    by_cookie = [f"    {node.name} {sticky_upstream(node.name)};" for node in config.nodes]
    spread_instead = [
        f"    {sticky_upstream(node.name)} {SPREAD};"
        for node in config.nodes
        if node.name in drained
    ]
    return [
        "# Rule 2: a gcbSessionServer cookie naming a node decides; when none does, the",
        "# gcbSessionServer request header (browsers that block third-party cookies). Rules 3",
        "# and 4: anything else is spread.",
        "map $cookie_gcbSessionServer $cobrowse_upstream {",
        "    default $cobrowse_header_upstream;",
        *by_cookie,
        "}",
        "map $http_gcbsessionserver $cobrowse_header_upstream {",
        f"    default {SPREAD};",
        *by_cookie,
        "}",
        "# A create sticks too, but never to a drained node (`--drain`).",
        "map $cobrowse_upstream $cobrowse_create_upstream {",
        "    default $cobrowse_upstream;",
        *spread_instead,
        "}",
    ]


def _upstreams(config: ClusterConfig, drained: frozenset[str]) -> list[str]:
    lb = config.router
    # nginx counts failures within fail_timeout, then leaves the node out for as long: about the
    # router's time to notice a recovery (checkRise probes, checkInterval apart).
    fail_timeout = whole_seconds(lb.check_interval * lb.check_rise)
    passive = f"max_fails={lb.check_fall} fail_timeout={fail_timeout}"

    def spread_server(node: NodeSpec) -> str:
        state = " down" if node.name in drained else (" backup" if node.backup else "")
        return f"    server {host_port(node.bind)} weight={node.weight} {passive}{state};"

    def fallback_server(node: NodeSpec) -> str:
        state = " down" if node.name in drained else " backup"
        return f"    server {host_port(node.bind)} {passive}{state};"

    keepalive = ["    keepalive 16;", f"    keepalive_timeout {KEEPALIVE_IDLE_S}s;"]
    lines = [
        "# Passive health: after [lb] checkFall failed requests within fail_timeout, a node is",
        "# left out for fail_timeout, then tried again with real traffic. Connections to the",
        "# nodes are kept alive, closed when idle before the nodes would close them.",
        "",
        "# Rule 4: every node, round-robin by weight; backup nodes when no other is left;",
        "# drained nodes (`down`) never.",
        f"upstream {SPREAD} {{",
        *(spread_server(node) for node in config.nodes),
        *keepalive,
        "}",
    ]
    for node in config.nodes:
        others = [other for other in config.nodes if other.name != node.name]
        lines += [
            "",
            *_upstream_comment(node.name, config.store.shared),
            f"upstream {only_upstream(node.name)} {{",
            f"    server {host_port(node.bind)} {passive};",
            *keepalive,
            "}",
            f"upstream {sticky_upstream(node.name)} {{",
            f"    server {host_port(node.bind)} {passive};",
            *(fallback_server(other) for other in others),
            *keepalive,
            "}",
        ]
    return lines


def _upstream_comment(name: str, shared: bool) -> list[str]:
    if shared:
        return [
            f"# {name}. Rule 1 (its URL prefix) and rule 2 (its cookie or header): {name},",
            "# else the others, which serve its sessions too with the shared store",
            f"# ({only_upstream(name)} is then unused).",
        ]
    return [
        f"# {name}. Rule 1 (its URL prefix): {name} only. Rule 2 (its cookie or",
        f"# header): {name}, else the others; there a create simply succeeds, and a",
        "# request for one of its sessions is redirected to the prefix (503 naming it).",
    ]


def _server(config: ClusterConfig) -> list[str]:
    lb = config.router
    lines = [
        "server {",
        "    # Where the router would listen ([lb] bind): the nodes' serverUrl points here.",
        f"    listen {host_port(lb.bind)};",
        "    # [lb] maxBodySize, clientTimeout, connectTimeout and serverTimeout.",
        f"    client_max_body_size {lb.max_body_size};",
        f"    client_header_timeout {milliseconds(lb.client_timeout)};",
        f"    client_body_timeout {milliseconds(lb.client_timeout)};",
        f"    proxy_connect_timeout {milliseconds(lb.connect_timeout)};",
        f"    proxy_send_timeout {milliseconds(lb.server_timeout)};",
        f"    proxy_read_timeout {milliseconds(lb.server_timeout)};",
        "",
        "    # HTTP/1.1 without `Connection: close`, so that upstream keep-alive works; a",
        "    # WebSocket handshake carries its Upgrade and `Connection: upgrade`.",
        "    proxy_http_version 1.1;",
        "    proxy_set_header Upgrade $http_upgrade;",
        "    proxy_set_header Connection $connection_upgrade;",
        "    proxy_set_header Host $http_host;",
        "    proxy_set_header X-Forwarded-For $cobrowse_forwarded_for;",
        "    proxy_set_header X-Forwarded-Proto $cobrowse_forwarded_proto;",
        "    proxy_set_header X-Forwarded-Host $host;",
        "    # A request that could not be sent, or got no answer in time, goes to the next server",
        "    # of its upstream. Requests that are not idempotent (POST) are not retried once sent.",
        "    proxy_next_upstream error timeout;",
    ]
    channel = f"{config.context_path}{CHANNEL_PATH_REGEX}"
    tunnel = _tunnel_timeouts(config)
    shared = config.store.shared
    for node in config.nodes:
        name = node.name
        if shared:
            upstream = sticky_upstream(name)
            rule = [
                f"    # Rule 1: /{name}/... goes to {name}, without the prefix. With the shared",
                "    # store any node serves any session: when it fails (refused, or no answer",
                "    # in time), the request goes on to the other nodes (proxy_next_upstream,",
                "    # POSTs too when nothing was sent); WebSocket clients reconnect there.",
            ]
        else:
            upstream = only_upstream(name)
            rule = [f"    # Rule 1: /{name}/... goes to {name} alone, without the prefix."]
        next_upstream = ["        proxy_next_upstream error timeout;"] if shared else []
        lines += [
            "",
            *rule,
            f"    location ^~ /{name}/ {{",
            f"        rewrite ^/{name}(/.*)$ $1 break;",
            f"        proxy_pass http://{upstream};",
            *next_upstream,
            f"        error_page 502 503 504 = @{name}_unavailable;",
            "        # Its realtime channel (a WebSocket): the same, but silent for up to",
            "        # [lb] tunnelTimeout.",
            f"        location ~ ^/{name}{channel} {{",
            f"            rewrite ^/{name}(/.*)$ $1 break;",
            f"            proxy_pass http://{upstream};",
            *(f"    {line}" for line in tunnel),
            f"            error_page 502 503 504 = @{name}_unavailable;",
            "        }",
            "    }",
            f"    location @{name}_unavailable {{",
            *_json_error(
                lb.retry_after,
                {
                    "errorMessage": f"Node {name}, which hosts this session, is unavailable. "
                    "Start a new session.",
                    "node": name,
                },
            ),
            "    }",
        ]
    return [
        *lines,
        "",
        "    # Creates: a create that failed after it was sent is sent to another node too",
        "    # (non_idempotent). The failed node may have created a session nobody will use; it",
        "    # ends after [session] inactivityTimeout. A create is never blocked by a dead node.",
        f"    location = {config.context_path}{CREATE_PATH} {{",
        "        proxy_pass http://$cobrowse_create_upstream;",
        "        proxy_next_upstream error timeout non_idempotent;",
        "        error_page 502 503 504 = @no_node;",
        "    }",
        "    # Rules 2 to 4, for the realtime channel (a WebSocket) and for everything else.",
        f"    location ~ ^{channel} {{",
        "        proxy_pass http://$cobrowse_upstream;",
        *tunnel,
        "        error_page 502 503 504 = @no_node;",
        "    }",
        "    location / {",
        "        proxy_pass http://$cobrowse_upstream;",
        "        error_page 502 503 504 = @no_node;",
        "    }",
        "    location @no_node {",
        *_json_error(
            lb.retry_after, {"errorMessage": "No node is available to take this request."}
        ),
        "    }",
        "}",
    ]


def _tunnel_timeouts(config: ClusterConfig) -> list[str]:
    """Return the timeouts of a WebSocket location: [lb] tunnelTimeout each way.

    nginx times each direction of a tunnel separately; the nodes' pings go one way and the
    browsers' pongs the other, each at least once per [realtime] pingInterval (+ pingTimeout).
    """
    timeout = milliseconds(config.router.tunnel_timeout)
    return [
        f"        proxy_read_timeout {timeout};",
        f"        proxy_send_timeout {timeout};",
    ]


def _json_error(retry_after: int, body: dict[str, str]) -> list[str]:
    """Return the directives of an nginx answer in the router's JSON error shape."""
    return [
        "        default_type application/json;",
        f"        add_header Retry-After {retry_after} always;",
        f"        return 503 '{json.dumps(body)}';",
    ]
