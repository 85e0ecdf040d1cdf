"""Typed settings: what the cluster file says, as immutable objects.

Nothing here reads files or the environment; `cobrowse.config.loader` does that and builds these.
Option names in the docstrings are the cluster-file names (`[section] option`).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cobrowse.config.origins import OriginPolicy

DEFAULT_CONTEXT_PATH = "/cobrowse"
# uhashring defaults to 160 points per node, which leaves nodes up to ~18% off an even share;
# 1000 keeps them within a few percent at the cost of a few milliseconds to build the ring.
DEFAULT_VNODES = 1000
MAX_RING_EPOCH = 8  # the epoch is the first token digit minus one, so 0..8
# Ownership of the directory made under it is checked before use (cobrowse.observe.metrics).
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One `[node:<name>]` section: where a node listens and its place in the ring."""

    name: str
    bind: str
    data_dir: Path
    server_url: str | None = None
    workers: int = 2
    weight: int = 1
    vnodes: int = DEFAULT_VNODES
    ring_epoch: int = 0
    backup: bool = False

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return split_bind(self.bind)[1]

    @property
    def base_url(self) -> str:
        """Return the node's direct URL origin, e.g. `http://127.0.0.1:8701`."""
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """`[session]`: lifetimes of live sessions and of their history."""

    inactivity_timeout: float = 60.0  # inactivityTimeout, seconds
    retention: float = 86400.0  # retention: seconds an ended session stays as history
    purge_interval: float = 60.0  # purgeInterval: seconds between history purges per worker
    # requireConsent: the customer accepts each agent (false: agents are accepted at once, as
    # in the vendor's product, where the customer's click on Co-browse is the consent).
    require_consent: bool = True
    max_agents: int = 1  # maxAgents: agents (waiting or accepted) a session may have at once
    # agentTimeout: seconds an agent without an open channel keeps its place (to resume); then
    # it has left, and its place is free for another agent.
    agent_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class RealtimeSettings:
    """`[realtime]`: the channel's limits (REALTIME.md)."""

    max_message_size: int = 1_048_576  # maxMessageSize: bytes per frame; 1009 above
    # maxLogBytes: a session's log, from its last full snapshot on; past it the node asks the
    # customer for a new snapshot, then trims.
    max_log_bytes: int = 8 * 1_048_576
    # maxQueueBytes: what may wait to be sent to one agent; past it the agent is resynced.
    max_queue_bytes: int = 4 * 1_048_576
    max_frames_per_second: float = 50.0  # maxFramesPerSecond per connection; 1008 above
    max_bytes_per_second: int = 1_048_576  # maxBytesPerSecond per connection; 1008 above
    hello_timeout: float = 10.0  # helloTimeout: seconds for the first frame; 4408 after
    ping_interval: float = 20.0  # pingInterval: seconds between WebSocket pings
    ping_timeout: float = 20.0  # pingTimeout: seconds a pong may take; then the socket is dead
    # compression: permessage-deflate. `message` compresses each message on its own, so an idle
    # channel holds no compressor (about 48 KB each); `context` keeps one per channel (half the
    # bytes on the wire, twice the memory of an idle session); `off`.
    compression: str = "message"


# Per-minute limits that apply unless `rateLimit.<operation>` says otherwise.
BUILT_IN_LIMITS = {"sessions.join": 10}
EXEMPT_FROM_DEFAULT = frozenset({"health"})


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """`[security] rateLimit*`: fixed one-minute windows with a quarantine delay."""

    default_per_minute: int = 0  # rateLimit; 0 = unlimited
    per_operation: dict[str, int] = field(default_factory=dict)  # rateLimit.<operation>
    quarantine_delay: float = 30.0  # rateLimitQuarantineDelay; 0 = forever

    def limit_for(self, operation: str) -> int:
        """Return the per-minute limit of `operation` (0 means unlimited).

        An explicit `rateLimit.<operation>` wins. Otherwise `rateLimit` applies, except to
        health probes (load balancers would trip a modest limit and take the node out), and
        joining has a limit of its own even when `rateLimit` is 0: a 9-digit code is only
        about 30 bits, so guessing must be slow.
        """
        explicit = self.per_operation.get(operation)
        if explicit is not None:
            return explicit
        if operation in BUILT_IN_LIMITS:
            return BUILT_IN_LIMITS[operation]
        return 0 if operation in EXEMPT_FROM_DEFAULT else self.default_per_minute


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """`[security]`: trusted proxies, body limits and rate limits."""

    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")  # trustedProxies
    max_body_size: int = 64 * 1024  # maxBodySize, bytes
    # requestTimeout: seconds a request's head and body may take to arrive, from its first byte,
    # before the node answers 408 and closes (slow or stalled clients).
    request_timeout: float = 30.0
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    # userData.readAllowed / userData.writeAllowed (the Service Client API's
    # user-data.read-allowed and write-allowed): attached-data keys agents may read and the
    # customer may change over the channel; "*" for all, none by default.
    user_data_read: frozenset[str] = frozenset()
    user_data_write: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """`[store]`: where sessions live: each node's SQLite file, or one Redis for the cluster."""

    backend: str = "sqlite"  # sqlite | redis
    url: str = "redis://127.0.0.1:6379/0"  # url: Redis, when no sentinels are given
    # sentinels: host:port of Redis Sentinels, which name the master (masterName) and fail
    # over to a replica; when set, `url` is not used.
    sentinels: tuple[str, ...] = ()
    master_name: str = "cobrowse"  # masterName
    prefix: str = "cobrowse:"  # prefix: of every key, so that clusters can share a Redis
    timeout: float = 2.0  # timeout: seconds to connect and to wait for an answer

    @property
    def shared(self) -> bool:
        """Whether every node sees every session (then any node can serve any session)."""
        return self.backend == "redis"


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """`[logging]`: level and format of every process's logs."""

    level: str = "INFO"
    format: str = "json"  # json | text


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """`[metrics]`: the Prometheus endpoints, `<context>/metrics` and the router's `/lb/metrics`."""

    enabled: bool = True
    # directory: where Gunicorn workers keep their metric files (prometheus-client's
    # multiprocess mode); default: a per-node directory in /dev/shm (see metrics_directory).
    directory: Path | None = None


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """`[lb]`: the router's listener, health checks and timeouts."""

    bind: str = "127.0.0.1:8700"
    check_interval: float = 1.0  # checkInterval (HAProxy `inter`)
    check_timeout: float = 1.0  # checkTimeout (HAProxy `timeout check`)
    check_fall: int = 2  # checkFall
    check_rise: int = 2  # checkRise
    connect_timeout: float = 1.0  # connectTimeout
    server_timeout: float = 30.0  # serverTimeout: upstream response deadline, then 504
    client_timeout: float = 30.0  # clientTimeout: idle or slow client deadline
    max_body_size: int = 64 * 1024  # maxBodySize, bytes (413 above)
    retry_after: int = 5  # retryAfter: seconds advertised with 503
    # tunnelTimeout: seconds a WebSocket tunnel may stay silent before the router closes it;
    # well above the nodes' ping interval, so only dead tunnels are closed.
    tunnel_timeout: float = 120.0
    # statsBind: where HAProxy serves its stats page (generated configs); the router ignores it.
    stats_bind: str = "127.0.0.1:8404"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The whole cluster file, validated."""

    url: str
    nodes: tuple[NodeSpec, ...]
    origins: OriginPolicy
    session: SessionSettings = field(default_factory=SessionSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    # shutdownDelay: seconds a node answers 503 on /health after SIGTERM before it stops; by
    # default long enough for the load balancers' checks to notice (inter x fall + timeout).
    shutdown_delay_option: float | None = None
    source: Path | None = None

    @property
    def shutdown_delay(self) -> float:
        """Return the not-ready period between SIGTERM and a node's graceful stop, in seconds."""
        if self.shutdown_delay_option is not None:
            return self.shutdown_delay_option
        router = self.router
        return router.check_interval * router.check_fall + router.check_timeout

    @property
    def context_path(self) -> str:
        """Return the application path of `[cluster] url`, e.g. `/cobrowse`."""
        return context_path_of(self.url)

    def node(self, name: str) -> NodeSpec:
        """Return the node called `name`, or raise KeyError."""
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def node_settings(self, name: str) -> NodeSettings:
        """Return the settings of one node process."""
        return NodeSettings(cluster=self, node=self.node(name))


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """What a node tells its HTTP/WebSocket server (the Gunicorn worker) about limits."""

    # A request's head and body must arrive whole this many seconds after its first byte.
    request_timeout: float = 30.0
    # Request-line and header limits, as Gunicorn had them: 414 and 431 above.
    limit_request_line: int = 8190
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    # WebSocket frames larger than this close the connection with 1009.
    ws_max_size: int = 1_048_576
    # Seconds between WebSocket pings, and how long a pong may take before the socket is dead.
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    # permessage-deflate: "message" (no context takeover either way), "context" or "off".
    ws_compression: str = "message"
    # Seconds open connections get to finish when a worker stops (Uvicorn's graceful timeout):
    # shorter than Gunicorn's graceful_timeout (30 s), so the worker closes its store before the
    # master would kill it.
    graceful_timeout: float = 25.0


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Everything one node process needs: its own section and the cluster it belongs to."""

    cluster: ClusterConfig
    node: NodeSpec

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def context_path(self) -> str:
        return self.cluster.context_path

    @property
    def database_path(self) -> Path:
        return self.node.data_dir / f"{self.node.name}.db"

    @property
    def server_options(self) -> ServerOptions:
        """Return what this node's server must enforce."""
        realtime = self.cluster.realtime
        return ServerOptions(
            request_timeout=self.cluster.security.request_timeout,
            ws_max_size=realtime.max_message_size,
            ws_ping_interval=realtime.ping_interval,
            ws_ping_timeout=realtime.ping_timeout,
            ws_compression=realtime.compression,
        )

    @property
    def metrics_directory(self) -> Path:
        """Return the node's prometheus-client multiprocess directory.

        Not in the data directory: the metric files are memory-mapped and grown sparse, so on a
        full data disk a worker writing a metric would die of SIGBUS. /dev/shm is memory.
        """
        configured = self.cluster.metrics.directory
        if configured is not None:
            return configured / self.node.name
        digest = hashlib.sha256(str(self.node.data_dir).encode()).hexdigest()[:12]
        base = SHARED_MEMORY if SHARED_MEMORY.is_dir() else Path(tempfile.gettempdir())
        return base / "cobrowse-metrics" / f"{self.node.name}-{digest}"


def context_path_of(url: str) -> str:
    """Return the path part of a cluster or server URL, without a trailing slash."""
    path = urlsplit(url).path.rstrip("/")
    return path or DEFAULT_CONTEXT_PATH


def split_bind(bind: str) -> tuple[str, int]:
    """Split `host:port` (or `[v6]:port`) into its parts; raise ValueError when malformed."""
    host, sep, port_text = bind.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {bind!r}")
    host = host.removeprefix("[").removesuffix("]")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {bind!r}")
    return host, port
