"""Load the cluster file: the only place that reads configuration files and the environment.

Every option can be overridden by an environment variable named
`COBROWSE_<SECTION>_<OPTION>`, upper-cased, with every character that is not a letter or a digit
replaced by `_`: `[cross-origin] allowedOrigins` is `COBROWSE_CROSS_ORIGIN_ALLOWEDORIGINS`,
`[node:node-1] workers` is `COBROWSE_NODE_NODE_1_WORKERS`.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from cobrowse.config.origins import OPERATIONS, OriginPolicy, OriginSyntaxError
from cobrowse.config.settings import (
    DEFAULT_VNODES,
    MAX_RING_EPOCH,
    ClusterConfig,
    LoggingSettings,
    MetricsSettings,
    NodeSpec,
    RateLimitSettings,
    RealtimeSettings,
    RouterSettings,
    SecuritySettings,
    SessionSettings,
    StoreSettings,
    context_path_of,
    split_bind,
)

CONFIG_ENV = "COBROWSE_CONFIG"
NODE_ENV = "COBROWSE_NODE"
URL_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)*/?$")
NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")

T = TypeVar("T")

KNOWN_OPTIONS: dict[str, tuple[str, ...]] = {
    "cluster": ("url", "vnodes", "shutdownDelay"),
    "cross-origin": ("allowedOrigins",),
    "session": (
        "inactivityTimeout",
        "retention",
        "purgeInterval",
        "requireConsent",
        "maxAgents",
        "agentTimeout",
    ),
    "realtime": (
        "maxMessageSize",
        "maxLogBytes",
        "maxQueueBytes",
        "maxFramesPerSecond",
        "maxBytesPerSecond",
        "helloTimeout",
        "pingInterval",
        "pingTimeout",
        "compression",
    ),
    "security": (
        "trustedProxies",
        "maxBodySize",
        "requestTimeout",
        "rateLimit",
        "rateLimitQuarantineDelay",
        *(f"rateLimit.{operation}" for operation in OPERATIONS),
        "userData.readAllowed",
        "userData.writeAllowed",
    ),
    "lb": (
        "bind",
        "checkInterval",
        "checkTimeout",
        "checkFall",
        "checkRise",
        "connectTimeout",
        "serverTimeout",
        "clientTimeout",
        "maxBodySize",
        "retryAfter",
        "statsBind",
        "tunnelTimeout",
    ),
    "store": ("backend", "url", "sentinels", "masterName", "prefix", "timeout"),
    "logging": ("level", "format"),
    "metrics": ("enabled", "directory"),
}
# Options of earlier releases that no longer mean anything, and what to do instead.
RETIRED_OPTIONS = {
    "threads": "no longer used: a node's ASGI workers each serve many requests at once; "
    "remove it and scale with workers",
}
NODE_OPTIONS = (
    "bind",
    "serverUrl",
    "dataDir",
    "workers",
    "weight",
    "vnodes",
    "ringEpoch",
    "backup",
)


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in the cluster file, located by section and option."""

    section: str
    option: str | None
    message: str

    def __str__(self) -> str:
        where = f"[{self.section}]" + (f" {self.option}" if self.option else "")
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """The cluster file has mistakes; `problems` lists every one."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def env_name(section: str, option: str) -> str:
    """Return the environment variable that overrides `[section] option`."""
    return "COBROWSE_" + re.sub(r"[^A-Za-z0-9]", "_", f"{section}_{option}").upper()


def load_cluster(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ClusterConfig:
    """Read and validate a cluster file; raise ConfigError listing every mistake."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([ConfigProblem("file", None, f"cannot read {source}: {error}")]) from None
    return parse_cluster(
        text, environ=os.environ if environ is None else environ, source=source, cwd=cwd
    )


def parse_cluster(
    text: str,
    environ: Mapping[str, str] | None = None,
    source: Path | None = None,
    cwd: Path | None = None,
) -> ClusterConfig:
    """Validate cluster-file text; raise ConfigError listing every mistake."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep camelCase names
    try:
        parser.read_string(text, source=str(source or "<cluster file>"))
    except configparser.Error as error:
        raise ConfigError([ConfigProblem("file", None, str(error).replace("\n", " "))]) from None
    reader = _Reader(parser, environ or {}, cwd or Path.cwd())
    config = reader.build(source)
    if reader.problems:
        raise ConfigError(reader.problems)
    assert config is not None
    return config


class _Reader:
    """Turn a parsed INI file into settings, collecting problems instead of stopping at one."""

    def __init__(
        self, parser: configparser.ConfigParser, environ: Mapping[str, str], cwd: Path
    ) -> None:
        self.parser = parser
        self.environ = environ
        self.cwd = cwd
        self.problems: list[ConfigProblem] = []

    def problem(self, section: str, option: str | None, message: str) -> None:
        self.problems.append(ConfigProblem(section, option, message))

    def raw(self, section: str, option: str) -> str | None:
        value = self.environ.get(env_name(section, option))
        if value is not None:
            return value
        if self.parser.has_option(section, option):
            return self.parser.get(section, option)
        return None

    def value(self, section: str, option: str, convert: Callable[[str], T], default: T) -> T:
        text = self.raw(section, option)
        if text is None or not text.strip():
            return default
        try:
            return convert(text.strip())
        except (ValueError, OriginSyntaxError) as error:
            self.problem(section, option, f"{error} (got {text.strip()!r})")
            return default

    def check_unknown(self) -> None:
        for section in self.parser.sections():
            if section.startswith("node:"):
                known: tuple[str, ...] = NODE_OPTIONS
            elif section in KNOWN_OPTIONS:
                known = KNOWN_OPTIONS[section]
            else:
                self.problem(section, None, "unknown section")
                continue
            for option in self.parser.options(section):
                if option in RETIRED_OPTIONS:
                    self.problem(section, option, RETIRED_OPTIONS[option])
                elif option not in known:
                    self.problem(section, option, f"unknown option (known: {', '.join(known)})")

    def build(self, source: Path | None) -> ClusterConfig | None:
        self.check_unknown()
        url = self.value("cluster", "url", _http_url, "http://127.0.0.1:8700/cobrowse")
        vnodes = self.value("cluster", "vnodes", _positive_int, DEFAULT_VNODES)
        origins = self.value("cross-origin", "allowedOrigins", OriginPolicy.parse, OriginPolicy())
        session = SessionSettings(
            inactivity_timeout=self.value("session", "inactivityTimeout", _positive_float, 60.0),
            retention=self.value("session", "retention", _non_negative_float, 86400.0),
            purge_interval=self.value("session", "purgeInterval", _positive_float, 60.0),
            require_consent=self.value("session", "requireConsent", _boolean, True),
            max_agents=self.value("session", "maxAgents", _positive_int, 1),
            agent_timeout=self.value("session", "agentTimeout", _positive_float, 60.0),
        )
        security = self.security()
        router = self.router(url)
        logging = LoggingSettings(
            level=self.value("logging", "level", _log_level, "INFO"),
            format=self.value("logging", "format", _choice("json", "text"), "json"),
        )
        metrics = MetricsSettings(
            enabled=self.value("metrics", "enabled", _boolean, True),
            directory=self.value("metrics", "directory", Path, None),
        )
        nodes = self.nodes(vnodes, context_path_of(url))
        realtime = self.realtime()
        store = self.store()
        return ClusterConfig(
            url=url,
            nodes=nodes,
            origins=origins,
            session=session,
            security=security,
            router=router,
            logging=logging,
            metrics=metrics,
            realtime=realtime,
            store=store,
            shutdown_delay_option=self.value("cluster", "shutdownDelay", _non_negative_float, None),
            source=source,
        )

    def security(self) -> SecuritySettings:
        per_operation = {}
        for operation in OPERATIONS:
            limit = self.value("security", f"rateLimit.{operation}", _non_negative_int, -1)
            if limit >= 0:
                per_operation[operation] = limit
        return SecuritySettings(
            trusted_proxies=self.value(
                "security", "trustedProxies", _networks, ("127.0.0.1", "::1")
            ),
            max_body_size=self.value("security", "maxBodySize", _positive_int, 64 * 1024),
            request_timeout=self.value("security", "requestTimeout", _positive_float, 30.0),
            user_data_read=self.value("security", "userData.readAllowed", _key_set, frozenset()),
            user_data_write=self.value("security", "userData.writeAllowed", _key_set, frozenset()),
            rate_limits=RateLimitSettings(
                default_per_minute=self.value("security", "rateLimit", _non_negative_int, 0),
                per_operation=per_operation,
                quarantine_delay=self.value(
                    "security", "rateLimitQuarantineDelay", _non_negative_float, 30.0
                ),
            ),
        )

    def store(self) -> StoreSettings:
        defaults = StoreSettings()
        return StoreSettings(
            backend=self.value("store", "backend", _choice("sqlite", "redis"), defaults.backend),
            url=self.value("store", "url", _redis_url, defaults.url),
            sentinels=self.value("store", "sentinels", _binds, defaults.sentinels),
            master_name=self.value("store", "masterName", str, defaults.master_name),
            prefix=self.value("store", "prefix", str, defaults.prefix),
            timeout=self.value("store", "timeout", _positive_float, defaults.timeout),
        )

    def realtime(self) -> RealtimeSettings:
        defaults = RealtimeSettings()
        options = {
            "max_message_size": ("maxMessageSize", _positive_int),
            "max_log_bytes": ("maxLogBytes", _positive_int),
            "max_queue_bytes": ("maxQueueBytes", _positive_int),
            "max_frames_per_second": ("maxFramesPerSecond", _positive_float),
            "max_bytes_per_second": ("maxBytesPerSecond", _positive_int),
            "hello_timeout": ("helloTimeout", _positive_float),
            "ping_interval": ("pingInterval", _positive_float),
            "ping_timeout": ("pingTimeout", _positive_float),
            "compression": ("compression", _choice("message", "context", "off")),
        }
        return RealtimeSettings(
            **{
                field: self.value("realtime", option, convert, getattr(defaults, field))
                for field, (option, convert) in options.items()
            }
        )

    def router(self, cluster_url: str) -> RouterSettings:
        default_bind = "127.0.0.1:8700"
        try:
            parts = urlsplit(cluster_url)
            default_bind = f"127.0.0.1:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        except ValueError:
            pass
        defaults = RouterSettings()
        return RouterSettings(
            bind=self.value("lb", "bind", _bind, default_bind),
            check_interval=self.value(
                "lb", "checkInterval", _positive_float, defaults.check_interval
            ),
            check_timeout=self.value("lb", "checkTimeout", _positive_float, defaults.check_timeout),
            check_fall=self.value("lb", "checkFall", _positive_int, defaults.check_fall),
            check_rise=self.value("lb", "checkRise", _positive_int, defaults.check_rise),
            connect_timeout=self.value(
                "lb", "connectTimeout", _positive_float, defaults.connect_timeout
            ),
            server_timeout=self.value(
                "lb", "serverTimeout", _positive_float, defaults.server_timeout
            ),
            client_timeout=self.value(
                "lb", "clientTimeout", _positive_float, defaults.client_timeout
            ),
            max_body_size=self.value("lb", "maxBodySize", _positive_int, defaults.max_body_size),
            retry_after=self.value("lb", "retryAfter", _positive_int, defaults.retry_after),
            stats_bind=self.value("lb", "statsBind", _bind, defaults.stats_bind),
            tunnel_timeout=self.value(
                "lb", "tunnelTimeout", _positive_float, defaults.tunnel_timeout
            ),
        )

    def nodes(self, default_vnodes: int, context_path: str) -> tuple[NodeSpec, ...]:
        # A node's name is also a URL prefix on the router: it must not shadow another path.
        reserved = {"lb", "health", context_path.strip("/").split("/")[0]}
        nodes: list[NodeSpec] = []
        for section in self.parser.sections():
            if not section.startswith("node:"):
                continue
            name = section.removeprefix("node:")
            if not NODE_NAME.match(name):
                self.problem(
                    section,
                    None,
                    "a node name is 1-63 letters, digits, '-' or '_', "
                    "starting with a letter or digit",
                )
                continue
            if name in reserved:
                self.problem(
                    section, None, f"{name!r} is taken by a path of the router or of the API"
                )
                continue
            bind = self.value(section, "bind", _bind, "")
            if not bind:
                self.problem(section, "bind", "required: host:port the node listens on")
            data_dir = self.value(section, "dataDir", Path, Path("data") / name)
            nodes.append(
                NodeSpec(
                    name=name,
                    bind=bind,
                    data_dir=data_dir if data_dir.is_absolute() else self.cwd / data_dir,
                    server_url=self.value(section, "serverUrl", _http_url, None),
                    workers=self.value(section, "workers", _positive_int, 2),
                    weight=self.value(section, "weight", _positive_int, 1),
                    vnodes=self.value(section, "vnodes", _positive_int, default_vnodes),
                    ring_epoch=self.value(section, "ringEpoch", _epoch, 0),
                    backup=self.value(section, "backup", _boolean, False),
                )
            )
        if not nodes:
            self.problem(
                "node:<name>", None, "the cluster needs at least one [node:<name>] section"
            )
        self.check_unique(nodes, "bind", lambda node: node.bind)
        self.check_unique(nodes, "dataDir", lambda node: str(node.data_dir))
        if nodes and all(node.backup for node in nodes):
            self.problem("node:<name>", "backup", "at least one node must not be a backup")
        return tuple(nodes)

    def check_unique(
        self, nodes: list[NodeSpec], option: str, key: Callable[[NodeSpec], str]
    ) -> None:
        seen: dict[str, str] = {}
        for node in nodes:
            value = key(node)
            if value and value in seen:
                self.problem(
                    f"node:{node.name}", option, f"same {option} as [node:{seen[value]}]: {value}"
                )
            seen.setdefault(value, node.name)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number of at least 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a number greater than 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be a number of at least 0")
    return value


def _epoch(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_RING_EPOCH:
        raise ValueError(f"must be between 0 and {MAX_RING_EPOCH}")
    return value


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _bind(text: str) -> str:
    split_bind(text)
    return text


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    _ = parts.port  # raises ValueError for a bad port
    if parts.query or parts.fragment or not URL_PATH.match(parts.path):
        raise ValueError("the path may only hold letters, digits and . _ ~ - segments")
    return text.rstrip("/")


def _networks(text: str) -> tuple[str, ...]:
    entries = tuple(entry.strip() for entry in text.split(",") if entry.strip())
    for entry in entries:
        ipaddress.ip_network(entry, strict=False)
    return entries


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _choice(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return convert


def _key_set(text: str) -> frozenset[str]:
    """Attached-data keys, comma-separated; `*` for all of them."""
    keys = frozenset(key.strip() for key in text.split(",") if key.strip())
    if "*" in keys and len(keys) > 1:
        raise ValueError("`*` already means every key: list keys, or `*` alone")
    return keys


def _redis_url(text: str) -> str:
    scheme = urlsplit(text).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
    return text


def _binds(text: str) -> tuple[str, ...]:
    """host:port entries, comma-separated."""
    entries = tuple(entry.strip() for entry in text.split(",") if entry.strip())
    for entry in entries:
        split_bind(entry)
    return entries
