"""Write haproxy.cfg for a cluster: the router's stickiness, health checks and drain, in HAProxy.

Written for HAProxy 2.6 (Debian 12). The generated file explains itself block by block; the
header lists the routing rules, which are ARCHITECTURE invariant 3.
"""

from __future__ import annotations

import json

from cobrowse.config.settings import ClusterConfig, NodeSpec
from cobrowse.ops.lbconfig.common import (
    CREATE_PATH,
    HALF_CLOSED_TIMEOUT_S,
    header,
    host_port,
    milliseconds,
)

FRONTEND = "cobrowse"
ALL_NODES = "all_nodes"  # the backend of rules 2 to 4; `show stat` lists the nodes under it
DEFAULT_STATS_SOCKET = "/run/haproxy/admin.sock"  # where Debian's own haproxy.cfg puts it
DEFAULT_USER = "haproxy"  # created by Debian's haproxy package
# What becomes of a sticky request whose node is dead, in all_nodes.
# A node closes a kept-alive connection after 5 idle seconds (cobrowse.ops.node), and HAProxy
# keeps idle server connections longer (pool-purge-delay): a request sent on one the node has
# just closed gets no answer. It is retried on a new connection instead of answering 502.
RETRY_ON = (
    "    # A kept-alive connection the node closed meanwhile answers nothing: retried.",
    "    retry-on conn-failure empty-response",
)
DEAD_NODE = (
    "    # blocked by a dead node. A sticky request whose node is dead lands on another node,",
    "    # which redirects it to the owner's URL prefix (rule 3 to rule 1): a 503 naming it.",
)
DEAD_NODE_SHARED = (
    "    # blocked by a dead node. A sticky request whose node is dead lands on another node,",
    "    # which serves it: with the shared store, any node serves any session.",
)


def only_backend(node: str) -> str:
    """Return the name of the backend that serves a node's URL prefix (rule 1)."""
    return f"only_{node}"


def failover_backend(node: str) -> str:
    """Return the backend of a node's URL prefix with the shared store: it, else the others."""
    return f"failover_{node}"


def render_haproxy(
    config: ClusterConfig,
    *,
    command: str,
    stats_socket: str = DEFAULT_STATS_SOCKET,
    user: str | None = DEFAULT_USER,
) -> str:
    """Return a complete haproxy.cfg for `config`; `command` is how to regenerate it."""
    blocks = [
        header(
            "HAProxy configuration",
            config,
            command,
            check="haproxy -c -f <file>",
            reload="systemctl reload haproxy",
        ),
        _global(config, stats_socket, user),
        _defaults(config),
        _frontend(config),
        _all_nodes(config),
        *(_only(config, node) for node in config.nodes),
        *(_failover(config, node) for node in config.nodes if config.store.shared),
        _stats(config, stats_socket),
    ]
    return "\n\n".join("\n".join(lines) for lines in blocks) + "\n"


def _global(config: ClusterConfig, stats_socket: str, user: str | None) -> list[str]:
    lines = [
        "global",
        "    # Logs go to stderr: to the journal under systemd, to the log file under",
        "    # `cobrowse cluster --lb haproxy`.",
        "    log stderr format raw local0 info",
        "    # A reload starts new processes; the old ones finish what they carry, but WebSocket",
        "    # tunnels could keep them alive for days. After [lb] serverTimeout (every request in",
        "    # progress has had its full time) they stop, and their WebSocket clients reconnect",
        "    # (resuming at their lastSeq) through the new ones.",
        f"    hard-stop-after {milliseconds(config.router.server_timeout)}",
    ]
    if user:
        lines += [
            "    # Give up root once the listeners are bound.",
            f"    user {user}",
            f"    group {user}",
        ]
    return [
        *lines,
        "    # The runtime API. `show stat` lists every server with its state (column `status`:",
        "    # UP, DOWN, NOLB = draining, MAINT), e.g.",
        f"    #     echo 'show stat' | socat stdio unix-connect:{stats_socket}",
        f"    stats socket {stats_socket} mode 600 level admin",
        "    stats timeout 30s",
    ]


def _defaults(config: ClusterConfig) -> list[str]:
    lb = config.router
    return [
        "defaults",
        "    mode http",
        "    log global",
        "    # One line per request, as the router and the nodes write, with the request ID to",
        "    # follow it through them.",
        '    log-format "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc '
        '%ac/%fc/%bc/%sc/%rc %sq/%bq request_id=%[var(txn.request_id)] %{+Q}r"',
        "    # [lb] connectTimeout, clientTimeout (idle or slow clients), serverTimeout (a node's",
        "    # answer) and checkTimeout (a health probe).",
        f"    timeout connect {milliseconds(lb.connect_timeout)}",
        f"    timeout client {milliseconds(lb.client_timeout)}",
        f"    timeout http-request {milliseconds(lb.client_timeout)}",
        f"    timeout server {milliseconds(lb.server_timeout)}",
        f"    timeout check {milliseconds(lb.check_timeout)}",
        "    # WebSockets (the realtime channel): HAProxy carries the upgrade itself and routes",
        "    # the handshake like any request. A tunnel with no byte either way for [lb]",
        "    # tunnelTimeout is closed; nodes ping every [realtime] pingInterval, so only dead",
        "    # ones are.",
        f"    timeout tunnel {milliseconds(lb.tunnel_timeout)}",
        "    # A side that closed its half of a tunnel: the other has this long to finish.",
        f"    timeout client-fin {milliseconds(HALF_CLOSED_TIMEOUT_S)}",
        f"    timeout server-fin {milliseconds(HALF_CLOSED_TIMEOUT_S)}",
    ]


def _frontend(config: ClusterConfig) -> list[str]:
    lb = config.router
    names = [node.name for node in config.nodes]
    trusted = " ".join(config.security.trusted_proxies)
    lines = [
        f"frontend {FRONTEND}",
        "    # Where the router would listen ([lb] bind): the nodes' serverUrl points here.",
        f"    bind {host_port(lb.bind)}",
        "    # GET /health, as on the router: 200 while a node takes new sessions, else 503.",
        "    monitor-uri /health",
        f"    monitor fail if {{ nbsrv({ALL_NODES}) lt 1 }}",
        "",
        "    # Bodies over [lb] maxBodySize are refused before they reach a node.",
        "    http-request deny deny_status 413 if "
        f"{{ req.hdr_val(content-length) gt {lb.max_body_size} }}",
        "",
        "    # X-Forwarded-For, -Proto and -Host, as the router sets them: what a client says",
        "    # about itself counts only from [security] trustedProxies; `option forwardfor` then",
        "    # appends the address HAProxy sees.",
        f"    acl from_trusted_proxy src {trusted}",
        "    http-request del-header X-Forwarded-For if !from_trusted_proxy",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc } !from_trusted_proxy",
        "    http-request set-header X-Forwarded-Proto http "
        "if !{ req.hdr(X-Forwarded-Proto) -m found }",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
        "    option forwardfor",
        "",
        "    # X-Request-ID, as the router does: a client's ID is kept when it is sane (at most",
        "    # 255 letters, digits and dashes), else replaced; it goes to the node and comes back",
        "    # on the answer, and the log line shows it.",
        "    unique-id-format %{+X}o%ci-%cp-%fi-%fp-%Ts-%rt-%pid",
        "    acl sane_request_id req.hdr(X-Request-ID) -m reg ^[A-Za-z0-9-]{1,255}$",
        "    http-request set-header X-Request-ID %[unique-id] unless sane_request_id",
        "    http-request set-var(txn.request_id) req.hdr(X-Request-ID)",
        "    http-response set-header X-Request-ID %[var(txn.request_id)]",
        "",
        "    # Rule 1, URL prefix: remember the node named by /<node>/..., then remove the prefix.",
        f"    acl url_names_node path_reg ^/({'|'.join(names)})/",
        "    http-request set-var(txn.url_node) path,field(2,/) if url_names_node",
        r"    http-request replace-path ^/[^/]+(/.*)$ \1 if url_names_node",
        "    # A create (prefix removed) never sticks to a node that is down or draining.",
        "    http-request set-var(txn.create) bool(true) if METH_POST "
        f"{{ path {config.context_path}{CREATE_PATH} }}",
        "    acl create var(txn.create) -m bool",
    ]
    prefix_backend = only_backend
    if config.store.shared:
        prefix_backend = failover_backend
        lines += [
            "    # The shared store ([store] backend = redis): any node serves any session, so a",
            "    # prefix whose node is down goes to another node (failover_<node>) instead of",
            "    # getting the 503 naming it.",
        ]
    for name in names:
        lines += [
            f"    acl url_{name} var(txn.url_node) -m str {name}",
            f"    acl {name}_takes_sessions nbsrv({only_backend(name)}) gt 0",
            f"    use_backend {prefix_backend(name)} if url_{name} !create "
            f"or url_{name} {name}_takes_sessions",
        ]
    return [
        *lines,
        f"    # Rules 2 to 4 choose a server of {ALL_NODES}.",
        f"    default_backend {ALL_NODES}",
    ]


def _all_nodes(config: ClusterConfig) -> list[str]:
    lb = config.router
    names = [node.name for node in config.nodes]
    lines = [
        f"backend {ALL_NODES}",
        "    # Rule 4: round-robin over the servers that are up and not draining; backup servers",
        "    # only when no other is left.",
        "    balance roundrobin",
        "",
        "    # Rule 2, the cookie: passive stickiness. A node sets gcbSessionServer=<node> itself;",
        "    # HAProxy only reads the cookie and matches it against each server's `cookie` value",
        "    # below (no insert, no rewrite). A cookie naming a server that is down is ignored.",
        "    cookie gcbSessionServer",
        "    # Rule 2, the header: for browsers that block third-party cookies, the",
        "    # gcbSessionServer request header decides when no cookie names a node.",
        "    acl create var(txn.create) -m bool",
        f"    acl cookie_names_node req.cook(gcbSessionServer) -m str {' '.join(names)}",
        "    # Per node: a create does not stick to a draining node (`ignore-persist`); the header",
        "    # picks the node (`use-server`, which skips a server that is down) unless a cookie",
        "    # names one, and for a create only if the node takes new sessions.",
    ]
    for name in names:
        lines += [
            f"    acl {name}_takes_sessions nbsrv({only_backend(name)}) gt 0",
            f"    acl header_{name} req.hdr(gcbSessionServer) -m str {name}",
            f"    ignore-persist if create {{ req.cook(gcbSessionServer) -m str {name} }} "
            f"!{name}_takes_sessions",
            f"    use-server {name} if header_{name} !cookie_names_node !create",
            f"    use-server {name} if header_{name} !cookie_names_node {name}_takes_sessions",
        ]
    lines += [
        "",
        "    # Health: GET <context>/health every [lb] checkInterval (`inter`); checkFall failures",
        "    # take a server DOWN, checkRise successes bring it back. 200: ready. 404: draining",
        "    # (`disable-on-404`: state NOLB, sticky traffic continues, no new sessions).",
        "    # Anything else, or no answer: a failure.",
        "    option httpchk",
        "    http-check disable-on-404",
        f"    http-check send meth GET uri {config.context_path}/health",
        "    http-check expect status 200",
        "",
        "    # A refused connection is retried, each time on another server: a create is never",
        *(DEAD_NODE_SHARED if config.store.shared else DEAD_NODE),
        "    retries 2",
        *RETRY_ON,
        "    option redispatch 1",
        *_errors(lb.retry_after, None),
        "",
        "    # A server marked DOWN has its connections closed at once (WebSocket tunnels",
        "    # included): clients reconnect and get the 503 naming the node. A draining server",
        "    # (NOLB) keeps them.",
        f"    default-server check inter {milliseconds(lb.check_interval)} "
        f"fall {lb.check_fall} rise {lb.check_rise} on-marked-down shutdown-sessions",
    ]
    return lines + [_server(node) for node in config.nodes]


def _server(node: NodeSpec) -> str:
    backup = " backup" if node.backup else ""
    return (
        f"    server {node.name} {host_port(node.bind)} cookie {node.name} "
        f"weight {node.weight}{backup}"
    )


def _only(config: ClusterConfig, node: NodeSpec) -> list[str]:
    name = node.name
    role = [
        f"    # Rule 1: {name} alone, also while it drains. Its state follows the checks of",
        f"    # {ALL_NODES}/{name} (`track`, which needs the same disable-on-404): one probe,",
        "    # not two.",
    ]
    if config.store.shared:
        role = [
            f"    # {name} alone. With the shared store its prefix goes to",
            f"    # {failover_backend(name)}: this backend only tells whether {name} takes new",
            f"    # sessions (nbsrv). Its state follows the checks of {ALL_NODES}/{name} (`track`,",
            "    # which needs the same disable-on-404): one probe, not two.",
        ]
    return [
        f"backend {only_backend(name)}",
        *role,
        "    option httpchk",
        "    http-check disable-on-404",
        "    # A draining server takes no load-balanced traffic: name it, so the prefix still",
        "    # reaches it. When it is down, the answer is at once a 503 naming it (a refused",
        "    # connection is not retried); a kept-alive connection it closed meanwhile, which",
        "    # answers nothing, is retried once on a new one.",
        f"    use-server {name} if TRUE",
        "    retries 1",
        "    retry-on empty-response",
        *_errors(config.router.retry_after, name),
        "    # Its tunnels (WebSockets open under the prefix) close when it is marked DOWN.",
        f"    server {name} {host_port(node.bind)} track {ALL_NODES}/{name} "
        "on-marked-down shutdown-sessions",
    ]


def _failover(config: ClusterConfig, node: NodeSpec) -> list[str]:
    """Rule 1 with the shared store: the node while it is up, else (or when it refuses a
    connection) another node, round-robin; the 503 naming it only when no node is up."""
    name = node.name
    lines = [
        f"backend {failover_backend(name)}",
        f"    # Rule 1 with the shared store: {name} while it is up, also while it drains",
        f"    # (`use-server`). When {name} is down, the other nodes take its prefix, round-robin",
        "    # (backup nodes only when no other is up): any node serves any session, and its",
        "    # WebSocket clients reconnect and resume there. A refused connection (a node that",
        "    # died before its checks noticed) is retried on another node: nothing was sent.",
        f"    # Every state follows the checks of {ALL_NODES} (`track`): no extra probe.",
        "    balance roundrobin",
        "    option httpchk",
        "    http-check disable-on-404",
        f"    use-server {name} if TRUE",
        "    retries 2",
        *RETRY_ON,
        "    option redispatch 1",
        *_errors(config.router.retry_after, name),
        "    # Tunnels close when their server is marked DOWN: clients reconnect elsewhere.",
    ]
    for server in [node, *(other for other in config.nodes if other.name != name)]:
        backup = " backup" if server.backup and server is not node else ""
        lines.append(
            f"    server {server.name} {host_port(server.bind)} weight {server.weight}{backup} "
            f"track {ALL_NODES}/{server.name} on-marked-down shutdown-sessions"
        )
    return lines


def _errors(retry_after: int, node: str | None) -> list[str]:
    """Return `http-error` rules: HAProxy's own errors in the router's JSON shape."""
    if node is None:
        unavailable = json.dumps({"errorMessage": "No node is available to take this request."})
        failed = '{"errorMessage": "Node %s failed while answering.", "node": "%s"}'
        slow = '{"errorMessage": "Node %s did not answer in time.", "node": "%s"}'
        kind = "lf-string"  # %s: the server that HAProxy chose
    else:
        unavailable = json.dumps(
            {
                "errorMessage": f"Node {node}, which hosts this session, is unavailable. "
                "Start a new session.",
                "node": node,
            }
        )
        failed = json.dumps({"errorMessage": f"Node {node} failed while answering.", "node": node})
        slow = json.dumps({"errorMessage": f"Node {node} did not answer in time.", "node": node})
        kind = "string"
    json_type = "content-type application/json"
    return [
        "    # HAProxy's own errors, in the JSON shape of the router's.",
        f"    http-error status 503 {json_type} hdr Retry-After {retry_after} "
        f"string '{unavailable}'",
        f"    http-error status 502 {json_type} {kind} '{failed}'",
        f"    http-error status 504 {json_type} {kind} '{slow}'",
    ]


def _stats(config: ClusterConfig, stats_socket: str) -> list[str]:
    return [
        "frontend stats",
        "    # HAProxy's own page ([lb] statsBind): every server's state, checks and counters;",
        "    # /stats;csv for scripts, or `show stat` on the stats socket",
        f"    # ({stats_socket}). Loopback only by default: add `stats auth` before exposing it.",
        f"    bind {host_port(config.router.stats_bind)}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        "    # Prometheus metrics of every frontend, backend and server (HAProxy's built-in",
        "    # exporter): scrape <statsBind>/metrics.",
        "    http-request use-service prometheus-exporter if { path /metrics }",
    ]
