"""`cobrowse check-config`."""

from __future__ import annotations

import argparse
import sys

from cobrowse.commands import load_or_exit
from cobrowse.config.settings import ClusterConfig


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
    return found


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
    for warning in warnings_for(config):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check-config", help="validate a cluster file")
    check.add_argument("file", help="the cluster file (INI)")
    check.set_defaults(handler=check_config)
