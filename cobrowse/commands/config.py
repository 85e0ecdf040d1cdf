"""`cobrowse check-config`."""

from __future__ import annotations

import argparse

from cobrowse.commands import load_or_exit


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
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser("check-config", help="validate a cluster file")
    check.add_argument("file", help="the cluster file (INI)")
    check.set_defaults(handler=check_config)
