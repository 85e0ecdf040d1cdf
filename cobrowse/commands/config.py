"""`cobrowse check-config`."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from urllib.parse import urlsplit

from cobrowse.commands import load_or_exit
from cobrowse.config.settings import ClusterConfig, StoreSettings


def warnings_for(config: ClusterConfig) -> list[str]:
    """Return what is valid but likely wrong in a cluster file."""
    found = []
    tunnel = config.router.tunnel_timeout
    ping = config.realtime.ping_interval
    pong = config.realtime.ping_timeout
    if tunnel <= ping + pong:
        found.append(
            f"[lb] tunnelTimeout ({tunnel:g} s) is not longer than [realtime] pingInterval + "
            f"pingTimeout ({ping:g} + {pong:g} s): the router, HAProxy and nginx may close "
            "quiet but healthy WebSockets. A quiet channel carries only the nodes' pings and "
            "the browsers' pongs, and a pong may come pingTimeout after its ping, so the gap "
            "between two pongs can reach pingInterval + pingTimeout (nginx times each "
            "direction on its own)."
        )
    found.extend(store_warnings(config.store))
    return found


def store_warnings(store: StoreSettings) -> list[str]:
    """Return what is risky in a shared store's settings."""
    if not store.shared:
        return []
    found = []
    if not store.sentinels:
        found.append(
            "[store] backend = redis without sentinels: that one Redis is a single point of "
            "failure for every node of the cluster. Run Redis under Sentinel and list them in "
            "[store] sentinels (with masterName), so that a replica takes over."
        )
    url = urlsplit(store.url)
    if not store.sentinels and url.scheme == "redis" and not _loopback(url.hostname or ""):
        found.append(
            f"[store] url names {url.hostname}, not this host, without TLS: sessions, tokens "
            "and the live pages cross the network in clear. Use rediss:// (Redis with TLS)."
        )
    return found


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def store_summary(store: StoreSettings) -> str:
    """Describe the store in one line, without the password a Redis URL may hold."""
    if not store.shared:
        return "store: sqlite (each node's own file; a node's sessions live on that node)"
    if store.sentinels:
        where = f"Sentinel master {store.master_name!r} at {', '.join(store.sentinels)}"
    else:
        url = urlsplit(store.url)
        netloc = url.hostname or ""
        if url.port:
            netloc = f"{netloc}:{url.port}"
        if url.password:
            netloc = f"{url.username or ''}:***@{netloc}"
        where = url._replace(netloc=netloc).geturl()
    return (
        f"store: redis {where}, prefix {store.prefix!r}, timeout {store.timeout:g} s "
        "(shared: any node serves any session)"
    )


def check_config(args: argparse.Namespace) -> int:
    """Validate a cluster file and summarise it."""
    config = load_or_exit(args.file)
    print(f"{args.file}: OK — cluster {config.url}, {len(config.nodes)} node(s)")
    for node in config.nodes:
        extras = []
        if node.backup:
            extras.append("backup")
        if node.ring_epoch:
            extras.append(f"ringEpoch {node.ring_epoch}")
        suffix = f" ({', '.join(extras)})" if extras else ""
        print(f"  {node.name}: {node.bind}, {node.workers} workers, data {node.data_dir}{suffix}")
    print(f"  {store_summary(config.store)}")
    for warning in warnings_for(config):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check-config", help="validate a cluster file")
    check.add_argument("file", help="the cluster file (INI)")
    check.set_defaults(handler=check_config)
